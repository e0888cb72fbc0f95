"""The translation pane's text while a document's segments are translated side by side.

Segments finish out of order; each one's text goes to its own place, between the separators the
final translation will have (line breaks, spaces), and a segment not started yet shows a
placeholder. Qt-free: :meth:`DocumentView.add` says which characters of the current text to
replace, so the window edits its document in place instead of resetting it on every token.
"""

from __future__ import annotations

PLACEHOLDER = "…"


class DocumentView:
    """Segments' texts in order, each followed by its separator; ``None`` = nothing yet (placeholder)."""

    def __init__(self, separators: list[str]):
        self.separators = list(separators)
        self.texts: list[str | None] = [None] * len(self.separators)

    def text(self) -> str:
        return "".join((t if t is not None else PLACEHOLDER) + sep for t, sep in zip(self.texts, self.separators,
                                                                                     strict=True))

    def start_of(self, index: int) -> int:
        """Offset (Python characters) of segment ``index`` in :meth:`text`."""
        return sum(len(t if t is not None else PLACEHOLDER) + len(s)
                   for t, s in zip(self.texts[:index], self.separators[:index], strict=True))

    def add(self, index: int, piece: str) -> tuple[int, int, str]:
        """Append ``piece`` to segment ``index``: ``(offset, characters to replace there, new text)``."""
        start = self.start_of(index)
        current = self.texts[index]
        if current is None:
            self.texts[index] = piece
            return start, len(PLACEHOLDER), piece
        self.texts[index] = current + piece
        return start + len(current), 0, piece
