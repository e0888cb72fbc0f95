"""Greedy decoding of several prompts side by side in one llama.cpp context (continuous batching).

Decoding one sequence on a CPU is memory-bandwidth bound: every token reads all the weights once.
A ``llama_batch`` that carries one token of each of several sequences reads them once for all, so
a document's independent segments are translated together (on the 1.5B, 2 threads: 8.8 tok/s for
one sequence, 17.6 for four, 22.6 for eight). :class:`ParallelDecoder` does this with
llama-cpp-python's low-level API, on its own ``llama_context`` made on an open ``llama_cpp.Llama``'s
model (the ``Llama``'s own context keeps serving the sequential path untouched):

- **Slots.** ``n_slots`` sequence ids share one unified KV cache (``n_seq_max = n_slots + 1``,
  ``kv_unified``); each slot has its own positions. One more sequence id holds the shared prompt
  prefix.
- **Shared prefix.** The longest common token prefix of the prompts (system message and instruction,
  as the chat template rendered them) is evaluated once, together with the first prompt, and copied
  to every other slot with ``llama_memory_seq_cp`` (the cells are shared, not duplicated).
- **Continuous batching.** Each ``llama_decode`` carries the next token of every running sequence
  plus, up to ``n_batch``, the prompt tokens of sequences being admitted. A sequence that ends (any
  end-of-generation token, or its token budget) frees its slot (``llama_memory_seq_rm``) and the
  next prompt is admitted there.
- **Bounded memory.** The KV cache has a fixed size (``n_ctx`` cells). A prompt is admitted only
  when its tokens plus its whole output budget fit beside what the running ones have reserved, so
  decoding never runs out of cells and a long document never holds more than ``n_slots`` sequences.
- **First token first.** The first prompt is evaluated alone before any other, so its first token
  comes as fast as on the sequential path; the other prompts are evaluated in the following steps.
  The prefix stays in the cache between runs (as llama-cpp-python keeps the previous prompt for the
  sequential path): the next document evaluates only what its prefix does not share with it.
- **Greedy** = argmax of the logits, first index on ties (what llama.cpp's greedy sampler picks).
- The runtime LoRA stack of the ``Llama`` (:mod:`runtime.adapters`) is applied to this context too,
  active or not as it is on the ``Llama`` (:meth:`ParallelDecoder.sync_adapters`).

No Qt, no torch; ``llama_cpp`` is imported only when a decoder is made.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class DecodeError(RuntimeError):
    """llama.cpp could not run a batch, or a prompt can never fit this decoder's context."""


@dataclass(frozen=True)
class Request:
    """One prompt (token ids, as the sequential path would evaluate them) and its output budget."""

    tokens: Sequence[int]
    max_tokens: int


