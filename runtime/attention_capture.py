"""Attention weights read out of llama.cpp's own compute graph: the weights that translate, no torch.

llama.cpp hands every intermediate tensor of a forward pass to the context's eval callback
(``cb_eval`` in ``llama_context_params``). With flash attention off, each layer's attention
probabilities are one tensor, ``kq_soft_max-<layer>``: ``ne = [n_kv, n_tokens, n_head, 1]``, f32,
row-major, i.e. for every head a ``[query token, KV cell]`` matrix whose rows sum to 1 (masked
cells are exactly 0). Nobody upstream exposes this (llama.cpp #9122 was closed without it), so it
is read here through ctypes: ``ggml_get_name`` to pick the tensors, ``ggml_backend_tensor_get``
to copy them out (both from the bundled ``libggml-base``, see
:func:`runtime.llamacpp.ggml_tensor_api`).

:class:`AttentionCapture` opens a model the way the app does (:func:`runtime.adapters.open_llama_with_adapters`:
portable CPU backend, the same runtime LoRA stack; without weight repacking, see below), creates a
second llama.cpp context on those weights for capturing (flash attention off, the callback set)
and runs one forward pass over ``prompt + translation`` per request. The adapter stack is a
per-context setting in llama.cpp, so "the base model" is the same context with the stack switched
off (``llama_set_adapters_lora(ctx, NULL, 0)``), no second copy of the weights.

Only what the views need is kept: the rows of the queries asked for (source, translation and the
positions that produced the translation) restricted to the key columns asked for (source and
translation), per layer and head. A pair whose kept block would exceed the memory cap
(:data:`DEFAULT_MAX_MB`, ``$TSX_ATTENTION_MAX_MB``) is refused *before* the forward pass with a
message saying what to do (:class:`AttentionTooLarge`).

The prompt is the app's: the prompt contract's messages rendered by the GGUF's own chat template
(:mod:`runtime.chat_template`, as :class:`runtime.engine.TranslationEngine` renders it) and tokenised by llama.cpp. Character offsets of every token come from the bytes
llama.cpp says each token stands for (``llama_token_to_piece``), so the views can merge pieces
into readable units exactly as for the transformers engine.

No Qt, no torch; ``llama_cpp`` is imported when a model is opened.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.machine import default_threads

log = logging.getLogger(__name__)

ENV_MAX_MB = "TSX_ATTENTION_MAX_MB"
# The kept block of a long pair, with the 1.5B's 28 layers x 12 heads: ~330 tokens -> 150 MiB.
# Building the views from it needs a few times that again (float64 renormalising, merged copies).
DEFAULT_MAX_MB = 192
TENSOR_PREFIX = b"kq_soft_max-"
_GGML_TYPE_F32 = 0

Progress = Callable[[str], None]


class CaptureError(RuntimeError):
    """Attention could not be captured from llama.cpp (with a reason fit for the user)."""


class AttentionTooLarge(CaptureError):
    """The pair is too long: its attention would exceed the memory cap."""


def max_bytes_from_env(default_mb: float = DEFAULT_MAX_MB, environ: dict[str, str] | None = None) -> int:
    """The memory cap in bytes: ``$TSX_ATTENTION_MAX_MB`` when set (and a positive number), else the default."""
    raw = (environ if environ is not None else os.environ).get(ENV_MAX_MB, "").strip()
    try:
        mb = float(raw) if raw else float(default_mb)
    except ValueError:
        raise CaptureError(f"{ENV_MAX_MB}={raw!r} is not a number of MiB") from None
    if mb <= 0:
        raise CaptureError(f"{ENV_MAX_MB} must be a positive number of MiB (got {raw!r})")
    return int(mb * 1024 * 1024)


# --- tokens with character offsets ------------------------------------------------------------------------


def piece_bytes(llm: Any, token: int, special: bool = True) -> bytes:
    """The bytes llama.cpp says ``token`` stands for (no leading-space stripping)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    buf = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    if n < 0:  # a longer piece: llama.cpp says how long
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
    return buf.raw[:max(n, 0)]


