"""The attention checks: the real attention of the translated pair captured from llama.cpp, and its
term view and head view drawn in QtWebEngine (see :mod:`desktop.selftest`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from desktop.selftest.report import CheckFailed


def pick_term(translation: str, tgt_lang: str) -> tuple[int, int]:
    """A term to inspect in the translation: the longest Latin word (en) or 4-character run (zh)."""
    import re

    pattern = r"[A-Za-z][A-Za-z-]{2,}" if tgt_lang == "en" else r"[\u4e00-\u9fff]{2,4}"
    spans = [m.span() for m in re.finditer(pattern, translation)]
    if not spans:
        spans = [m.span() for m in re.finditer(r"\S+", translation)]
    if not spans:
        raise CheckFailed("the translation has no word to inspect")
    return max(spans, key=lambda s: s[1] - s[0])


def check_attention(engine: Any, source: str, translation: str, direction: str) -> tuple[dict[str, Any], Any]:
    """Real attention of the pair from llama.cpp (``engine``: a LlamaAttentionEngine); checks and a summary."""
    from desktop.attention.alignment import align_term
    from medcore.prompt import split_direction

    started = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - started
    _, tgt_lang = split_direction(direction)
    span = pick_term(translation, tgt_lang)
    t0 = time.perf_counter()
    result = engine.compute(source, translation, direction)
    compute_s = time.perf_counter() - t0
    result.validate()  # shapes; every row sums to 1
    alignment = align_term(result, span)
    capture = engine.capture
    detail = {"engine": "llama.cpp", "model": engine.describe(), "layers": result.n_layers, "heads": result.n_heads,
              "tokens": {"source": result.n_src, "translation": result.n_tgt},
              "term": translation[span[0]:span[1]], "src_text": alignment.src_text,
              "confidence": round(alignment.confidence, 3), "weak": alignment.weak,
              "kept_mass_mean": round(float(result.kept_mass.mean()), 3), "compare_with_base": engine.has_base,
              "load_seconds": round(load_s, 3), "compute_seconds": round(compute_s, 3),
              "repack": result.meta.get("repack"), "torch_imported": "torch" in sys.modules}
    if (result.n_layers, result.n_heads) != (capture.n_layers, capture.n_heads):
        raise CheckFailed("the attention does not cover every layer and head of the model", detail)
    if not (0.0 < result.kept_mass.mean() < 1.0):
        raise CheckFailed("the attention rows do not look like the model's (no share on the prompt scaffolding)", detail)
    if detail["torch_imported"]:
        raise CheckFailed("torch was imported on the app's path (the bundle ships without it)", detail)
    return detail, span


def build_attention_pages(engine: Any, source: str, translation: str, direction: str, span: tuple[int, int],
                          out_dir: Path) -> tuple[str, dict[str, Any], Any]:
    """The term view and the head view of the pair's real attention, written as the app writes them."""
    from desktop.attention.session import ViewRequest, build_views

    request = ViewRequest(source, translation, direction, span, None, views=("term", "head"))
    built = build_views(engine, request, out_dir)
    detail = {"engine": engine.describe(), "term": translation[span[0]:span[1]],
              "pages": {k: {"path": str(v), "bytes": v.stat().st_size} for k, v in built.paths.items()},
              "timings": {k: round(v, 3) for k, v in built.timings.items()},
              "tokens": {"source": len(built.result.src_tokens), "translation": len(built.result.tgt_tokens)}}
    return "ok", detail, built



def render_page(path: Path, png: Path, timeout_ms: int) -> dict[str, Any]:
    """Draw one page in the app's AttentionView; fail on timeout, remote requests or a blank picture."""
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from desktop.attention import view as view_mod

    app = QApplication.instance()
    view = view_mod.AttentionView()
    view.resize(1100, 700)
    view.show()
    try:
        t0 = time.perf_counter()
        drawn = view.load_and_wait(path, timeout_ms=timeout_ms)
        detail: dict[str, Any] = {"draw_seconds": round(time.perf_counter() - t0, 3), "drawn": drawn,
                                  "requests": len(view.interceptor.requests)}
        remote = view.interceptor.remote_requests()
        console = list(getattr(view.page(), "console", []))
        errors = [c for c in console if c.lower().startswith("error")]
        if errors:
            detail["console_errors"] = errors[:5]
        if remote:
            raise CheckFailed(f"the page asked for {len(remote)} remote resource(s): {remote[:3]}",
                              {**detail, "remote": remote})
        if not drawn:
            raise CheckFailed(f"the page did not report it was drawn within {timeout_ms / 1000:.0f} s", detail)
        view.save_png(png, full_page=False)
        image = QImage(str(png))
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
        detail.update({"png": str(png), "png_size": [image.width(), image.height()], "colours_sampled": len(colours)})
        if image.isNull() or len(colours) < 3:
            raise CheckFailed("the picture of the page is blank", detail)
        return detail
    finally:
        view.dispose()
        view.deleteLater()
        if app is not None:
            app.processEvents()