@dataclass
class SequenceResult:
    """What one prompt produced. Times are seconds from the moment its slot took it."""

    index: int
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "cancelled"   # "stop" | "length" | "cancelled"
    first_token_s: float | None = None
    seconds: float = 0.0
    started: bool = False              # False: never admitted (cancelled before it had a slot)


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token of its own (its logits come from there)."""
    if not prompts:
        return 0
    first = prompts[0]
    limit = min(len(p) for p in prompts) - 1
    n = 0
    while n < limit and all(p[n] == first[n] for p in prompts):
        n += 1
    return max(n, 0)


def slot_need(request: Request, prefix: int) -> int:
    """KV cells one request holds at most beside the shared prefix: its own prompt tokens and its whole budget."""
    return len(request.tokens) - prefix + request.max_tokens


def choose_slots(requested: int, needs: Sequence[int], prefix: int, n_ctx: int) -> int:
    """How many sequences to run together: at most ``requested``, one per request, and as many as the
    typical request lets share ``n_ctx`` cells (the median need; admission control handles the larger ones)."""
    if not needs:
        return 1
    typical = sorted(needs)[len(needs) // 2]
    by_ctx = max(1, (n_ctx - prefix) // max(typical, 1))
    return max(1, min(requested, len(needs), by_ctx))


@dataclass
class _Slot:
    seq: int
    index: int = -1                 # request index, -1 = free
    feed: list[int] = field(default_factory=list)   # prompt tokens not yet evaluated
    pos: int = 0                    # next position in this sequence
    reserved: int = 0
    logits_row: int = -1            # row of this slot's logits in the last batch, -1 = none
    result: SequenceResult | None = None
    decoder: Any = None             # incremental UTF-8 decoder of the output bytes
    t0: float = 0.0


class ParallelDecoder:
    """Up to ``n_slots`` greedy sequences at once on ``llm``'s model, in a context of ``n_ctx`` cells.

    Make one per translation run (or keep it while the model stays loaded); :meth:`close` frees the
    context (it is also freed, before the model, when the ``Llama`` closes). One thread at a time.
    """

    def __init__(self, llm: Any, n_slots: int, n_ctx: int, n_batch: int | None = None,
                 n_threads: int | None = None):
        import llama_cpp
        from llama_cpp import _internals

        if n_slots < 1:
            raise ValueError("n_slots must be at least 1")
        self._C = llama_cpp
        self.llm = llm
        self.n_slots = int(n_slots)
        self.prefix_seq = self.n_slots          # the extra sequence that keeps the shared prefix
        params = llama_cpp.llama_context_params()
        ctypes.pointer(params)[0] = llm.context_params  # same threads, rope, KV types, flash attention
        params.n_ctx = int(n_ctx)
        params.n_batch = params.n_ubatch = int(n_batch or min(llm.context_params.n_batch, n_ctx))
        params.n_seq_max = self.n_slots + 1
        params.kv_unified = True   # one cache: the prefix's cells are shared by every slot, not copied
        params.no_perf = True
        params.cb_eval = ctypes.cast(None, type(params.cb_eval))   # no callbacks of the Llama's context
        params.cb_eval_user_data = None
        params.abort_callback = ctypes.cast(None, type(params.abort_callback))
        params.abort_callback_data = None
        if n_threads:
            params.n_threads = params.n_threads_batch = int(n_threads)
        try:
            self._ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        except ValueError as exc:
            raise DecodeError(f"llama.cpp could not make a context of {n_ctx} tokens for {n_slots} sequences "
                              "(not enough memory?)") from exc
        self.ctx = self._ctx.ctx
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(self.ctx))
        self.n_batch = int(params.n_batch)
        self.vocab = llm._model.vocab
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, self.n_slots + 1)
        self._closed = False
        self._lock = threading.Lock()
        self.adapters_active: bool | None = None
        self._prefix_cached: list[int] = []   # tokens the prefix sequence holds now (positions 0..)
        self.sync_adapters()
        # Freed before the model even if the owner forgets close(): Llama.close() unwinds its stack.
        llm._stack.callback(self.close)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._C.llama_batch_free(self._batch)
            self._ctx.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def sync_adapters(self) -> None:
        """Apply the ``Llama``'s runtime LoRA stack here as it is there (active or off)."""
        from runtime.adapters import set_stack

        handles = getattr(self.llm, "tsx_lora_handles", None) or []
        active = bool(getattr(self.llm, "tsx_adapters_active", False)) and bool(handles)
        if self.adapters_active == active:
            return
        if not set_stack(self.ctx, self.llm, active):
            raise DecodeError("llama.cpp refused the LoRA adapter stack for the parallel context")
        self._C.llama_memory_clear(self.mem, True)  # computed with other weights
        self._prefix_cached = []
        self.adapters_active = active

    # ------------------------------------------------------------------ helpers
    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self._C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._C.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _argmax(self, row: int) -> int:
        import numpy as np

        ptr = self._C.llama_get_logits_ith(self.ctx, row)
        if not ptr:
            raise DecodeError(f"llama.cpp returned no logits for batch row {row}")
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))))

    def _add(self, n: int, token: int, pos: int, seqs: Sequence[int], logits: bool) -> None:
        b = self._batch
        b.token[n] = token
        b.pos[n] = pos
        b.n_seq_id[n] = len(seqs)
        for k, s in enumerate(seqs):
            b.seq_id[n][k] = s
        b.logits[n] = 1 if logits else 0

    # ------------------------------------------------------------------ decoding
    def run(self, requests: Sequence[Request], cancel: threading.Event | None = None,
            on_piece: Callable[[int, str], None] | None = None,
            on_done: Callable[[SequenceResult], None] | None = None,
            slots: int | None = None) -> list[SequenceResult]:
        """Decode every request greedily; results in the requests' order.

        ``on_piece(index, text)`` gets each request's output text as it grows (a character split over
        tokens comes when complete; invalid UTF-8 is dropped); ``on_done(result)`` each result as it ends,
        in the order they end. ``cancel`` is checked after every batch: the running sequences end as
        ``"cancelled"`` with what they have, the ones never started are returned with ``started=False``.
        ``slots``: use at most this many of the decoder's sequences (default: all).
        """
        if self._closed:
            raise DecodeError("this parallel decoder is closed")
        C = self._C
        self.sync_adapters()
        results = [SequenceResult(index=i) for i in range(len(requests))]
        if not requests:
            return results
        for i, r in enumerate(requests):
            if len(r.tokens) < 1 or r.max_tokens < 1:
                raise ValueError(f"request {i} has no prompt tokens or no output budget")
        prefix = common_prefix_length([r.tokens for r in requests])
        prefix_tokens = list(requests[0].tokens[:prefix])
        for i, r in enumerate(requests):
            if prefix + slot_need(r, prefix) > self.n_ctx:
                raise DecodeError(f"segment {i + 1} needs {len(r.tokens)} prompt tokens plus {r.max_tokens} for "
                                  f"its output, more than this context's {self.n_ctx} tokens")
        # Keep the part of the last run's prefix this one shares; every slot starts empty.
        for seq in range(self.n_slots):
            C.llama_memory_seq_rm(self.mem, seq, -1, -1)
        keep = common_prefix_length([self._prefix_cached + [-1], prefix_tokens + [-2]])
        C.llama_memory_seq_rm(self.mem, self.prefix_seq, keep, -1)
        self._prefix_cached = self._prefix_cached[:keep]
        slots = [_Slot(seq=s) for s in range(max(1, min(slots or self.n_slots, self.n_slots)))]
        pending = deque(range(len(requests)))
        reserved = prefix
        prefix_in_kv = False
        done = 0
        failed = True
        try:
            while done < len(requests):
                if cancel is not None and cancel.is_set():
                    break
                # Admit waiting prompts into free slots, in order, while their worst case fits the cache.
                # Before the prefix is in the cache only the first prompt goes in (its first token comes
                # as soon as on the sequential path); the others join from the next batch on.
                for slot in slots:
                    if not pending or (not prefix_in_kv and any(s.index >= 0 for s in slots)):
                        break
                    if slot.index >= 0:
                        continue
                    need = slot_need(requests[pending[0]], prefix)
                    if reserved + need > self.n_ctx:
                        break  # wait for a running sequence to free its cells (keeps the order)
                    index = pending.popleft()
                    reserved += need
                    slot.index, slot.reserved = index, need
                    slot.feed = list(requests[index].tokens[prefix:])
                    slot.pos = prefix
                    slot.result = results[index]
                    slot.result.started = True
                    # bytes that are not UTF-8 are dropped, as llama-cpp-python's own stream drops them
                    slot.decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
                    slot.t0 = time.perf_counter()
                    if prefix_in_kv and prefix:
                        C.llama_memory_seq_cp(self.mem, self.prefix_seq, slot.seq, -1, -1)
                n = 0
                if not prefix_in_kv:
                    owner = next(s for s in slots if s.index >= 0)
                    if keep:
                        C.llama_memory_seq_cp(self.mem, self.prefix_seq, owner.seq, -1, -1)
                    for p in range(keep, prefix):
                        self._add(n, prefix_tokens[p], p, (self.prefix_seq, owner.seq), False)
                        n += 1
                # One token for every running sequence first (they must not wait), then prompt tokens.
                for slot in slots:
                    slot.logits_row = -1
                    if slot.index >= 0 and not slot.feed and slot.result and slot.result.token_ids:
                        self._add(n, slot.result.token_ids[-1], slot.pos, (slot.seq,), True)
                        slot.logits_row = n
                        slot.pos += 1
                        n += 1
                for slot in slots:
                    if slot.index < 0 or not slot.feed or n >= self.n_batch:
                        continue
                    take = slot.feed[: self.n_batch - n]
                    del slot.feed[: len(take)]
                    for k, tok in enumerate(take):
                        last = not slot.feed and k == len(take) - 1
                        self._add(n, tok, slot.pos, (slot.seq,), last)
                        if last:
                            slot.logits_row = n
                        slot.pos += 1
                        n += 1
                if n == 0:
                    raise DecodeError("internal error: nothing to decode while sequences are pending")
                self._batch.n_tokens = n
                rc = C.llama_decode(self.ctx, self._batch)
                if rc != 0:
                    raise DecodeError(
                        "llama.cpp found no room in the KV cache for the batch" if rc == 1
                        else f"llama.cpp could not decode the batch (llama_decode returned {rc})")
                if not prefix_in_kv:
                    prefix_in_kv, self._prefix_cached = True, prefix_tokens
                now = time.perf_counter()
                for slot in slots:
                    if slot.logits_row < 0:
                        continue
                    res = slot.result
                    assert res is not None
                    token = self._argmax(slot.logits_row)
                    finish = None
                    if C.llama_vocab_is_eog(self.vocab, token):
                        finish = "stop"
                    else:
                        res.token_ids.append(token)
                        if res.first_token_s is None:
                            res.first_token_s = now - slot.t0
                        piece = slot.decoder.decode(self._piece(token))
                        if piece:
                            res.text += piece
                            if on_piece:
                                on_piece(res.index, piece)
                        if len(res.token_ids) >= requests[res.index].max_tokens:
                            finish = "length"
                    if finish:
                        self._finish(slot, finish, now, on_piece, on_done)
                        reserved -= slot.reserved
                        slot.index, slot.reserved, slot.result = -1, 0, None
                        done += 1
            failed = False
        finally:
            # Cancelled or failed: end the running ones with what they have; free their cells (all of
            # them after a failure: the cache may hold a half-done batch).
            now = time.perf_counter()
            for slot in slots:
                if slot.index >= 0 and slot.result is not None:
                    self._finish(slot, "cancelled", now, on_piece, on_done)
                    slot.index, slot.result = -1, None
            if failed:
                C.llama_memory_clear(self.mem, True)
                self._prefix_cached = []
        return results

    def _finish(self, slot: _Slot, reason: str, now: float, on_piece: Callable[[int, str], None] | None,
                on_done: Callable[[SequenceResult], None] | None) -> None:
        res = slot.result
        assert res is not None
        tail = slot.decoder.decode(b"", final=True) if slot.decoder is not None else ""
        if tail:
            res.text += tail
            if on_piece:
                on_piece(res.index, tail)
        res.finish_reason = reason
        res.seconds = now - slot.t0
        C = self._C
        C.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        if on_done:
            on_done(res)


__all__ = ["DecodeError", "ParallelDecoder", "Request", "SequenceResult", "choose_slots", "common_prefix_length",
           "slot_need"]