def char_offsets(text: str, pieces: Sequence[bytes]) -> list[tuple[int, int]] | None:
    """Character span in ``text`` of each token, given the bytes of each token; None if they do not tile it.

    A token holding part of a multi-byte character gets that whole character's span (overlapping its
    neighbour's), as the fast tokenizers' offset mapping does; ``desktop.attention.tokens`` merges such
    fragments into one unit.
    """
    data = text.encode("utf-8")
    if b"".join(pieces) != data:
        return None
    char_of_byte = np.empty(len(data) + 1, dtype=np.int64)
    pos = 0
    for i, ch in enumerate(text):
        n = len(ch.encode("utf-8"))
        char_of_byte[pos:pos + n] = i
        pos += n
    char_of_byte[pos] = len(text)
    spans, at = [], 0
    for piece in pieces:
        lo, hi = at, at + len(piece)
        at = hi
        if hi == lo:
            spans.append((int(char_of_byte[lo]), int(char_of_byte[lo])))
        else:
            spans.append((int(char_of_byte[lo]), int(char_of_byte[hi - 1]) + 1))
    return spans


@dataclass
class PairLayout:
    """Where the source and the translation sit in the token sequence the model runs over."""

    ids: list[int]                        # prompt (up to the assistant header) + translation
    prompt_len: int
    src_pos: list[int]                    # positions of the source's tokens in ``ids``
    src_spans: list[tuple[int, int]]      # their character spans in the source
    tgt_spans: list[tuple[int, int]]      # character spans of the translation's tokens

    @property
    def tgt_pos(self) -> list[int]:
        return list(range(self.prompt_len, len(self.ids)))

    @property
    def kept(self) -> list[int]:
        return self.src_pos + self.tgt_pos

    @property
    def gen_rows(self) -> list[int]:
        """The query that produced each translation token: the position just before it."""
        return [p - 1 for p in self.tgt_pos]


# --- the capture itself -----------------------------------------------------------------------------------


class _TensorHeader(ctypes.Structure):
    """The first fields of ``struct ggml_tensor`` (ggml.h): type, buffer, ne[4], nb[4].

    ggml has no getter for a single dimension. The layout has been stable since 2023; every read is
    checked against ``ggml_nelements``/``ggml_nbytes``, so a change shows as an error, not as garbage.
    """

    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4)]


