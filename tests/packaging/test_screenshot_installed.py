"""The pixel reading that drives the installed app for its screenshots (packaging/screenshot_installed.py)."""

from __future__ import annotations

from PIL import Image, ImageDraw

WINDOW, GREEN, GREY, TAB = (239, 239, 239), (200, 240, 200), (224, 224, 224), (221, 221, 221)


def test_finds_the_green_rows_of_the_terms_table(screenshot_installed):
    image = Image.new("RGB", (400, 300), WINDOW)
    draw = ImageDraw.Draw(image)
    draw.rectangle((100, 40, 390, 65), fill=GREEN)   # a term found as expected
    draw.rectangle((100, 66, 390, 91), fill=GREY)    # one not required
    draw.rectangle((100, 92, 390, 117), fill=GREEN)
    draw.rectangle((100, 130, 390, 134), fill=GREEN)  # a 5-pixel sliver is not a row
    rows = screenshot_installed.green_rows(image, (90, 0, 400, 300))
    assert rows == [(112, 52), (112, 104)]


def test_ink_counts_text_on_a_painted_pane_only(screenshot_installed):
    blank = Image.new("RGB", (200, 100), (255, 255, 255))
    assert screenshot_installed.ink(blank, (0, 0, 200, 100)) == 0
    ImageDraw.Draw(blank).rectangle((10, 10, 29, 14), fill=(0, 0, 0))
    assert screenshot_installed.ink(blank, (0, 0, 200, 100)) == 100
    # the bare X root window (black) is not text
    assert screenshot_installed.ink(Image.new("RGB", (200, 100)), (0, 0, 200, 100)) == 0


def test_finds_the_dock_tab_bar(screenshot_installed):
    image = Image.new("RGB", (600, 400), WINDOW)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 250, 200, 270), fill=(247, 247, 247))  # the current tab
    draw.rectangle((201, 250, 450, 270), fill=TAB)           # the other two
    assert screenshot_installed.tab_bar_y(image, (0, 200, 600, 400), (225, 400)) == 260
    assert screenshot_installed.tab_bar_y(image, (0, 0, 600, 200), (225, 400)) is None
