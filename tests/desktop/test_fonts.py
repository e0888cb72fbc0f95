"""The shipped CJK font in the app's widgets: Chinese draws with real glyphs without a system CJK font."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6.QtGui")


def _glyph_ids(text: str) -> list[tuple[str, list[int]]]:
    from PySide6.QtGui import QTextLayout
    from PySide6.QtWidgets import QApplication

    layout = QTextLayout(text, QApplication.font())
    layout.beginLayout()
    layout.createLine()
    layout.endLayout()
    return [(run.rawFont().familyName(), list(run.glyphIndexes())) for run in layout.glyphRuns()]


def test_app_font_gives_chinese_real_glyphs(qapp):
    from PySide6.QtGui import QFontDatabase

    from desktop.app import create_app
    from desktop.fonts import install_app_font

    assert create_app() is qapp  # create_app registers the font ...
    assert "WenQuanYi Micro Hei" in QFontDatabase.families()
    assert install_app_font() == "WenQuanYi Micro Hei"  # ... and registering again is harmless
    runs = _glyph_ids("患者确诊为急性心肌梗死，")
    assert runs and all(0 not in ids for _, ids in runs)  # glyph 0 is the "missing" box
    assert len({i for _, ids in runs for i in ids}) == 12  # twelve different characters, twelve glyphs