class _Collector:
    """The eval callback's state for one forward pass (one ubatch at a time)."""

    def __init__(self, api: ctypes.CDLL, n_layers: int, n_heads: int, rows: np.ndarray, cols: np.ndarray):
        self.api = api
        self.rows = rows          # positions of the queries to keep (sorted)
        self.cols = cols          # positions of the keys to keep
        self.out = np.zeros((n_layers, n_heads, len(rows), len(cols)), dtype=np.float32)
        self.seen = np.zeros(n_layers, dtype=bool)
        self.chunk_start = 0      # position of the current ubatch's first token
        self.chunk_len = 0
        self.error: BaseException | None = None
        self._buf = np.empty(0, dtype=np.float32)

    def __call__(self, tensor: int, ask: bool, _user_data: int) -> bool:
        try:
            name = self.api.ggml_get_name(tensor) or b""
            if not name.startswith(TENSOR_PREFIX):
                return not ask  # not wanted; (when told a tensor is done) carry on
            if ask:
                return True
            self._take(tensor, int(name[len(TENSOR_PREFIX):]))
            return True
        except BaseException as exc:  # noqa: BLE001 - must not unwind through C; re-raised after decode
            self.error = exc
            return False  # stops the graph computation

    def _take(self, tensor: int, layer: int) -> None:
        api = self.api
        head = _TensorHeader.from_address(tensor)
        n_kv, n_tok, n_head, n_seq = (int(x) for x in head.ne)
        count = n_kv * n_tok * n_head * n_seq
        if head.type != _GGML_TYPE_F32 or count != api.ggml_nelements(tensor) or api.ggml_nbytes(tensor) != 4 * count:
            raise CaptureError(f"unexpected layout of llama.cpp's attention tensor (type {head.type}, ne "
                               f"{list(head.ne)}); this llama.cpp build is not supported by the attention view")
        if n_seq != 1 or n_tok != self.chunk_len or n_head != self.out.shape[1] or layer >= self.out.shape[0]:
            raise CaptureError(f"llama.cpp's attention tensor for layer {layer} has shape {list(head.ne)}, expected "
                               f"[kv, {self.chunk_len}, {self.out.shape[1]}, 1]")
        if self._buf.size < count:
            self._buf = np.empty(count, dtype=np.float32)
        api.ggml_backend_tensor_get(tensor, self._buf.ctypes.data, 0, 4 * count)
        full = self._buf[:count].reshape(n_head, n_tok, n_kv)
        lo, hi = self.chunk_start, self.chunk_start + n_tok
        in_chunk = np.nonzero((self.rows >= lo) & (self.rows < hi))[0]
        if not in_chunk.size:
            return
        local = self.rows[in_chunk] - lo
        if layer == 0:
            self._check_cells(full, local + lo, local, n_kv)
        cols_ok = self.cols < n_kv
        block = full[:, local, :][:, :, self.cols[cols_ok]]
        self.out[layer][:, in_chunk[:, None], np.nonzero(cols_ok)[0][None, :]] = block
        self.seen[layer] = True

    @staticmethod
    def _check_cells(full: np.ndarray, positions: np.ndarray, local: np.ndarray, n_kv: int) -> None:
        """KV cell i must hold position i (a fresh cache, one sequence): checked on the causal mask.

        Every row sums to 1 over cells 0..pos and has exactly 0 beyond its own position. If llama.cpp
        ever placed tokens elsewhere, columns would not be positions and the views would be wrong.
        """
        rows = full[:, local, :]
        sums = rows.sum(axis=-1)
        beyond = np.arange(n_kv)[None, :] > positions[:, None]
        leak = float(np.abs(rows[:, beyond]).max()) if beyond.any() else 0.0
        if not np.allclose(sums, 1.0, atol=1e-3) or leak != 0.0:
            raise CaptureError("llama.cpp's attention rows are not laid out by position (row sums "
                               f"{float(sums.min()):.4f}..{float(sums.max()):.4f}, weight beyond the causal mask {leak:g})")


@dataclass
class CaptureStats:
    tokens: int = 0
    seconds: float = 0.0
    kept_bytes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


