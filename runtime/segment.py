"""Split long input into sentences (Chinese and English punctuation) and put translations back.

A segment keeps its offsets in the original text and the whitespace that followed it, so the
translation can keep the paragraph structure: a line break in the source is a line break in the
output; sentences inside a paragraph are joined with a space for English, with nothing for Chinese.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Sentence ends: Chinese full stops end a sentence wherever they are; English . ! ? only before
# whitespace or the end (so 3.5 mg and v1.2 stay whole). Closing quotes/brackets stay attached.
_CLOSERS = "\"'”’」』）)】》"
_ZH_END = re.compile(rf"[。！？；!?…]+[{_CLOSERS}]*")
_EN_END = re.compile(rf"[.!?;]+[{_CLOSERS}]*(?=\s|$)")
# Clause breaks, used only when a sentence is too long for the model's context.
_CLAUSE = re.compile(rf"[，,、：:；;]+[{_CLOSERS}]*\s*")
# Abbreviations that end with a period but not a sentence (lower-cased, without the period).
_ABBREV = {
    "e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "fig", "figs", "al", "approx",
    "ca", "cf", "st", "jr", "sr", "vol", "pp", "inc", "ltd", "dept",
}
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


@dataclass(frozen=True)
class Segment:
    """``text`` is ``source[start:end]``; ``gap`` is the whitespace that followed it."""

    start: int
    end: int
    text: str
    gap: str = ""


def _is_abbreviation(text: str, dot: int) -> bool:
    """True when the period at ``dot`` closes an abbreviation or an initial (``Dr.``, ``J.``)."""
    if text[dot] != ".":
        return False
    m = _WORD_BEFORE.search(text[:dot])
    if not m:
        return False
    word = m.group(1).lower().rstrip(".")
    return word in _ABBREV or (len(word) == 1 and m.group(1).isupper())


def _cut_points(text: str) -> list[int]:
    """Offsets just after each sentence end or line break."""
    cuts = set()
    for m in _ZH_END.finditer(text):
        cuts.add(m.end())
    for m in _EN_END.finditer(text):
        if not _is_abbreviation(text, m.start()):
            cuts.add(m.end())
    for m in re.finditer(r"\n", text):
        cuts.add(m.start())
    return sorted(cuts)


def _pieces(text: str, cuts: list[int], offset: int = 0) -> list[Segment]:
    segments, start = [], 0
    for cut in [*cuts, len(text)]:
        if cut <= start:
            continue
        chunk = text[start:cut]
        stripped = chunk.strip()
        if stripped:
            lead = len(chunk) - len(chunk.lstrip())
            s = offset + start + lead
            segments.append(Segment(s, s + len(stripped), stripped))
        start = cut
    # Attach the whitespace between one segment and the next (or the end) as the first one's gap.
    out = []
    for i, seg in enumerate(segments):
        nxt = segments[i + 1].start if i + 1 < len(segments) else offset + len(text)
        gap_text = text[seg.end - offset : nxt - offset]
        out.append(Segment(seg.start, seg.end, seg.text, gap_text if not gap_text.strip() else ""))
    return out


def split_sentences(text: str) -> list[Segment]:
    """Sentences and lines of ``text`` in order; empty and whitespace-only pieces are dropped."""
    return _pieces(text, _cut_points(text))


def split_clauses(segment: Segment) -> list[Segment]:
    """Split one sentence further at commas, enumeration commas, colons and semicolons."""
    cuts = [m.end() for m in _CLAUSE.finditer(segment.text)]
    parts = _pieces(segment.text, cuts, offset=segment.start)
    if parts:
        parts[-1] = Segment(parts[-1].start, parts[-1].end, parts[-1].text, segment.gap)
    return parts


def split_in_half(segment: Segment) -> list[Segment]:
    """Last resort for a clause that is still too long: cut near the middle, at a space if any."""
    text = segment.text
    if len(text) < 2:
        return [segment]
    mid = len(text) // 2
    space = text.rfind(" ", 0, mid + 1)
    cut = space if space > len(text) // 4 else mid
    left, right = text[:cut].rstrip(), text[cut:].lstrip()
    if not left or not right:
        left, right = text[:mid], text[mid:]
    right_start = segment.start + text.index(right, len(left))
    return [
        Segment(segment.start, segment.start + len(left), left, " " if " " in text[len(left) : len(left) + 1] else ""),
        Segment(right_start, right_start + len(right), right, segment.gap),
    ]


def join_translations(segments: list[Segment], translations: list[str], target_lang: str) -> str:
    """Put the translated segments back together, keeping the source's line breaks."""
    if len(segments) != len(translations):
        raise ValueError("one translation per segment is needed")
    out = []
    for i, (seg, tr) in enumerate(zip(segments, translations, strict=True)):
        out.append(tr.strip())
        if i + 1 == len(segments):
            break
        newlines = seg.gap.count("\n")
        if newlines:
            out.append("\n" * newlines)
        elif target_lang == "en":
            out.append(" ")
    return "".join(out)


def separator_after(segment: Segment, target_lang: str, last: bool) -> str:
    """What :func:`join_translations` puts after this segment's translation (for streaming)."""
    if last:
        return ""
    newlines = segment.gap.count("\n")
    if newlines:
        return "\n" * newlines
    return " " if target_lang == "en" else ""


class StrippedStream:
    """One segment's translation as it streams, without leading and (until more text comes) trailing whitespace.

    :meth:`feed` takes a generated piece and returns what may be shown now: the pieces returned add up
    to the stripped translation, so streamed output equals the final text.
    """

    def __init__(self) -> None:
        self.started = False
        self.pending_ws = ""
        self.text = ""

    def feed(self, piece: str) -> str:
        if not self.started:
            piece = piece.lstrip()
            self.started = bool(piece)
        body = (self.pending_ws + piece).rstrip()
        self.pending_ws = (self.pending_ws + piece)[len(body):]
        self.text += body
        return body
