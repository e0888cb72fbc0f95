"""The engine's parallel path: a document's segments (or a test set's) decoded side by side.

One llama.cpp context beside the ``Llama``'s own (:class:`runtime.parallel_decode.ParallelDecoder`)
takes several segments at once: same prompts, same budgets, greedy, so the same text as the
sequential path; the output still comes out in the input's order (:func:`translate_in_order`).
:class:`SideBySide` keeps that context for one loaded model: made at load, made again only for more
slots, and left out, with the reason said (:attr:`SideBySide.note`), when the memory is not there or
llama.cpp refuses it; the engine then translates one segment after another.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from runtime.errors import EngineError
from runtime.gguf_header import GGUFInfo
from runtime.machine import available_memory, default_threads
from runtime.options import LoadOptions
from runtime.results import SegmentResult, TranslationResult
from runtime.segment import Segment, StrippedStream, separator_after

log = logging.getLogger("tsx_medtrans.engine")

# Automatic parallelism: sequences decoded side by side at most (benchmarks/bench_parallel.py).
AUTO_PARALLEL = 8
# KV cells the parallel context gets per sequence at least (a sentence's prompt is ~60-90 tokens and
# its budget 2 x source + 48): with the default context of 2048, 8 sequences get 4096 cells.
PARALLEL_CELLS_PER_SLOT = 512
# Compute buffers of the parallel context on top of its KV cache (measured: ~60 MB on the 1.5B).
_PARALLEL_OVERHEAD_BYTES = 100 * 1024**2


class SideBySide:
    """The parallel decoder of one loaded model (``llm``, its header ``gguf``, usable context ``n_ctx``)."""

    def __init__(self, llm: Any, gguf: GGUFInfo, n_ctx: int, options: LoadOptions):
        self.llm, self.gguf, self.n_ctx, self.options = llm, gguf, n_ctx, options
        self.decoder: Any = None        # runtime.parallel_decode.ParallelDecoder
        self.note: str | None = None    # why segments cannot run side by side, if they cannot

    def close(self) -> None:
        if self.decoder is not None:
            self.decoder.close()  # its context goes before the model
        self.decoder, self.note = None, None

    def decoder_for(self, slots: int) -> Any:
        """The context that decodes up to ``slots`` segments side by side (made at load, again only for
        more slots), or None with the reason in :attr:`note` (too little free memory, llama.cpp refused)."""
        from runtime.parallel_decode import DecodeError, ParallelDecoder

        if self.decoder is not None and not self.decoder.closed and self.decoder.n_slots >= slots:
            return self.decoder
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
        gguf = self.gguf
        # A second KV cache, shared by all slots: the context size, or more for many slots; never more
        # than the model was trained for. Plus compute buffers.
        n_ctx = max(self.n_ctx, min(PARALLEL_CELLS_PER_SLOT * slots, gguf.train_ctx or self.n_ctx))
        need = gguf.kv_cache_bytes(n_ctx) + _PARALLEL_OVERHEAD_BYTES
        available = available_memory()
        if available is not None and need > available:
            self.note = (f"segments are translated one after another: parallel decoding needs about "
                         f"{need / 1024**2:.0f} MB more memory and {available / 1024**2:.0f} MB are free")
            log.warning("%s", self.note)
            return None
        try:
            self.decoder = ParallelDecoder(self.llm, slots, n_ctx, n_batch=self.options.n_batch,
                                           n_threads=self.options.n_threads or default_threads())
        except DecodeError as exc:
            self.note = f"segments are translated one after another: {exc}"
            log.warning("%s", self.note)
            return None
        self.note = None
        log.info("parallel decoding ready: up to %d sequences in %d tokens of context", slots, self.decoder.n_ctx)
        return self.decoder

    def slots_for(self, requests: Sequence[Any], parallel: int | None) -> tuple[int, Any]:
        """(sequences side by side, decoder) for these requests: 1 and None for the sequential path.

        ``parallel``: None = the loaded options' setting, 0 = automatic, 1 = one after another.
        """
        from runtime.parallel_decode import choose_slots, common_prefix_length, slot_need

        wanted = self.options.parallel if parallel is None else parallel
        if wanted == 1 or len(requests) < 2:
            return 1, None
        decoder = self.decoder_for(min(wanted or AUTO_PARALLEL, len(requests)))
        if decoder is None:
            return 1, None
        prefix = common_prefix_length([r.tokens for r in requests])
        n = choose_slots(min(wanted or AUTO_PARALLEL, decoder.n_slots), [slot_need(r, prefix) for r in requests],
                         prefix, decoder.n_ctx)
        return (n, decoder) if n > 1 else (1, None)


def decode(decoder: Any, slots: int, segments: list[Segment], requests: list[Any], cancel: threading.Event | None,
           on_piece: Callable[[int, str], None],
           on_done: Callable[[int, SegmentResult], None]) -> list[SegmentResult | None]:
    """Run ``requests`` side by side; SegmentResults by segment (None for one a Stop never started)."""
    from runtime.parallel_decode import DecodeError

    streams = [StrippedStream() for _ in segments]
    out: list[SegmentResult | None] = [None] * len(segments)

    def piece(index: int, text: str) -> None:
        body = streams[index].feed(text)
        if body:
            on_piece(index, body)

    def done(res: Any) -> None:
        seg, req = segments[res.index], requests[res.index]
        translation = res.text.strip()
        out[res.index] = SegmentResult(
            index=res.index, start=seg.start, end=seg.end, source=seg.text, translation=translation,
            prompt_tokens=len(req.tokens), generated_tokens=len(res.token_ids),
            max_tokens=req.max_tokens, first_token_s=res.first_token_s, seconds=res.seconds,
            finish_reason=res.finish_reason)
        on_done(res.index, out[res.index])

    try:
        decoder.run(requests, cancel=cancel, on_piece=piece, on_done=done, slots=slots)
    except DecodeError as exc:
        raise EngineError(f"parallel translation failed: {exc}. Set parallel segments to 1 to translate "
                          "one after another.") from None
    return out


def translate_in_order(result: TranslationResult, segments: list[Segment], requests: list[Any], decoder: Any,
                       slots: int, tgt_lang: str, cancel: threading.Event | None, emit: Callable[[str], None],
                       on_segment: Callable[[SegmentResult, int], None] | None,
                       on_progress: Callable[[int, int], None] | None,
                       on_segment_piece: Callable[[int, str], None] | None) -> None:
    """Segments side by side; ``emit`` still gets the output in order: the earliest unfinished segment
    streams live, later ones are held back until every segment before them is out."""
    total = len(segments)
    held: list[list[str]] = [[] for _ in segments]
    finished: list[SegmentResult | None] = [None] * total
    frontier = 0   # every segment before it has been emitted in full, with its separator
    n_done = 0

    def sep(index: int) -> str:
        return separator_after(segments[index], tgt_lang, last=index + 1 == total)

    def advance() -> None:
        nonlocal frontier
        while frontier < total and finished[frontier] is not None:
            if finished[frontier].finish_reason == "cancelled":
                return
            emit(sep(frontier))
            frontier += 1
            if frontier < total:
                for text in held[frontier]:
                    emit(text)
                held[frontier].clear()

    def on_piece(index: int, text: str) -> None:
        if on_segment_piece:
            on_segment_piece(index, text)
        if index == frontier:
            emit(text)
        else:
            held[index].append(text)

    def on_done(index: int, seg: SegmentResult) -> None:
        nonlocal n_done
        seg.separator = sep(index) if seg.finish_reason != "cancelled" else ""
        finished[index] = seg
        n_done += 1
        if on_segment:
            on_segment(seg, total)
        if on_progress:
            on_progress(n_done, total)
        advance()

    outcome = decode(decoder, slots, segments, requests, cancel, on_piece, on_done)
    # After a Stop: what the later started segments have, in order (segments start in order, so the
    # started ones are a prefix of the document; a stopped one keeps its place and its separator).
    for index in range(frontier + 1, total):
        if outcome[index] is None:
            break
        before = outcome[index - 1]
        assert before is not None
        before.separator = sep(index - 1)
        emit(before.separator)
        for text in held[index]:
            emit(text)
    result.segments = [s for s in outcome if s is not None]
    result.cancelled = any(s.finish_reason == "cancelled" for s in result.segments) or len(result.segments) < total
