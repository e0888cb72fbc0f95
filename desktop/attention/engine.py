"""Attention engines: ``(source, translation) -> readable tokens + per-layer/per-head matrices``.

The views only ever see an :class:`AttentionResult` (plain numpy arrays and strings), never torch,
so a second engine can supply the same matrices later (for instance captured from llama.cpp's own
compute graph with flash attention off, which would let the packaged app drop torch). An engine is
anything with the :class:`AttentionEngine` shape.

:class:`TransformersAttentionEngine` runs the *same weights* as the app in transformers: the GGUF
(dequantised once into an HF directory by ``hfmodel.cache.hf_dir_for``) or a merged HF
directory when one is present, plus optional stage adapters. The input is exactly what the model
saw while translating: the prompt contract (``medcore.prompt.render_prompt_ids``), then the
translation's tokens, then the end-of-turn token. One forward pass with ``output_attentions=True``
gives every layer's [heads, T, T] matrix; only the source's and the translation's tokens are kept
(system prompt, template text, role headers and end-of-turn are scaffolding), rows are renormalised
over the kept tokens (the share that went to scaffolding is kept alongside as ``kept_mass``), and
BPE pieces are merged into readable units (see ``tokens``).

The pass runs eager attention that hands back *log*-weights (:data:`LOG_ATTENTION`; the attention
output itself is eager's, bit for bit). Renormalising over the kept tokens is then a softmax over
their log-weights, exact however little of a row fell on them. That matters: some heads put almost
everything on the scaffolding. In the bundled 1.5B, layer 0 head 1 at the last token of the
assistant header (the query that produces the first translated word) gives the source 3e-13 of its
mass; in a bigger model such a share can underflow to exactly 0 in the probabilities.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from desktop.attention import tokens as tok

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Name of the attention implementation registered with transformers by ``_register_log_attention``.
LOG_ATTENTION = "tsx_log_eager"


@dataclass
class AttentionResult:
    """Attention over the source and translation tokens of one pair, as plain arrays.

    Token order everywhere: the ``n_src`` source units, then the ``n_tgt`` translation units
    (``n = n_src + n_tgt``). Rows are queries, columns keys (BertViz's convention).

    * ``attentions`` [layers, heads, n, n]: attention of each unit (as a query) to each unit,
      restricted to kept tokens and renormalised so every row sums to 1 (causal: upper triangle 0).
    * ``kept_mass`` [layers, heads, n]: the share of each raw row that fell on kept tokens before
      renormalising (the rest went to the system prompt, template text and role headers).
    * ``generation`` [layers, heads, n_tgt, n]: for each translation unit, the attention of the
      position(s) that *produced* it, i.e. the query one step earlier (for the first unit, the last
      token of the assistant header). This is "what the model attended to when it produced the
      term"; renormalised over kept tokens like ``attentions``.
    * ``generation_kept_mass`` [layers, heads, n_tgt]: as ``kept_mass``, for those rows.
    * ``src_spans``/``tgt_spans`` [units, 2]: character offsets of each unit in ``source`` /
      ``translation``.
    """

    source: str
    translation: str
    direction: str
    src_tokens: list[str]
    tgt_tokens: list[str]
    src_spans: np.ndarray
    tgt_spans: np.ndarray
    attentions: np.ndarray
    kept_mass: np.ndarray
    generation: np.ndarray
    generation_kept_mass: np.ndarray
    model: str = ""
    variant: str = "model"  # "model" (no adapters), "fine-tuned" or "base"
    n_pieces: tuple[int, int] = (0, 0)  # BPE pieces before merging (source, translation)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_src(self) -> int:
        return len(self.src_tokens)

    @property
    def n_tgt(self) -> int:
        return len(self.tgt_tokens)

    @property
    def tokens(self) -> list[str]:
        return list(self.src_tokens) + list(self.tgt_tokens)

    @property
    def n_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.attentions.shape[1])

    def units_in(self, span: tuple[int, int] | None, side: str) -> list[int]:
        """Indices (within that side) of the units overlapping a character span of that side."""
        if span is None:
            return []
        spans = self.src_spans if side == "src" else self.tgt_spans
        start, end = int(span[0]), int(span[1])
        return [i for i, (s, e) in enumerate(spans.tolist()) if s < end and e > start]

    def validate(self) -> None:
        """Raise if the arrays do not have the documented shapes and row sums."""
        n, n_tgt = self.n_src + self.n_tgt, self.n_tgt
        layers, heads = self.attentions.shape[:2]
        expect = {
            "attentions": (self.attentions, (layers, heads, n, n)),
            "kept_mass": (self.kept_mass, (layers, heads, n)),
            "generation": (self.generation, (layers, heads, n_tgt, n)),
            "generation_kept_mass": (self.generation_kept_mass, (layers, heads, n_tgt)),
            "src_spans": (self.src_spans, (self.n_src, 2)),
            "tgt_spans": (self.tgt_spans, (n_tgt, 2)),
        }
        for name, (array, shape) in expect.items():
            if tuple(array.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(array.shape)}, expected {shape}")
        for name in ("attentions", "generation"):
            sums = getattr(self, name).sum(axis=-1)
            if not np.allclose(sums, 1.0, atol=1e-3):
                raise ValueError(f"{name} rows do not sum to 1 (min {sums.min():.4f}, max {sums.max():.4f})")


class AttentionEngine(Protocol):
    """What the views need from an engine. Implementations return plain arrays only."""

    def compute(self, source: str, translation: str, direction: str, *, base: bool = False,
                progress: Progress | None = None, terms: Sequence[tuple[str, str]] = ()) -> AttentionResult:
        """Attention for the pair; ``base=True``: the same from the base weights (no adapters).

        ``terms``: the term block the translation's prompt carried, so the prompt is the one that translated.
        """
        ...

    @property
    def has_base(self) -> bool:
        """Whether ``compute(..., base=True)`` gives something different from the model itself."""
        ...

    def describe(self) -> str:
        ...


def find_hf_dir(model_path: str | os.PathLike[str]) -> Path | None:
    """A merged HF directory holding the same weights as ``model_path``, when one is present.

    A directory with ``config.json`` is used as it is. For a GGUF, the converter's layout is
    checked: a ``<name>.hf/`` directory or a ``merged/`` directory beside the file (each must hold
    ``config.json``). ``None``: use the GGUF (dequantised once into the cache).
    """
    path = Path(model_path)
    if path.is_dir():
        return path if (path / "config.json").exists() else None
    for candidate in (path.with_suffix(".hf"), path.parent / "merged"):
        if (candidate / "config.json").exists():
            return candidate
    return None


def _piece_spans(offsets: Sequence[Sequence[int]], lo: int, hi: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Indices of tokens overlapping [lo, hi) and their spans clipped to it, relative to ``lo``."""
    idx, spans = [], []
    for i, (s, e) in enumerate(offsets):
        if e > s and s < hi and e > lo:
            idx.append(i)
            spans.append((max(s, lo) - lo, min(e, hi) - lo))
    return idx, spans


def locate_source(tokenizer: Any, prompt_ids: list[int], source: str, direction: str,
                  terms: Sequence[tuple[str, str]] = ()) -> tuple[list[int], list[tuple[int, int]]]:
    """Positions of the source's pieces inside the prompt, and their spans in ``source``.

    The prompt is rendered to text with the same chat template and re-tokenised with offsets; the
    ids must equal ``render_prompt_ids``'s (the contract), otherwise the source's own tokens are
    searched for as a run inside the prompt.
    """
    from medcore.prompt import load_contract

    messages = load_contract().messages(source, direction, terms)
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    user = messages[-1]["content"]
    user_at = text.rfind(user)
    if list(enc["input_ids"]) == list(prompt_ids) and user_at >= 0:
        lo = user_at + user.rfind(source)
        idx, spans = _piece_spans(enc["offset_mapping"], lo, lo + len(source))
        if idx:
            return idx, spans
    own = tokenizer(source, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(own["input_ids"])
    for start in range(len(prompt_ids) - len(ids), -1, -1):
        if prompt_ids[start:start + len(ids)] == ids:
            return list(range(start, start + len(ids))), [tuple(o) for o in own["offset_mapping"]]
    raise ValueError("could not find the source text's tokens inside the rendered prompt")


def renormalise(rows: np.ndarray, log_weights: bool = False,
                dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Rows restricted to kept keys -> (rows renormalised to sum to 1, the share they had).

    ``rows`` are attention weights over all keys cut down to the kept ones, or with
    ``log_weights`` their logarithms (then a softmax over the kept keys: exact even when the kept
    share is far below float precision, or underflowed to 0 in the weights themselves). Each row
    is divided by its own share, however small: a share of 3e-13 is a real (if faint) distribution,
    and dividing by anything else gives a row that does not sum to 1. ``dtype``: float64 by default;
    float32 is enough for probabilities that are float32 already (the llama.cpp engine: ~4x less
    memory traffic for a long pair, rows still sum to 1 within 1e-6).
    """
    a = np.asarray(rows, dtype=dtype)
    if log_weights:
        top = a.max(axis=-1, keepdims=True)
        if not np.all(np.isfinite(top)):
            raise ValueError("an attention row has no finite log-weight on any kept token")
        e = np.exp(a - top)
        total = e.sum(axis=-1, keepdims=True)
        return e / total, np.exp(top[..., 0] + np.log(total[..., 0]))
    mass = a.sum(axis=-1)
    bad = ~((mass > 0) & np.isfinite(mass))
    if bad.any():
        raise ValueError(f"attention row {np.argwhere(bad)[0].tolist()} has no weight left on the kept tokens "
                         "(underflow); pass log-weights (log_weights=True) to renormalise it exactly")
    return a / mass[..., None], mass


def assemble(raw: np.ndarray, raw_gen: np.ndarray, src_units: list[tok.Unit], tgt_units: list[tok.Unit],
             n_src_pieces: int, n_tgt_pieces: int, log_weights: bool = False,
             dtype: Any = np.float64) -> dict[str, np.ndarray]:
    """From piece-level rows restricted to kept keys to renormalised unit-level arrays.

    ``raw`` [L, H, p, p] and ``raw_gen`` [L, H, p_tgt, p] hold the model's attention weights (rows
    as computed over the whole prompt) restricted to the ``p = n_src_pieces + n_tgt_pieces`` kept
    key pieces; with ``log_weights`` their logarithms (see :func:`renormalise`). Engines other than
    transformers can reuse this to produce the same result.
    """
    n_pieces = n_src_pieces + n_tgt_pieces
    groups = [list(u.pieces) for u in src_units] + [[n_src_pieces + p for p in u.pieces] for u in tgt_units]
    member = tok.membership(groups, n_pieces)
    tgt_member = tok.membership([list(u.pieces) for u in tgt_units], n_tgt_pieces)

    attn, mass = renormalise(raw, log_weights, dtype)
    gen, gen_mass = renormalise(raw_gen, log_weights, dtype)
    return {
        "attentions": tok.merge_queries(tok.merge_keys(attn, member), member).astype(np.float32),
        "kept_mass": tok.merge_vector(mass, member).astype(np.float32),
        "generation": tok.merge_queries(tok.merge_keys(gen, member), tgt_member).astype(np.float32),
        "generation_kept_mass": tok.merge_vector(gen_mass, tgt_member).astype(np.float32),
    }


def _log_eager_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float,
                         dropout: float = 0.0, **kwargs: Any) -> tuple[Any, Any]:
    """transformers' eager attention, returning log-softmax weights instead of the softmax.

    The attention output is computed exactly as ``eager_attention_forward`` does (Llama, Qwen2 and
    the other functional-attention models); only the weights handed back for
    ``output_attentions`` are their logarithms (float32), so that :func:`renormalise` never has to
    divide by a share that fell below float precision.
    """
    import torch

    for name in ("softcap", "s_aux", "sinks"):
        if kwargs.get(name) is not None:
            raise NotImplementedError(f"attention with {name} is not supported by the attention view")
    groups = int(getattr(module, "num_key_value_groups", 1))
    if groups > 1:  # == transformers' repeat_kv
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask[:, :, :, : key.shape[-2]]
    weights = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, torch.nn.functional.log_softmax(scores, dim=-1, dtype=torch.float32)


_registered = False


def _register_log_attention() -> bool:
    """Register :data:`LOG_ATTENTION` (and eager's mask for it) with transformers, once."""
    global _registered
    if not _registered:
        try:
            from transformers import AttentionInterface
            from transformers.masking_utils import AttentionMaskInterface, eager_mask
        except ImportError:  # transformers before the attention interface (< 4.53)
            return False
        AttentionInterface.register(LOG_ATTENTION, _log_eager_attention)
        AttentionMaskInterface.register(LOG_ATTENTION, eager_mask)
        _registered = True
    return True


def use_log_attention(model: Any) -> bool:
    """Switch a loaded eager model to :data:`LOG_ATTENTION`; False (model unchanged) where unsupported."""
    if not _register_log_attention() or not hasattr(model, "set_attn_implementation"):
        return False
    try:
        model.set_attn_implementation(LOG_ATTENTION)
    except (ValueError, ImportError) as exc:
        log.warning("log-weight attention unavailable (%s); using eager attention weights", exc)
        return False
    # transformers only warns when a model cannot switch: check that it did.
    return getattr(model.config, "_attn_implementation", None) == LOG_ATTENTION


class ResultCache(OrderedDict):
    """The last ``size`` attention results by request: a hit becomes the newest, the oldest goes first."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def hit(self, key: tuple) -> AttentionResult | None:
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]

    def put(self, key: tuple, result: AttentionResult) -> None:
        self[key] = result
        while len(self) > self.size:
            self.popitem(last=False)


class TransformersAttentionEngine:
    """Attention from the app's weights run in transformers (eager attention), cached per pair.

    ``adapters``: stage adapter directories in training order. They are all loaded as *unmerged*
    LoRA adapters and activated together; stage 1 (MLP) and stage 2 (q/v) touch different modules,
    and a LoRA delta is additive anyway, so this equals the merged stack the app translates with,
    while peft's ``disable_adapter()`` gives back the untouched base weights for the comparison.
    ``base_model``: for a model without adapters (say a merged export), a separate base model to
    compare with (loaded on first use).
    """

    def __init__(self, model_path: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] = (),
                 base_model: str | os.PathLike[str] | None = None, hf_dir: str | os.PathLike[str] | None = None,
                 device: str | None = None, cache_size: int = 16, threads: int | None = None):
        self.model_path = str(model_path)
        self.adapters = [str(a) for a in adapters]
        self.base_model = str(base_model) if base_model else None
        self.hf_dir = str(hf_dir) if hf_dir else None
        self.device = device
        self.cache_size = cache_size
        self.threads = threads  # torch intra-op threads (process-wide); None: torch's default
        self._model: Any = None
        self._tokenizer: Any = None
        self._eot: int | None = None
        self._log_weights = False  # whether the model hands back log-weights (LOG_ATTENTION)
        self._base_engine: TransformersAttentionEngine | None = None
        self._cache = ResultCache(cache_size)
        self._prefix_cache: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()

    # -- interface -------------------------------------------------------------------------------
    @property
    def has_base(self) -> bool:
        return bool(self.adapters) or self.base_model is not None

    def describe(self) -> str:
        name = Path(self.model_path).name
        if self.adapters:
            name += " + " + " + ".join(Path(a).name if Path(a).name != "adapter" else Path(a).parent.name
                                       for a in self.adapters)
        return name

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self, progress: Progress | None = None) -> None:
        """Load tokenizer and model (and adapters) once; later calls return at once."""
        with self._lock:
            if self._model is not None:
                return
            from hfmodel.adapters import stack_adapters
            from hfmodel.loading import load_model, load_tokenizer, pick_device_dtype

            source = self.hf_dir or find_hf_dir(self.model_path) or self.model_path
            if progress:
                progress(f"Loading {Path(self.model_path).name} (the first time a GGUF is converted, ~1 min)")
            if self.threads:
                import torch

                torch.set_num_threads(self.threads)
            tokenizer = load_tokenizer(source)
            device, dtype = pick_device_dtype(self.device)
            if device.type == "cpu":
                # The weights are read, not only used: bf16 (which the trainer may pick on CPUs with
                # AMX/AVX512-BF16) keeps ~3 significant digits of each attention weight.
                import torch

                dtype = torch.float32
            model = load_model(source, dtype=dtype, attn="eager")
            self._log_weights = use_log_attention(model)
            if not self._log_weights:
                log.warning("%s: attention rows are renormalised from eager probabilities", source)
            if self.adapters:
                if progress:
                    progress("Loading adapters")
                # All stages live and active at once (see the class docstring for why this is the stack).
                model = stack_adapters(model, self.adapters, live="all")
            model.to(device)
            model.eval()
            from medcore.prompt import end_of_turn_id

            self._eot = end_of_turn_id(tokenizer)  # get_vocab() copies 152k entries: ~0.5 s, do it once
            self._tokenizer, self._model = tokenizer, model

    def compute(self, source: str, translation: str, direction: str, *, base: bool = False,
                progress: Progress | None = None, terms: Sequence[tuple[str, str]] = ()) -> AttentionResult:
        if base and not self.adapters:
            if self.base_model is None:
                raise ValueError("no base model to compare with (no adapters and no base model given)")
            if self._base_engine is None:
                self._base_engine = TransformersAttentionEngine(self.base_model, device=self.device,
                                                                cache_size=self.cache_size, threads=self.threads)
            result = self._base_engine.compute(source, translation, direction, progress=progress, terms=terms)
            result.variant = "base"
            return result
        terms = tuple((str(a), str(b)) for a, b in terms)
        key = (source, translation, direction, bool(base), terms)
        with self._lock:
            if (cached := self._cache.hit(key)) is not None:
                return cached
            self.load(progress)
            if progress:
                progress("Running the model" + (" (base weights)" if base else ""))
            result = self._compute(source, translation, direction, base, terms)
            self._cache.put(key, result)
            return result

    # -- internals -------------------------------------------------------------------------------
    def _compute(self, source: str, translation: str, direction: str, base: bool,
                 terms: Sequence[tuple[str, str]] = ()) -> AttentionResult:
        import contextlib

        import torch

        from medcore.prompt import render_prompt_ids

        if not source.strip() or not translation.strip():
            raise ValueError("both the source and the translation must be non-empty")
        tokenizer = self._tokenizer
        prompt_ids = render_prompt_ids(tokenizer, source, direction, terms)
        src_pos, src_spans = locate_source(tokenizer, prompt_ids, source, direction, terms)
        tgt = tokenizer(translation, add_special_tokens=False, return_offsets_mapping=True)
        tgt_ids = list(tgt["input_ids"])
        tgt_offsets = [tuple(o) for o in tgt["offset_mapping"]]
        ids = prompt_ids + tgt_ids + [self._eot]
        tgt_pos = list(range(len(prompt_ids), len(prompt_ids) + len(tgt_ids)))
        kept = src_pos + tgt_pos
        gen_rows = [p - 1 for p in tgt_pos]  # the query that produced each translation piece

        ctx = self._model.disable_adapter() if base else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            raw_np, raw_gen_np = self._forward(ids, kept, gen_rows, prefix_len=src_pos[0], base=base)

        src_units = tok.merge_pieces(source, src_spans)
        tgt_units = tok.merge_pieces(translation, tgt_offsets)
        arrays = assemble(raw_np, raw_gen_np, src_units, tgt_units, len(src_pos), len(tgt_pos),
                          log_weights=self._log_weights)
        variant = "base" if base else ("fine-tuned" if self.adapters else "model")
        result = AttentionResult(
            source=source, translation=translation, direction=direction,
            src_tokens=[u.text for u in src_units], tgt_tokens=[u.text for u in tgt_units],
            src_spans=np.array([u.span for u in src_units], dtype=np.int64).reshape(-1, 2),
            tgt_spans=np.array([u.span for u in tgt_units], dtype=np.int64).reshape(-1, 2),
            model=self.describe(), variant=variant, n_pieces=(len(src_pos), len(tgt_pos)),
            meta={"prompt_tokens": len(prompt_ids), "total_tokens": len(ids)},
            **arrays,
        )
        result.validate()
        return result

    def _decoder(self) -> Any:
        """The transformer stack without the LM head: logits over 152k tokens are not needed."""
        model = self._model
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        return inner.get_decoder() if hasattr(inner, "get_decoder") else inner

    def _forward(self, ids: list[int], kept: list[int], gen_rows: list[int], prefix_len: int,
                 base: bool) -> tuple[np.ndarray, np.ndarray]:
        """Raw attention rows (kept + generating positions) over the kept keys, per layer and head.

        Log-weights when the model runs :data:`LOG_ATTENTION` (``self._log_weights``), else weights.

        The prompt's prefix (system message and template text before the source) is the same for
        every pair in a direction, so its key/value cache is computed once and reused: the forward
        pass then covers only the source, the rest of the template and the translation (about a
        third of the tokens). Rows of the prefix positions are never shown, and the kept rows still
        attend over the full prompt, so the weights are the same as from one full pass.
        """
        import copy

        import torch

        decoder = self._decoder()
        device = next(decoder.parameters()).device
        past, start = None, 0
        if prefix_len > 0:
            key = (tuple(ids[:prefix_len]), base)
            cached = self._prefix_cache.get(key)
            if cached is None:
                out = decoder(input_ids=torch.tensor([ids[:prefix_len]], device=device), use_cache=True)
                cached = out.past_key_values
                self._prefix_cache[key] = cached
                while len(self._prefix_cache) > 4:
                    self._prefix_cache.popitem(last=False)
            past, start = copy.deepcopy(cached), prefix_len
        with warnings.catch_warnings():
            # transformers warns about any implementation but eager; LOG_ATTENTION does return weights.
            warnings.filterwarnings("ignore", message=".*output_attentions=True. is not supported", category=UserWarning)
            out = decoder(input_ids=torch.tensor([ids[start:]], device=device), past_key_values=past,
                          use_cache=past is not None, output_attentions=True, return_dict=True)
        if not out.attentions or out.attentions[0] is None:
            raise RuntimeError("the model returned no attention weights (is attn_implementation eager?)")
        # Log-weights: float32 whatever the model's dtype (bf16 would round them coarsely).
        # Each layer: [1, heads, len(ids) - start, len(ids)]; query position p is row p - start.
        rows_t = torch.tensor([p - start for p in kept], device=device)
        gen_t = torch.tensor([p - start for p in gen_rows], device=device)
        cols_t = torch.tensor(kept, device=device)
        raw = torch.stack([a[0].index_select(1, rows_t).index_select(2, cols_t) for a in out.attentions])
        gen = torch.stack([a[0].index_select(1, gen_t).index_select(2, cols_t) for a in out.attentions])
        return raw.float().cpu().numpy(), gen.float().cpu().numpy()

    def close(self) -> None:
        """Drop the model and cache (frees memory; a later compute loads again)."""
        with self._lock:
            self._model = self._tokenizer = self._base_engine = None
            self._cache.clear()
            self._prefix_cache.clear()
