"""Which characters of the source and translation panes to mark, and where they are for Qt.

Qt-free. Every span here is in Python string indices (code points). Qt's ``QTextCursor`` positions
count UTF-16 code units instead, so a character outside the Basic Multilingual Plane (𠮷, an emoji)
is one Python character but two Qt positions: :func:`py_to_qt` and :func:`qt_to_py` convert at the
boundary with Qt (``desktop.term_highlighter``), and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from medcore.redflags import RedFlag
from medcore.terms import TermCheck

# Background colours (the term panel uses the same ones for its status column).
OK = "#c8f0c8"
MISSING = "#ffc9c0"        # a term to review: also underlined with a wavy line
PENDING = "#fff3b0"        # found in the source, nothing translated yet
ADVISORY = "#e8e8e8"       # a general-dictionary word: shown, not flagged
ACCEPTED = "#d6e8ff"       # the reviewer accepted the model's wording
FLAG = "#ffd8a8"           # a sentence with a clinical red flag
STATUS_COLORS = {"ok": OK, "missing": MISSING, "accepted": ACCEPTED, "advisory": ADVISORY}


def py_to_qt(text: str, index: int) -> int:
    """Python string index -> Qt document position (UTF-16 code units)."""
    return len(text[:index].encode("utf-16-le")) // 2


def qt_to_py(text: str, pos: int) -> int:
    """Qt document position (UTF-16 code units) -> Python string index.

    A position inside a surrogate pair (between the two halves of 𠮷) maps to the character after it.
    """
    units = 0
    for i, ch in enumerate(text):
        if units >= pos:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


@dataclass(frozen=True)
class Mark:
    """A highlight: characters ``start:end`` (Python indices) on a ``color`` background."""

    start: int
    end: int
    color: str

    @property
    def wavy(self) -> bool:
        """A term to review is underlined as well (colour alone is not enough to see it)."""
        return self.color == MISSING

    def qt_range(self, text: str) -> tuple[int, int]:
        """(start, end) as Qt document positions in ``text``."""
        return py_to_qt(text, self.start), py_to_qt(text, self.end)


def flagged_segments(segments: Sequence, flags: Sequence[RedFlag]) -> list:
    """The segments (sentences, each with ``start``/``end`` in the source) that carry a red flag, in order."""
    indexes = {f.segment for f in flags if f.segment is not None}
    return [seg for i, seg in enumerate(segments) if i in indexes]


def source_marks(checks: Sequence[TermCheck], translated: bool, flagged: Sequence = ()) -> list[Mark]:
    """The source pane's highlights: flagged sentences first, so the terms are painted over them;
    each term in its status colour once translated, else as pending."""
    marks = [Mark(seg.start, seg.end, FLAG) for seg in flagged]
    marks += [Mark(c.hit.span.start, c.hit.span.end, STATUS_COLORS[c.status] if translated else PENDING)
              for c in checks]
    return marks


def target_marks(checks: Sequence[TermCheck], translated: bool) -> list[Mark]:
    """The translation pane's highlights: the expected translations found there (none before it is done)."""
    if not translated:
        return []
    return [Mark(c.found.start, c.found.end, OK) for c in checks if c.found]


def term_at(checks: Sequence[TermCheck], pos: int, side: Literal["source", "target"]) -> int | None:
    """Row of the term under Python index ``pos`` of the source or the translation, else None."""
    for row, check in enumerate(checks):
        span = check.hit.span if side == "source" else check.found
        if span is not None and span.start <= pos < span.end:
            return row
    return None


def segment_pair(result, src_span: tuple[int, int],
                 tgt_span: tuple[int, int] | None) -> tuple[str, str, tuple[int, int], tuple[int, int] | None]:
    """The sentence pair a term sits in, as the engine translated it: ``(source, translation, src_span,
    tgt_span)`` with the spans moved into that pair.

    The engine translates a document one sentence per prompt, so the attention that explains a term
    is the attention of its sentence's prompt; a forward pass over the whole document would be a
    different computation (and, on a long note, a slow one). ``result`` is the finished
    :class:`~runtime.results.TranslationResult`; ``src_span``/``tgt_span`` index its whole source and
    translation. The term's translation is looked for in its own sentence's output (``tgt_span`` may
    point at the same words in another sentence, or be None): ``None`` when it is not there. A
    result whose segments cannot be placed gives the whole pair back unchanged.
    """
    whole = (result.source, result.translation, src_span, tgt_span)
    segments = list(result.segments)
    if len(segments) <= 1:
        return whole
    starts, cursor = [], 0  # where each segment's translation begins in the whole translation
    for seg in segments:
        at = result.translation.find(seg.translation, cursor)  # an empty one (stopped) is found at cursor
        if at < 0:
            return whole
        starts.append(at)
        cursor = at + len(seg.translation)
    inside = [i for i, seg in enumerate(segments) if seg.start <= src_span[0] < seg.end and src_span[1] <= seg.end]
    if not inside:
        return whole
    seg, at = segments[inside[0]], starts[inside[0]]
    local_src = (src_span[0] - seg.start, src_span[1] - seg.start)
    local_tgt = None
    if tgt_span is not None:
        if at <= tgt_span[0] and tgt_span[1] <= at + len(seg.translation):
            local_tgt = (tgt_span[0] - at, tgt_span[1] - at)
        else:
            words = result.translation[tgt_span[0]:tgt_span[1]]
            found = seg.translation.lower().find(words.lower()) if words else -1
            local_tgt = (found, found + len(words)) if found >= 0 else None
    return seg.source, seg.translation, local_src, local_tgt