class AttentionCapture:
    """One model (plus its runtime LoRA stack) and a capturing llama.cpp context on it.

    ``model``: a GGUF, a bundled model name or a tuned-model spec (file or name), resolved as the app
    resolves it (:func:`medcore.modelspec.resolve`). ``adapters``: more GGUF LoRA files after the
    spec's. ``repack``: llama.cpp's weight repacking, off by default: a capture is one prompt-sized
    batch, which the project's llama.cpp computes with the plain kernels even on repacked weights
    (the ggml patch ``plain-for-batches``, packaging/ggml_patches.py), so repacking would cost memory
    and load time for nothing (1.5B: 1.2 GB and ~1.4 s). ``None``: as for translation (on unless
    ``$TSX_NO_REPACK``). Not thread-safe: one thread uses it (the engine above locks).
    """

    def __init__(self, model: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] = (), *,
                 repack: bool | None = False, n_threads: int | None = None, n_ctx: int = 2048,
                 n_ubatch: int = 512, max_bytes: int | None = None, base_only: bool = False,
                 hasher: Callable[[Path], str] | None = None):
        self.model = str(model)
        self.extra_adapters = [str(a) for a in adapters]
        self.repack = repack
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.n_ubatch = n_ubatch
        self.max_bytes = max_bytes if max_bytes is not None else max_bytes_from_env()
        self.base_only = base_only
        self.hasher = hasher  # sha256 of the base, to check adapters against it (the app's cached one)
        self.llm: Any = None
        self.base_path: Path | None = None
        self.adapters: list[Any] = []     # medcore.lora.LoraAdapter
        self.n_layers = 0
        self.n_heads = 0
        self.load_seconds = 0.0
        self._ctx: Any = None
        self._callback: Any = None        # the ctypes callback object, kept alive with the context
        self._collector: _Collector | None = None
        self._formatter: Any = None
        self._adapters_on = False
        self._api: ctypes.CDLL | None = None
        self._prefix: tuple | None = None  # (token ids, adapters on) whose keys/values are in cells 0..len-1
        self._last_reused = 0

    # -- loading -------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._ctx is not None

    @property
    def has_adapters(self) -> bool:
        return bool(self.adapters)

    def load(self, progress: Progress | None = None) -> None:
        if self._ctx is not None:
            return
        import llama_cpp

        from medcore.lora import read_adapter
        from medcore.modelspec import resolve
        from runtime.adapters import open_llama_with_adapters
        from runtime.llamacpp import ggml_tensor_api

        resolved = resolve(os.path.expanduser(self.model), base_only=self.base_only)
        stack = [read_adapter(p, expected_sha256=sha) for p, sha in zip(resolved.adapters, resolved.adapter_sha256,
                                                                        strict=True)]
        stack += [read_adapter(p) for p in self.extra_adapters]
        if progress:
            progress(f"Loading {resolved.base.name}" + (f" with {len(stack)} adapter(s)" if stack else ""))
        started = time.perf_counter()
        threads = self.n_threads or default_threads()
        # The Llama object's own context is only used for tokenising: keep it tiny.
        llm = open_llama_with_adapters(resolved.base, stack, hasher=self.hasher, repack=self.repack, n_ctx=64,
                                       n_batch=64, n_threads=threads, verbose=False)
        try:
            self._api = ggml_tensor_api()
            self._formatter = _chat_formatter(llm, resolved.base)
            n_ctx = min(self.n_ctx, int(llama_cpp.llama_model_n_ctx_train(llm._model.model)) or self.n_ctx)
            params = llama_cpp.llama_context_default_params()
            params.n_ctx = n_ctx
            params.n_batch = params.n_ubatch = min(self.n_ubatch, n_ctx)
            params.n_seq_max = 1
            params.n_threads = params.n_threads_batch = threads
            params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # else no kq_soft_max tensor
            self._callback = llama_cpp.ggml_backend_sched_eval_callback(self._dispatch)
            params.cb_eval = self._callback
            params.cb_eval_user_data = None
            ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
            if not ctx:
                raise CaptureError(f"llama.cpp could not create an attention context for {resolved.base.name} "
                                   f"({n_ctx} tokens); close other programs or choose a smaller model")
        except BaseException:
            llm.close()
            raise
        self.llm, self.base_path, self.adapters = llm, resolved.base, stack
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.n_ubatch = int(llama_cpp.llama_n_ubatch(ctx))
        self.n_layers = int(llama_cpp.llama_model_n_layer(llm._model.model))
        self.n_heads = int(llama_cpp.llama_model_n_head(llm._model.model))
        self._ctx = ctx
        # Free the context before the model and the adapters go (Llama.close runs its exit stack in
        # reverse order, and lora.attach registered the adapters' release before this).
        llm._stack.callback(self._free_ctx, llama_cpp)
        self._adapters_on = False
        self.set_adapters(True)
        self.load_seconds = time.perf_counter() - started

    def _free_ctx(self, llama_cpp: Any) -> None:
        # ``llama_cpp`` is passed in: this also runs from Llama.__del__ at interpreter exit.
        self._prefix = None
        if self._ctx is not None:
            llama_cpp.llama_set_adapters_lora(self._ctx, None, 0, None)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()  # frees the capture context first (see load)
        self.llm = None
        self._ctx = None

    def set_adapters(self, active: bool) -> None:
        """The adapter stack on (the tuned model) or off (the base weights) for the next captures."""
        from runtime.adapters import set_stack

        on = bool(active and getattr(self.llm, "tsx_lora_handles", None))
        if on == self._adapters_on:
            return
        if not set_stack(self._ctx, self.llm, on):
            raise CaptureError("llama.cpp refused the LoRA adapter stack on the attention context")
        self._adapters_on = on

    # -- prompt layout ------------------------------------------------------------------------------------
    def describe(self) -> str:
        name = Path(self.model).name if self.base_path is None else self.base_path.name
        if self.adapters:
            name += " + " + " + ".join(a.path.name for a in self.adapters)
        return name

    def prompt_ids(self, source: str, direction: str, terms: Sequence[tuple[str, str]] = ()) -> tuple[list[int], str]:
        """Token ids of the translation prompt (as the app's engine renders and tokenises it) and its text.

        ``terms``: the term block the translation's prompt carried (the engine's ``prompt_terms``).
        """
        from medcore.prompt import load_contract
        from runtime.chat_template import render

        return render(self._formatter, self.llm, load_contract().messages(source, direction, terms))

    def layout(self, source: str, translation: str, direction: str,
               terms: Sequence[tuple[str, str]] = ()) -> PairLayout:
        """Token ids of ``prompt + translation`` and where the source's and translation's tokens are.

        The end-of-turn token after the translation is left out: attention is causal, so no kept
        row or column can depend on it.
        """
        from medcore.prompt import load_contract, split_direction
        from medcore.textnorm import normalize

        if not source.strip() or not translation.strip():
            raise ValueError("both the source and the translation must be non-empty")
        llm = self.llm
        # The app's engine sends normalize(source) (runtime.engine.TranslationEngine.messages). When that
        # only trims the ends (a pasted line's newline), send exactly that and shift the spans back; when
        # it changes the inside (zero-width characters, full-width digits), the source as given is sent, as
        # the reference engine does, so that every span still points into the text the user sees.
        full, shift = source, 0
        normalized = normalize(source, split_direction(direction)[0])
        if normalized != source and normalized == source.strip():
            shift = len(source) - len(source.lstrip())
            source = normalized
        prompt_ids, text = self.prompt_ids(source, direction, terms)
        user = load_contract().messages(source, direction, terms)[-1]["content"]
        src_pos: list[int] = []
        src_spans: list[tuple[int, int]] = []
        offsets = char_offsets(text, [piece_bytes(llm, t) for t in prompt_ids])
        user_at = text.rfind(user)
        if offsets is not None and user_at >= 0:
            lo = user_at + user.rfind(source)
            hi = lo + len(source)
            for i, (s, e) in enumerate(offsets):
                if e > s and s < hi and e > lo:
                    src_pos.append(i)
                    src_spans.append((max(s, lo) - lo, min(e, hi) - lo))
        if not src_pos:  # e.g. a BOS the template text does not show: find the source's own tokens
            own = list(llm.tokenize(source.encode("utf-8"), add_bos=False, special=False))
            spans = char_offsets(source, [piece_bytes(llm, t, special=False) for t in own])
            for start in range(len(prompt_ids) - len(own), -1, -1):
                if spans is not None and prompt_ids[start:start + len(own)] == own:
                    src_pos, src_spans = list(range(start, start + len(own))), spans
                    break
            else:
                raise CaptureError("could not find the source text's tokens inside the rendered prompt")
        if shift:
            src_spans = [(a + shift, b + shift) for a, b in src_spans]
        if not all(0 <= a <= b <= len(full) for a, b in src_spans):
            raise CaptureError("the source's tokens could not be mapped back onto the source text")
        tgt_ids = list(llm.tokenize(translation.encode("utf-8"), add_bos=False, special=False))
        tgt_spans = char_offsets(translation, [piece_bytes(llm, t, special=False) for t in tgt_ids])
        if tgt_spans is None:
            raise CaptureError("llama.cpp's tokens of the translation do not spell it out byte for byte")
        return PairLayout(ids=prompt_ids + tgt_ids, prompt_len=len(prompt_ids), src_pos=src_pos,
                          src_spans=src_spans, tgt_spans=tgt_spans)

    # -- capture ---------------------------------------------------------------------------------------
    def needed_bytes(self, n_rows: int, n_cols: int) -> int:
        return 4 * self.n_layers * self.n_heads * n_rows * n_cols

    def check_size(self, layout: PairLayout) -> None:
        """Raise :class:`AttentionTooLarge` / :class:`CaptureError` before any work for a pair that cannot be shown."""
        if len(layout.ids) > self.n_ctx:
            raise AttentionTooLarge(
                f"this pair needs {len(layout.ids)} tokens with the prompt, more than the attention context of "
                f"{self.n_ctx}; inspect one sentence at a time")
        rows = len(set(layout.kept) | set(layout.gen_rows))
        need = self.needed_bytes(rows, len(layout.kept))
        if need > self.max_bytes:
            raise AttentionTooLarge(
                f"this pair is too long for the attention view: {len(layout.src_pos)} source and "
                f"{len(layout.tgt_pos)} translation tokens need {need / 2**20:.0f} MiB of attention weights "
                f"({self.n_layers} layers x {self.n_heads} heads), over the {self.max_bytes / 2**20:.0f} MiB limit. "
                f"Inspect one sentence at a time, or raise the limit with {ENV_MAX_MB}.")

    def capture(self, ids: Sequence[int], rows: Sequence[int], cols: Sequence[int], *, adapters: bool = True,
                reuse_prefix: int = 0, stats: CaptureStats | None = None) -> np.ndarray:
        """Attention ``[layers, heads, len(rows), len(cols)]`` of query positions ``rows`` over key positions ``cols``.

        One forward pass over ``ids`` (KV cell i holds position i, checked), in ubatches of at most
        ``n_ubatch`` tokens; ``adapters=False`` runs the base weights. ``reuse_prefix``: the first that
        many tokens are the same for many calls (the prompt's system message and template text before the
        source); their keys and values are kept in the cache after a call and reused by the next call that
        starts with the same tokens under the same adapter setting, so only the rest is computed again. No
        row may lie inside the reused prefix (its rows are not computed then).
        """
        if self._ctx is None:
            raise CaptureError("no model is loaded")
        row_arr = np.asarray(rows, dtype=np.int64)
        col_arr = np.asarray(cols, dtype=np.int64)
        if len(ids) > self.n_ctx:
            raise AttentionTooLarge(f"{len(ids)} tokens do not fit the attention context of {self.n_ctx}")
        need = self.needed_bytes(len(row_arr), len(col_arr))
        if need > self.max_bytes:
            raise AttentionTooLarge(f"{need / 2**20:.0f} MiB of attention weights exceed the "
                                    f"{self.max_bytes / 2**20:.0f} MiB limit")
        if row_arr.size and reuse_prefix > int(row_arr.min()):
            reuse_prefix = 0
        order = np.argsort(row_arr, kind="stable")
        collector = _Collector(self._api, self.n_layers, self.n_heads, row_arr[order], col_arr)
        started = time.perf_counter()
        self._run(ids, collector, adapters, reuse_prefix)
        if not collector.seen.all():
            missing = np.nonzero(~collector.seen)[0].tolist()
            raise CaptureError(f"llama.cpp gave no attention tensor for layers {missing[:5]}; is flash attention on?")
        out = np.empty_like(collector.out)
        out[:, :, order] = collector.out  # back to the order the rows were asked in
        if stats is not None:
            stats.tokens = len(ids)
            stats.seconds = time.perf_counter() - started
            stats.kept_bytes = int(out.nbytes)
            stats.meta["reused_prefix"] = self._last_reused
        return out

    def forward_only(self, ids: Sequence[int], *, adapters: bool = True, reuse_prefix: int = 0) -> float:
        """The same forward pass with nothing captured (the callback wants no tensor); seconds taken.

        For benchmarks: the difference to :meth:`capture` is the cost of capturing.
        """
        if self._ctx is None:
            raise CaptureError("no model is loaded")
        started = time.perf_counter()
        self._run(ids, None, adapters, reuse_prefix)
        return time.perf_counter() - started

    def _run(self, ids: Sequence[int], collector: _Collector | None, adapters: bool, reuse_prefix: int) -> None:
        """Decode ``ids`` (all of it, or what follows a cached prefix) with ``collector`` listening."""
        import llama_cpp

        self.set_adapters(adapters and self.has_adapters)
        mem = llama_cpp.llama_get_memory(self._ctx)
        key = (tuple(ids[:reuse_prefix]), self._adapters_on) if reuse_prefix > 0 else None
        self._last_reused = 0
        if key is not None and key == self._prefix:
            start = reuse_prefix  # cells 0..prefix-1 hold it already; later cells were freed after the last call
            self._last_reused = reuse_prefix
        else:
            llama_cpp.llama_memory_clear(mem, True)
            self._prefix = None
            start = 0
        batch = llama_cpp.llama_batch_init(self.n_ubatch, 0, 1)
        ok = False
        try:
            if start == 0 and key is not None:  # compute the prefix once, nothing to capture in it
                self._decode(batch, ids, 0, reuse_prefix, None)
                start = reuse_prefix
            self._decode(batch, ids, start, len(ids), collector)
            ok = True
        finally:
            llama_cpp.llama_batch_free(batch)
            if ok and key is not None:
                llama_cpp.llama_memory_seq_rm(mem, 0, reuse_prefix, -1)  # keep the prefix, free the rest
                self._prefix = key
            else:
                llama_cpp.llama_memory_clear(mem, True)
                self._prefix = None

    def _decode(self, batch: Any, ids: Sequence[int], lo: int, hi: int, collector: _Collector | None) -> None:
        import llama_cpp

        self._collector = collector
        try:
            for start in range(lo, hi, self.n_ubatch):
                chunk = list(ids[start:min(hi, start + self.n_ubatch)])
                for i, token in enumerate(chunk):
                    batch.token[i] = token
                    batch.pos[i] = start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 0  # no logits wanted: attention only
                batch.n_tokens = len(chunk)
                if collector is not None:
                    collector.chunk_start, collector.chunk_len = start, len(chunk)
                rc = llama_cpp.llama_decode(self._ctx, batch)
                if collector is not None and collector.error is not None:
                    raise collector.error
                if rc != 0:
                    raise CaptureError(f"llama.cpp could not run the attention pass (llama_decode returned {rc})")
        finally:
            self._collector = None

    def _dispatch(self, tensor: int, ask: bool, user_data: int) -> bool:
        collector = self._collector
        if collector is None:  # a decode not started by capture(): want nothing
            return not ask
        return collector(tensor, ask, user_data)


def _chat_formatter(llm: Any, path: Path) -> Any:
    """The GGUF's own chat template, set up as the engine sets it up (:mod:`runtime.chat_template`)."""
    from runtime.chat_template import chat_formatter
    from runtime.gguf_header import Key

    template = (getattr(llm, "metadata", None) or {}).get(Key.CHAT_TEMPLATE)
    if not template:
        raise CaptureError(f"{path.name} has no chat template (tokenizer.chat_template): the translation prompt "
                           "cannot be rebuilt for it")
    return chat_formatter(llm, template)


__all__ = ["DEFAULT_MAX_MB", "ENV_MAX_MB", "AttentionCapture", "AttentionTooLarge", "CaptureError", "CaptureStats",
           "PairLayout", "char_offsets", "max_bytes_from_env", "piece_bytes"]
