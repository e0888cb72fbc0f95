"""One "inspect this term" request end to end: engine -> alignment -> pages on disk.

Shared by the dock (on its worker thread), the ``attention`` CLI and the benchmark, so the three
produce the same files.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from desktop.attention import page as pages
from desktop.attention.alignment import TermAlignment, align_term
from desktop.attention.engine import AttentionEngine, AttentionResult

VIEWS = ("term", "head", "model")


@dataclass(frozen=True)
class ViewRequest:
    source: str
    translation: str
    direction: str
    tgt_span: tuple[int, int] | None = None
    src_span: tuple[int, int] | None = None
    compare: bool = False  # add the base model's term view side by side
    views: tuple[str, ...] = VIEWS
    terms: tuple[tuple[str, str], ...] = ()  # the term block the translation's prompt carried

    @property
    def term(self) -> pages.TermSelection | None:
        return None if self.tgt_span is None else pages.TermSelection(tuple(self.tgt_span), self.src_span)

    def key(self) -> str:
        return hashlib.sha256(repr(self).encode("utf-8")).hexdigest()[:16]


@dataclass
class ViewPages:
    request: ViewRequest
    paths: dict[str, Path]
    result: AttentionResult
    alignment: TermAlignment | None = None
    base_alignment: TermAlignment | None = None
    timings: dict[str, float] = field(default_factory=dict)


def build_views(engine: AttentionEngine, request: ViewRequest, out_dir: str | Path,
                progress: Callable[[str], None] | None = None) -> ViewPages:
    """Compute attention (cached by the engine), align the term and write the requested pages."""
    out = Path(out_dir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    result = engine.compute(request.source, request.translation, request.direction, progress=progress,
                            terms=request.terms)
    timings["compute"] = time.perf_counter() - t0
    alignment = alt = base_alignment = None
    panels = []
    term = request.term
    if term is not None:
        alignment = align_term(result, term.tgt_span, term.src_span)
        alt = align_term(result, term.tgt_span, term.src_span, query="term")
        label = "Fine-tuned (adapters on)" if result.variant == "fine-tuned" else "This model"
        panels.append(pages.term_panel(result, alignment, label, alt, band=alignment.band))
        if request.compare and engine.has_base:
            t1 = time.perf_counter()
            base = engine.compute(request.source, request.translation, request.direction, base=True,
                                  progress=progress, terms=request.terms)
            timings["compute_base"] = time.perf_counter() - t1
            base_alignment = align_term(base, term.tgt_span, term.src_span)
            base_alt = align_term(base, term.tgt_span, term.src_span, query="term")
            label = "Base (adapters disabled)" if result.variant == "fine-tuned" else "Base model"
            panels.append(pages.term_panel(base, base_alignment, label, base_alt, band=base_alignment.band))
    if progress:
        progress("Building the views")
    t2 = time.perf_counter()
    paths: dict[str, Path] = {}
    key = request.key()
    for view in request.views:
        if view == "term":
            if term is None:
                continue
            html = pages.term_view_html(request.source, request.translation, request.direction, term, panels)
        elif view == "head":
            html = pages.head_view_html(result, term, layer=alignment.peak_layer if alignment else None)
        elif view == "model":
            html = pages.model_view_html(result, term, layer=alignment.peak_layer if alignment else None,
                                         head=alignment.peak_head if alignment else None)
        else:
            raise ValueError(f"unknown view {view!r} (expected one of {', '.join(VIEWS)})")
        paths[view] = pages.write_page(html, out / f"{view}-{key}.html")
    timings["pages"] = time.perf_counter() - t2
    return ViewPages(request, paths, result, alignment, base_alignment, timings)
