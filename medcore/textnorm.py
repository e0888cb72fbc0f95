"""Text normalisation and language tests used everywhere text is compared or stored.

Unicode NFC (not NFKC: full-width Chinese punctuation is meaningful in Chinese text),
control and zero-width characters removed, whitespace runs collapsed. English text also has
full-width ASCII (ｍｇ, ５０, （）) folded to half width, because a clinic's copy-paste often
mixes them in and a model should not learn two spellings of "50 mg".
"""

from __future__ import annotations

import re
import unicodedata

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_WS = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_LATIN = re.compile(r"[A-Za-z]")
# Spaces between two CJK characters are PDF/segmentation artefacts ("鸟氨 酸").
_CJK_SPACE = re.compile(r"(?<=[\u3400-\u9fff\uf900-\ufaff])\s+(?=[\u3400-\u9fff\uf900-\ufaff])")


def clean(text: str) -> str:
    """NFC, drop control/zero-width characters, collapse whitespace, strip the ends."""
    text = unicodedata.normalize("NFC", text).translate(_ZERO_WIDTH)
    text = "".join(ch if ch in "\t\n\r" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return _WS.sub(" ", text).strip()


def fullwidth_to_halfwidth(text: str) -> str:
    """Fold full-width ASCII variants (U+FF01..U+FF5E) and the ideographic space to ASCII."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0xFF01 <= code <= 0xFF5E:
            out.append(chr(code - 0xFEE0))
        elif code == 0x3000:
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def normalize_zh(text: str) -> str:
    """Chinese side: clean, remove spaces between CJK characters, fold full-width letters/digits only."""
    text = _CJK_SPACE.sub("", clean(text))
    # Full-width letters and digits become ASCII; full-width punctuation (，。（）) stays.
    return "".join(
        fullwidth_to_halfwidth(ch) if ("\uff10" <= ch <= "\uff19" or "\uff21" <= ch <= "\uff5a") else ch
        for ch in text
    )


def normalize_en(text: str) -> str:
    """English side: clean and fold every full-width ASCII character to half width."""
    return clean(fullwidth_to_halfwidth(text))


def normalize(text: str, lang: str) -> str:
    if lang == "zh":
        return normalize_zh(text)
    if lang == "en":
        return normalize_en(text)
    raise ValueError(f"unknown language {lang!r} (expected 'zh' or 'en')")


def cjk_count(text: str) -> int:
    return len(_CJK.findall(text))


def latin_count(text: str) -> int:
    return len(_LATIN.findall(text))


def detect_lang(text: str) -> str:
    """'zh' when CJK characters make up at least a fifth of the letters, else 'en'.

    Medical Chinese is full of Latin abbreviations (CT, HIV, mg), so a plain majority vote over
    characters would call many Chinese sentences English; a CJK character carries about as much
    as a whole English word.
    """
    cjk, latin = cjk_count(text), latin_count(text)
    if cjk == 0:
        return "en"
    return "zh" if cjk * 5 >= latin else "en"


def match_key(text: str, lang: str) -> str:
    """The form in which terms are compared, character for character the same length as ``text``.

    English: full-width folded to half width and lower-cased (so offsets found in the key are
    offsets in the original). Chinese: unchanged, because a different character is a different term.
    """
    if lang == "zh":
        return text
    out = []
    for ch in fullwidth_to_halfwidth(text):
        low = ch.lower()
        out.append(low if len(low) == 1 else ch)
    return "".join(out)
