"""Chinese on machines without a CJK font: the shipped font, in the app's widgets and in its pages.

Many Linux desktops in clinics have no CJK font: Qt and Chromium then draw every Chinese character
as a box. The app ships WenQuanYi Micro Hei (``resources/fonts``, see ``scripts/make_cjk_font.py``)
and uses it twice:

* :func:`install_app_font` registers it with Qt at start, so the text panes, glossary table and
  menus fall back to it for CJK characters when the system has no such font;
* every attention page (in the app and exported) carries an ``@font-face`` whose source is a WOFF
subset of the shipped WenQuanYi Micro Hei (``resources/fonts``, see ``scripts/make_cjk_font.py``)
holding exactly the CJK characters in the page, as a ``data:`` URL (the pages' Content-Security-Policy
allows fonts from ``data:`` only). ``unicode-range`` limits the face to those characters, so Latin
text keeps the system's fonts. A 20-character source costs 4.8 KB; subsetting takes ~0.15 s of CPU.
"""

from __future__ import annotations

import base64
import io
import logging
from functools import lru_cache

from medcore.resources import resource_path

log = logging.getLogger(__name__)
FAMILY = "TSX CJK"
FONT_FILE = ("fonts", "wqy-microhei.woff")
MAX_CHARS = 4000  # more distinct CJK characters than any page of one pair has; a cap on page size

# CJK punctuation, kana, ideographs (basic, extension A, compatibility), full-width forms.
_CJK_RANGES = ((0x3000, 0x303F), (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
               (0xFF00, 0xFFEF))


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(a <= code <= b for a, b in _CJK_RANGES)


def cjk_chars(text: str) -> str:
    """The distinct CJK characters of ``text``, sorted (the cache key of a subset)."""
    return "".join(sorted({c for c in text if is_cjk(c)}))


@lru_cache(maxsize=32)
def _subset_woff(chars: str) -> tuple[bytes, str]:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(resource_path(*FONT_FILE), lazy=True, recalcTimestamp=False)
    options = subset.Options()
    options.layout_features = []  # no shaping features needed for CJK; keeps the subset small
    options.hinting = False
    options.drop_tables += ["FFTM", "vhea", "vmtx"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=chars)
    subsetter.subset(font)
    cmap = font.getBestCmap() or {}
    covered = "".join(c for c in chars if ord(c) in cmap)
    buffer = io.BytesIO()
    font.flavor = "woff"
    font.save(buffer)
    return buffer.getvalue(), covered


def install_app_font() -> str | None:
    """Register the shipped CJK font with Qt (needs a QGuiApplication); its family, or None if unusable."""
    from PySide6.QtGui import QFontDatabase

    try:
        path = resource_path(*FONT_FILE)
    except OSError as exc:
        log.warning("no CJK font for the app: %s", exc)
        return None
    font_id = QFontDatabase.addApplicationFont(str(path))
    families = QFontDatabase.applicationFontFamilies(font_id) if font_id >= 0 else []
    if not families:
        log.warning("Qt could not load the CJK font %s: Chinese depends on the system's fonts", path)
        return None
    return families[0]


def font_face_css(text: str) -> str:
    """An ``@font-face`` rule embedding the glyphs of ``text``'s CJK characters ('' when none or no font)."""
    chars = cjk_chars(text)[:MAX_CHARS]
    if not chars:
        return ""
    try:
        data, covered = _subset_woff(chars)
    except (OSError, ImportError, ValueError) as exc:  # a broken install: pages still draw, with system fonts
        log.warning("no CJK font embedded in the attention page: %s", exc)
        return ""
    if not covered:
        return ""
    ranges = ",".join(f"U+{ord(c):X}" for c in covered)
    encoded = base64.b64encode(data).decode("ascii")
    return (f"@font-face {{ font-family: '{FAMILY}'; src: url(data:font/woff;base64,{encoded}) format('woff'); "
            f"unicode-range: {ranges}; }}\n")
