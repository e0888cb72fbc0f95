"""The app's attention engine: attention captured from llama.cpp on the weights that translate.

:class:`LlamaAttentionEngine` gives the views the same :class:`~desktop.attention.engine.AttentionResult`
as the transformers reference engine (same cutting to source + translation, renormalising, token
merging; :func:`~desktop.attention.engine.assemble` does both), but its numbers come from llama.cpp's
own forward pass (:mod:`runtime.attention_capture`): the quantised GGUF the app translates with (its
plain kernels, as for every prompt-sized batch), the tuned model's runtime LoRA stack. "Compare with base model" is the
same pass with the adapter stack switched off. No torch anywhere on this path.

Differences from the transformers engine, all measured against it in
``tests/attention/test_llama_engine.py``: the weights are the quantised ones (the reference runs them
dequantised to fp32), and rows are renormalised from f32 probabilities rather than log-weights (a
source share as faint as the 1.5B's 3e-13 is still a normal f32 number).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from desktop.attention import tokens as tok
from desktop.attention.engine import AttentionResult, Progress, ResultCache, assemble


class LlamaAttentionEngine:
    """Attention from llama.cpp (eval callback, flash attention off), cached per pair.

    ``model``: a GGUF, bundled model name or tuned-model spec (its GGUF LoRA stack is applied, as when
    translating). ``adapters``: extra GGUF LoRA files. ``repack``: weight repacking (off by default; see :class:`runtime.attention_capture.AttentionCapture`).
    ``max_mb``: memory cap for one pair's attention (default ``$TSX_ATTENTION_MAX_MB`` or 192 MiB).
    ``base_model``: for a model without adapters (a merged export), another model to compare with
    (opened on first use); with adapters, the base is the same weights with the stack switched off.
    """

    def __init__(self, model: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] = (), *,
                 repack: bool | None = False, threads: int | None = None, n_ctx: int = 2048,
                 max_mb: float | None = None, cache_size: int = 16,
                 base_model: str | os.PathLike[str] | None = None):
        from runtime.attention_capture import AttentionCapture
        from runtime.model_hash import model_sha256

        for adapter in adapters:
            if Path(adapter).is_dir():
                raise ValueError(f"{adapter} is a PEFT adapter directory; the app's attention runs in llama.cpp and "
                                 "needs GGUF LoRA files: convert it with `tsx-convert lora` (or load a tuned-model spec)")
        self.model_path = str(model)
        self.base_model = str(base_model) if base_model else None
        self._engine_args = {"repack": repack, "threads": threads, "n_ctx": n_ctx, "max_mb": max_mb,
                             "cache_size": cache_size}
        self._base_engine: LlamaAttentionEngine | None = None
        self.cache_size = cache_size
        # model_sha256: the app's cached hash of the base (adapters are checked against it), not 1 GB re-read.
        self._capture = AttentionCapture(model, adapters, repack=repack, n_threads=threads, n_ctx=n_ctx,
                                         max_bytes=None if max_mb is None else int(max_mb * 2**20),
                                         hasher=model_sha256)
        self._cache = ResultCache(cache_size)
        self._lock = threading.RLock()
        self.last_stats: dict[str, Any] = {}

    # -- interface -------------------------------------------------------------------------------
    @property
    def capture(self) -> Any:
        return self._capture

    @property
    def loaded(self) -> bool:
        return self._capture.loaded

    @property
    def has_base(self) -> bool:
        """Whether "compare with base model" has something to compare: adapters to switch off, or a base model."""
        if self.base_model is not None:
            return True
        if not self._capture.loaded:
            try:
                from medcore.modelspec import resolve

                return bool(resolve(os.path.expanduser(self.model_path)).adapters or self._capture.extra_adapters)
            except Exception:  # noqa: BLE001 - an unloadable model has nothing to compare with
                return False
        return self._capture.has_adapters

    def describe(self) -> str:
        return self._capture.describe()

    def load(self, progress: Progress | None = None) -> None:
        with self._lock:
            self._capture.load(progress)

    def compute(self, source: str, translation: str, direction: str, *, base: bool = False,
                progress: Progress | None = None, terms: Sequence[tuple[str, str]] = ()) -> AttentionResult:
        if base and self.base_model is not None:
            with self._lock:
                self._capture.load(progress)  # whether the model has adapters of its own decides
        if base and self.base_model is not None and not self._capture.has_adapters:
            if self._base_engine is None:
                self._base_engine = LlamaAttentionEngine(self.base_model, **self._engine_args)
            result = self._base_engine.compute(source, translation, direction, progress=progress, terms=terms)
            result.variant = "base"
            return result
        terms = tuple((str(a), str(b)) for a, b in terms)
        key = (source, translation, direction, bool(base), terms)
        with self._lock:
            if (cached := self._cache.hit(key)) is not None:
                return cached
            self._capture.load(progress)
            if base and not self._capture.has_adapters:
                raise ValueError("no base model to compare with: this model has no adapters")
            if progress:
                progress("Running the model" + (" (base weights)" if base else ""))
            result = self._compute(source, translation, direction, base, terms)
            self._cache.put(key, result)
            return result

    def close(self) -> None:
        with self._lock:
            self._capture.close()
            self._cache.clear()
            if self._base_engine is not None:
                self._base_engine.close()
                self._base_engine = None

    # -- internals -------------------------------------------------------------------------------
    def _compute(self, source: str, translation: str, direction: str, base: bool,
                 terms: Sequence[tuple[str, str]] = ()) -> AttentionResult:
        from runtime.attention_capture import CaptureStats

        cap = self._capture
        layout = cap.layout(source, translation, direction, terms)
        cap.check_size(layout)
        kept, gen_rows = layout.kept, layout.gen_rows
        # One capture of every needed query row (kept + the last header token, which produced the
        # first translation token); the two arrays assemble() wants are views into it.
        rows = kept + [r for r in gen_rows if r not in set(kept)]
        stats = CaptureStats()
        # The prompt's text before the source is the same for every pair of a direction: its keys and
        # values are reused from the last capture (runtime.attention_capture), as the transformers
        # engine reuses its prefix cache; a third of the tokens or fewer are computed per click.
        block = cap.capture(layout.ids, rows, kept, adapters=not base, reuse_prefix=layout.src_pos[0], stats=stats)
        index = {p: i for i, p in enumerate(rows)}
        raw = block[:, :, [index[p] for p in kept]]
        raw_gen = block[:, :, [index[p] for p in gen_rows]]
        del block

        src_units = tok.merge_pieces(source, layout.src_spans)
        tgt_units = tok.merge_pieces(translation, layout.tgt_spans)
        arrays = assemble(raw, raw_gen, src_units, tgt_units, len(layout.src_pos), len(layout.tgt_pos),
                          dtype=np.float32)  # f32 probabilities in, f32 arithmetic is enough (see renormalise)
        variant = "base" if base else ("fine-tuned" if cap.has_adapters else "model")
        self.last_stats = {"tokens": stats.tokens, "seconds": stats.seconds, "kept_bytes": stats.kept_bytes}
        result = AttentionResult(
            source=source, translation=translation, direction=direction,
            src_tokens=[u.text for u in src_units], tgt_tokens=[u.text for u in tgt_units],
            src_spans=np.array([u.span for u in src_units], dtype=np.int64).reshape(-1, 2),
            tgt_spans=np.array([u.span for u in tgt_units], dtype=np.int64).reshape(-1, 2),
            model=self.describe(), variant=variant, n_pieces=(len(layout.src_pos), len(layout.tgt_pos)),
            meta={"prompt_tokens": layout.prompt_len, "total_tokens": len(layout.ids), "engine": "llama.cpp",
                  "capture_seconds": round(stats.seconds, 4), "reused_prefix_tokens": stats.meta.get("reused_prefix", 0), "repack": bool(getattr(cap.llm, "tsx_repack", False)),
                  "model_file": Path(str(cap.base_path)).name},
            **arrays,
        )
        result.validate()
        return result


__all__ = ["LlamaAttentionEngine"]
