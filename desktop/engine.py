"""The translation core: llama.cpp behind a small, Qt-free API shared by the window and the CLI.

What it guarantees:

- the prompt is the trainer's prompt contract (:func:`medcore.prompt.load_contract`), rendered by
  the GGUF's own chat template (a GGUF without one is refused rather than guessed);
- generation is greedy and stops at the model's end-of-turn token;
- long input is split into sentences and translated in order; a sentence whose prompt plus output
  budget would not fit the context is split further (clauses, then halves) and that is reported;
  if even a short piece cannot fit, :class:`ContextLimitError` says so. Nothing is cut silently,
  and a segment that runs out of output budget is reported as ``finish_reason == "length"``;
- with a glossary set (:meth:`TranslationEngine.set_term_glossary`), the glossary terms found in a
  segment go into its prompt as required translations (the contract's term block, which stage-2
  training teaches the tuned model to honour) when the model was trained with the block, or always
  with ``mode="on"``; otherwise the prompt is the plain contract;
- a cancel flag (``threading.Event``) is checked after every generated token;
- the source text reaches the log only at DEBUG level and only with ``log_source_text=True``;
- several segments are translated side by side in one llama.cpp context (``LoadOptions.parallel``,
  :mod:`medcore.parallel_decode`): same prompts, same budgets, greedy, output in the input's order;
  ``parallel=1`` is the sequential path (one ``create_chat_completion`` per segment);
- a tuned model (``medcore.modelspec``: a bundled base plus GGUF LoRA adapters) is loaded as the
  base GGUF with the adapter stack applied by llama.cpp at run time (``medcore.lora``); adapters
  trained on another base are refused, and :meth:`TranslationEngine.set_adapters_active` switches
  them off and on without reloading (translate with the base model, for comparison).

The engine is not thread-safe: one thread (the Qt worker, or the CLI's main thread) owns it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from desktop.gguf_meta import GGUFInfo, read_gguf_info
from desktop.segment import Segment, separator_after, split_clauses, split_in_half, split_sentences
from medcore.models import ModelError
from medcore.prompt import TermPair, auto_direction, load_contract, split_direction
from medcore.term_block import block_terms, term_block_in_use
from medcore.terms import Glossary
from medcore.textnorm import normalize

log = logging.getLogger("tsx_medtrans.engine")

# Headroom for llama.cpp's compute buffers and the process itself, on top of weights and KV cache.
_OVERHEAD_BYTES = 200 * 1024**2


class EngineError(RuntimeError):
    """A translation that cannot be done, with a message fit for the user."""


class ContextLimitError(EngineError):
    """The prompt for even the smallest piece of input does not fit the model's context."""


@dataclass
class LoadOptions:
    """Per-model settings (the window keeps them in QSettings, the CLI takes them as flags)."""

    n_ctx: int = 2048
    n_threads: int | None = None
    n_gpu_layers: int = 0
    n_batch: int = 512
    # llama.cpp's weight repacking (CPU_REPACK buffers, faster kernels). Off = plain weights, the way
    # out when a CPU-specific path misbehaves; $TSX_NO_REPACK=1 turns it off whatever this says.
    repack: bool = True
    # Segments translated side by side (medcore.parallel_decode): 0 = automatic (up to
    # AUTO_PARALLEL, as many as the context size and free memory allow), 1 = one after the other.
    parallel: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ModelInfo:
    path: Path
    name: str
    size: int
    architecture: str
    n_layers: int
    n_ctx: int
    n_vocab: int
    end_of_turn: str
    estimated_bytes: int
    load_seconds: float
    options: LoadOptions
    repack: bool = True                                          # what llama.cpp was told
    buffers: dict[str, float] = field(default_factory=dict)     # weight buffers, MiB per type
    cpu_variant: str | None = None                               # e.g. "zen4" (portable build)
    source: Path | None = None                # what was chosen: a tuned-model spec file, or the GGUF (= path)
    spec: str | None = None                   # the tuned model's name
    adapters: list[dict[str, Any]] = field(default_factory=list)  # runtime LoRA stack (medcore.lora provenance)
    adapters_active: bool = False             # False: the base model alone translates
    base_sha256: str | None = None            # known when adapters were checked against the base


@dataclass
class SegmentResult:
    index: int
    start: int
    end: int
    source: str
    translation: str
    prompt_tokens: int
    generated_tokens: int
    max_tokens: int
    first_token_s: float | None
    seconds: float
    finish_reason: str  # "stop" | "length" | "cancelled"
    separator: str = ""  # what follows this segment's translation in the output (line breaks, a space)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TranslationResult:
    source: str
    translation: str
    direction: str
    segments: list[SegmentResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)  # the weights that translated (runtime_provenance)
    parallel: int = 1  # sequences decoded side by side (1: the sequential path)
    total_segments: int = 0  # segments planned (``segments`` lacks those a Stop never started)

    @property
    def generated_tokens(self) -> int:
        return sum(s.generated_tokens for s in self.segments)

    @property
    def first_token_s(self) -> float | None:
        return self.segments[0].first_token_s if self.segments else None

    @property
    def tokens_per_second(self) -> float:
        """Decode speed: tokens after the first one over the time after the first one.

        Side by side (``parallel > 1``) segments overlap in time: then it is the document's output
        tokens over its wall time after the first token.
        """
        if self.parallel > 1:
            tail = self.seconds - (self.first_token_s or 0.0)
            return max(0, self.generated_tokens - 1) / tail if tail > 0 else 0.0
        decode_s = sum(s.seconds - (s.first_token_s or 0.0) for s in self.segments)
        tokens = sum(max(0, s.generated_tokens - 1) for s in self.segments)
        return tokens / decode_s if decode_s > 0 else 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "segments": len(self.segments),
            "generated_tokens": self.generated_tokens,
            "seconds": round(self.seconds, 3),
            "first_token_s": None if self.first_token_s is None else round(self.first_token_s, 3),
            "tokens_per_second": round(self.tokens_per_second, 2),
            "parallel": self.parallel,
        }


def available_memory() -> int | None:
    """Bytes of RAM this process can still use (MemAvailable, capped by a cgroup limit), if known."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            import psutil  # optional: macOS / Windows

            avail = int(psutil.virtual_memory().available)
        except Exception:
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


def estimate_memory(info: GGUFInfo, options: LoadOptions) -> int:
    """RAM needed to run ``info`` with ``options``: CPU-resident weights + KV cache + buffers."""
    layers = max(info.n_layers, 1)
    on_gpu = min(max(options.n_gpu_layers, 0), layers) / layers if options.n_gpu_layers >= 0 else 1.0
    weights = int(info.size * (1.0 - on_gpu))
    logits = info.n_vocab * min(options.n_batch, options.n_ctx) * 4
    return weights + info.kv_cache_bytes(options.n_ctx) + logits + _OVERHEAD_BYTES


def check_memory(info: GGUFInfo, options: LoadOptions, available: int | None = None) -> int:
    """Raise :class:`ModelError` if the estimate exceeds the available RAM; return the estimate."""
    need = estimate_memory(info, options)
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ModelError(
            f"{info.path.name} is too large for this computer's free memory: it needs about "
            f"{need / 1024**3:.1f} GB with a context of {options.n_ctx} tokens, and {available / 1024**3:.1f} GB are "
            "available. Close other programs, lower the context size, or choose a smaller model."
        )
    return need


def default_threads() -> int:
    """Physical-ish core count: llama.cpp decodes slower with hyper-threads than without."""
    count = os.cpu_count() or 2
    return max(1, count // 2) if count > 4 else count


ProgressFn = Callable[[int, str], None]

# Automatic parallelism: sequences decoded side by side at most (benchmarks/bench_parallel.py).
AUTO_PARALLEL = 8
# KV cells the parallel context gets per sequence at least (a sentence's prompt is ~60-90 tokens and
# its budget 2 x source + 48): with the default context of 2048, 8 sequences get 4096 cells.
PARALLEL_CELLS_PER_SLOT = 512
# Compute buffers of the parallel context on top of its KV cache (measured: ~60 MB on the 1.5B).
_PARALLEL_OVERHEAD_BYTES = 100 * 1024**2


@dataclass
class TranslationPlan:
    """What :meth:`TranslationEngine.translate` is about to do (``on_plan``): the segments, the
    separator after each one's translation, and how many run side by side."""

    segments: list[Segment]
    separators: list[str]
    parallel: int


class _Stripped:
    """One segment's output as it streams, without leading and (until more text comes) trailing whitespace."""

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


class TranslationEngine:
    """Owns one ``llama_cpp.Llama`` and translates text with it."""

    def __init__(self, log_source_text: bool = False):
        self.log_source_text = log_source_text
        self.llm: Any = None
        self.info: ModelInfo | None = None
        self.gguf: GGUFInfo | None = None
        self._formatter: Any = None
        self.n_ctx = 0
        # Glossary whose matching terms go into the prompt's term block (None: plain prompts), and
        # when: "auto" = only for a model trained with the block (medcore.term_block.TERM_BLOCK_MODES).
        self.term_glossary: Glossary | None = None
        self.term_block_mode = "auto"
        self._decoder: Any = None          # medcore.parallel_decode.ParallelDecoder, made at load
        self._parallel_note: str | None = None  # why segments cannot run side by side, if they cannot

    # ------------------------------------------------------------------ loading
    @property
    def loaded(self) -> bool:
        return self.llm is not None

    def unload(self) -> None:
        if self._decoder is not None:
            self._decoder.close()  # its context goes before the model
        self._decoder, self._parallel_note = None, None
        if self.llm is not None:
            # older llama-cpp-python has no close(); dropping the object is enough there
            with contextlib.suppress(Exception):
                self.llm.close()
        self.llm, self.info, self.gguf, self._formatter = None, None, None, None

    def load(self, path: str | os.PathLike[str], options: LoadOptions | None = None,
             progress: ProgressFn | None = None, available: int | None = None, *,
             base_only: bool = False, adapters: list[str | os.PathLike[str]] | None = None) -> ModelInfo:
        """Check and load a model. Raises :class:`ModelError` with a user-facing reason.

        ``path``: a GGUF file, a bundled model name, or a tuned-model spec (file or name), whose base
        is loaded with its adapters (none with ``base_only``). ``adapters``: more GGUF LoRA files,
        applied after the spec's.
        """
        from medcore.lora import read_adapter
        from medcore.modelspec import resolve

        options = options or LoadOptions()
        progress = progress or (lambda pct, stage: None)
        resolved = resolve(os.path.expanduser(str(path)), base_only=base_only)
        stack = [read_adapter(p, expected_sha256=sha) for p, sha in zip(resolved.adapters, resolved.adapter_sha256,
                                                                        strict=True)]
        stack += [read_adapter(p) for p in adapters or []]
        path = resolved.base
        progress(5, "reading model header")
        gguf = read_gguf_info(path)  # missing / not GGUF / truncated header
        if gguf.chat_template is None:
            raise ModelError(
                f"{path.name} has no chat template (tokenizer.chat_template): the app cannot build the "
                "translation prompt for it. Export the model with its tokenizer's chat template."
            )
        if options.n_ctx > gguf.train_ctx > 0:
            options = replace(options, n_ctx=gguf.train_ctx)
        progress(10, "estimating memory")
        need = check_memory(gguf, options, available)
        progress(15, "loading weights")
        try:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            from desktop.provenance import model_sha256
            from medcore.llamacpp_runtime import BackendError, ensure_backends
            from medcore.lora import open_llama_with_adapters

            runtime = ensure_backends()
        except ImportError as exc:  # pragma: no cover - packaging error
            raise EngineError(f"llama-cpp-python is not installed: {exc}") from exc
        except (RuntimeError, OSError) as exc:  # pragma: no cover - packaging error
            raise EngineError(f"llama.cpp's CPU backend could not be loaded: {exc}") from exc
        self.unload()
        started = time.perf_counter()
        try:
            llm = open_llama_with_adapters(
                path, stack, hasher=model_sha256, repack=options.repack, n_ctx=options.n_ctx, n_batch=options.n_batch,
                n_threads=options.n_threads or default_threads(), n_gpu_layers=options.n_gpu_layers,
                verbose=False,
            )
        except BackendError as exc:
            raise EngineError(str(exc)) from None
        except ModelError:  # adapters that do not belong to this base, with their own message
            raise
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {path.name}: the file is damaged or not a supported model ({exc})") from None
        progress(90, "preparing chat template")
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        eos = llm.detokenize([eos_id], special=True).decode("utf-8", "replace") if eos_id >= 0 else ""
        bos = llm.detokenize([bos_id], special=True).decode("utf-8", "replace") if bos_id >= 0 else ""
        # Set the handler ourselves so the GGUF template is always used (llama-cpp-python would swap
        # in its built-in "chatml" for some templates) and prompt counting uses the same renderer.
        self._formatter = Jinja2ChatFormatter(template=gguf.chat_template, eos_token=eos, bos_token=bos,
                                              stop_token_ids=[eos_id])
        llm.chat_handler = self._formatter.to_chat_handler()
        self.llm, self.gguf = llm, gguf
        # llama.cpp may pad the context it allocates, but llama-cpp-python's token buffer has the size
        # asked for: the usable context is the smaller of the two.
        self.n_ctx = min(llm.n_ctx(), options.n_ctx)
        self.info = ModelInfo(
            path=path.resolve(), name=gguf.name, size=gguf.size, architecture=gguf.architecture,
            n_layers=gguf.n_layers, n_ctx=self.n_ctx, n_vocab=llm.n_vocab(), end_of_turn=eos,
            estimated_bytes=need, load_seconds=time.perf_counter() - started, options=options,
            repack=llm.tsx_repack, buffers=llm.tsx_buffers, cpu_variant=runtime.variant,
            source=resolved.source.resolve(), spec=resolved.spec.name if resolved.spec else None,
            adapters=[a.provenance() for a in stack], adapters_active=bool(stack), base_sha256=llm.tsx_base_sha256,
        )
        if options.parallel != 1:
            progress(95, "preparing parallel decoding")
            self._parallel_decoder(options.parallel or AUTO_PARALLEL)  # now, not on the first translation (~0.3 s)
        progress(100, "ready")
        log.info("loaded %s (%s, ctx %d, CPU variant %s, repacking %s) in %.2f s", path.name, gguf.name, self.info.n_ctx,
                 runtime.variant or "built-in", "on" if llm.tsx_repack else "off", self.info.load_seconds)
        return self.info

    def set_adapters_active(self, active: bool) -> None:
        """Translate with the adapter stack (True) or with the base model alone (False); no reload."""
        from medcore.lora import set_active

        llm = self._require()
        assert self.info is not None
        if not self.info.adapters:
            if active:
                raise EngineError("this model has no adapters to switch on")
            return
        set_active(llm, active)
        self.info.adapters_active = bool(active)

    def runtime_provenance(self) -> dict[str, Any]:
        """Which weights translate now: tuned model, base hash, active adapters and their data manifest."""
        info = self.info
        if info is None:
            return {}
        active = info.adapters if info.adapters_active else []
        manifests = [a["data_manifest_sha256"] for a in active if a.get("data_manifest_sha256")]
        return {
            "tuned_model": info.spec,
            "base_only": bool(info.spec or info.adapters) and not active,
            "base_sha256": info.base_sha256,
            "adapters": active,
            "data_manifest_sha256": manifests[-1] if manifests else None,
            "term_block": self.term_block_active,
        }

    def _require(self) -> Any:
        if self.llm is None:
            raise EngineError("no model is loaded")
        return self.llm

    # ------------------------------------------------------------------ prompt and context
    def set_term_glossary(self, glossary: Glossary | None, mode: str = "auto") -> None:
        """Put this glossary's terms into prompts' term block from now on (None: plain prompts).

        ``mode`` "auto" uses the block only while the model was trained with it (a tuned model's
        active adapters say so); "on" uses it with any model.
        """
        term_block_in_use(mode, [])  # validates the mode
        self.term_glossary = glossary if glossary is not None and len(glossary) else None
        self.term_block_mode = mode

    @property
    def term_block_active(self) -> bool:
        """Whether the next prompt carries the term block (a glossary is set and the model takes it)."""
        if self.term_glossary is None:
            return False
        info = self.info
        adapters = info.adapters if info is not None and info.adapters_active else []
        return term_block_in_use(self.term_block_mode, adapters)

    def prompt_terms(self, source: str, direction: str) -> list[TermPair]:
        """The (term, required translation) pairs the prompt for ``source`` carries."""
        if not self.term_block_active:
            return []
        src_lang, _ = split_direction(direction)
        return block_terms(self.term_glossary, normalize(source, src_lang), direction)

    def messages(self, source: str, direction: str) -> list[dict[str, str]]:
        """The prompt contract's messages for ``source``, with the term block when it is in use."""
        src_lang, _ = split_direction(direction)
        text = normalize(source, src_lang)
        terms = block_terms(self.term_glossary, text, direction) if self.term_block_active else []
        return load_contract().messages(text, direction, terms)

    def prompt_token_ids(self, source: str, direction: str) -> list[int]:
        """The exact token ids llama.cpp evaluates for this source (as its chat handler renders it)."""
        llm = self._require()
        rendered = self._formatter(messages=self.messages(source, direction))
        return llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self._require().tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else 0

    @staticmethod
    def output_budget(source_tokens: int) -> int:
        """Tokens a translation of ``source_tokens`` may take: generous, but bounded (no run-aways)."""
        return 2 * source_tokens + 48

    def fits(self, segment: Segment, direction: str, max_new_tokens: int | None = None) -> tuple[bool, int, int]:
        """(fits, prompt tokens, output budget) for one segment in this model's context."""
        n_prompt = len(self.prompt_token_ids(segment.text, direction))
        budget = self.output_budget(self.count_tokens(segment.text))
        if max_new_tokens:
            budget = min(budget, max_new_tokens)
        self._require()
        return n_prompt + budget <= self.n_ctx, n_prompt, budget

    def plan(self, text: str, direction: str, max_new_tokens: int | None = None) -> tuple[list[Segment], list[str]]:
        """Sentences of ``text``, each split further until its prompt and output fit the context."""
        warnings: list[str] = []
        out: list[Segment] = []
        self._require()
        n_ctx = self.n_ctx
        for number, sentence in enumerate(split_sentences(text), start=1):
            pending, pieces = [sentence], []
            while pending:
                seg = pending.pop(0)
                ok, n_prompt, budget = self.fits(seg, direction, max_new_tokens)
                if ok:
                    pieces.append(seg)
                    continue
                smaller = split_clauses(seg)
                if len(smaller) < 2:
                    smaller = split_in_half(seg)
                if len(smaller) < 2 or len(seg.text) <= 4:
                    raise ContextLimitError(
                        f"the context size ({n_ctx} tokens) is too small: even a piece of {len(seg.text)} characters "
                        f"needs {n_prompt} prompt tokens plus {budget} for its translation. "
                        "Raise the context size in the model settings."
                    )
                pending = smaller + pending
            if len(pieces) > 1:
                warnings.append(f"sentence {number} was too long for the context ({n_ctx} tokens) and was "
                                f"translated in {len(pieces)} parts")
            out.extend(pieces)
        return out, warnings

    # ------------------------------------------------------------------ parallel decoding
    def _parallel_decoder(self, slots: int) -> Any:
        """The context that decodes up to ``slots`` segments side by side (made at load, again only for
        more slots), or None with the reason in ``_parallel_note`` (too little free memory, llama.cpp refused)."""
        from medcore.parallel_decode import DecodeError, ParallelDecoder

        if self._decoder is not None and not self._decoder.closed and self._decoder.n_slots >= slots:
            return self._decoder
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        llm, info, gguf = self._require(), self.info, self.gguf
        assert info is not None and gguf is not None
        # A second KV cache, shared by all slots: the context size, or more for many slots; never more
        # than the model was trained for. Plus compute buffers.
        n_ctx = max(self.n_ctx, min(PARALLEL_CELLS_PER_SLOT * slots, gguf.train_ctx or self.n_ctx))
        need = gguf.kv_cache_bytes(n_ctx) + _PARALLEL_OVERHEAD_BYTES
        available = available_memory()
        if available is not None and need > available:
            self._parallel_note = (f"segments are translated one after another: parallel decoding needs about "
                                   f"{need / 1024**2:.0f} MB more memory and {available / 1024**2:.0f} MB are free")
            log.warning("%s", self._parallel_note)
            return None
        try:
            self._decoder = ParallelDecoder(llm, slots, n_ctx, n_batch=info.options.n_batch,
                                            n_threads=info.options.n_threads or default_threads())
        except DecodeError as exc:
            self._parallel_note = f"segments are translated one after another: {exc}"
            log.warning("%s", self._parallel_note)
            return None
        self._parallel_note = None
        log.info("parallel decoding ready: up to %d sequences in %d tokens of context", slots, self._decoder.n_ctx)
        return self._decoder

    def _requests(self, segments: list[Segment], directions: list[str],
                  max_new_tokens: int | None) -> list[Any]:
        """Prompt ids and output budget of each segment, exactly as the sequential path would use them."""
        from medcore.parallel_decode import Request

        out = []
        for seg, direction in zip(segments, directions, strict=True):
            budget = self.output_budget(self.count_tokens(seg.text))
            if max_new_tokens:
                budget = min(budget, max_new_tokens)
            out.append(Request(tuple(self.prompt_token_ids(seg.text, direction)), budget))
        return out

    def _slots_for(self, requests: list[Any], parallel: int | None) -> tuple[int, Any]:
        """(sequences side by side, decoder) for these requests: 1 and None for the sequential path."""
        from medcore.parallel_decode import choose_slots, common_prefix_length, slot_need

        assert self.info is not None
        wanted = self.info.options.parallel if parallel is None else parallel
        if wanted == 1 or len(requests) < 2:
            return 1, None
        decoder = self._parallel_decoder(min(wanted or AUTO_PARALLEL, len(requests)))
        if decoder is None:
            return 1, None
        prefix = common_prefix_length([r.tokens for r in requests])
        n = choose_slots(min(wanted or AUTO_PARALLEL, decoder.n_slots), [slot_need(r, prefix) for r in requests],
                         prefix, decoder.n_ctx)
        return (n, decoder) if n > 1 else (1, None)

    def _decode_parallel(self, decoder: Any, slots: int, segments: list[Segment], requests: list[Any],
                         cancel: threading.Event | None,
                         on_piece: Callable[[int, str], None],
                         on_done: Callable[[int, SegmentResult], None]) -> list[SegmentResult | None]:
        """Run ``requests`` side by side; SegmentResults by segment (None for one a Stop never started)."""
        from medcore.parallel_decode import DecodeError

        streams = [_Stripped() for _ in segments]
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

    def _translate_parallel(self, result: TranslationResult, segments: list[Segment], requests: list[Any],
                            decoder: Any, slots: int, tgt_lang: str, cancel: threading.Event | None,
                            emit: Callable[[str], None], on_segment: Callable[[SegmentResult, int], None] | None,
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

        outcome = self._decode_parallel(decoder, slots, segments, requests, cancel, on_piece, on_done)
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

    # ------------------------------------------------------------------ generation
    def stream(self, source: str, direction: str, max_tokens: int,
               cancel: threading.Event | None = None) -> Iterator[tuple[str, str | None]]:
        """Yield ``(text piece, finish_reason or None)`` for one segment; the last item has the reason."""
        llm = self._require()
        chunks = llm.create_chat_completion(
            messages=self.messages(source, direction), stream=True, temperature=0.0, max_tokens=max_tokens,
        )
        finish = None
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
                if piece:
                    yield piece, None
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
        finally:
            chunks.close()  # stops llama.cpp's generation loop right here
        yield "", finish or "stop"

    def translate(self, text: str, direction: str = "auto", cancel: threading.Event | None = None,
                  on_token: Callable[[str], None] | None = None,
                  on_segment: Callable[[SegmentResult, int], None] | None = None,
                  on_progress: Callable[[int, int], None] | None = None,
                  max_new_tokens: int | None = None, parallel: int | None = None,
                  on_plan: Callable[[TranslationPlan], None] | None = None,
                  on_segment_piece: Callable[[int, str], None] | None = None) -> TranslationResult:
        """Translate ``text`` sentence by sentence. ``on_token`` receives exactly the output's text.

        The concatenation of every ``on_token`` piece equals ``result.translation``, in order, also
        when segments run side by side (``parallel``: None = the loaded options' setting, 0 = automatic,
        1 = one after another). ``on_plan`` gets the plan before the first token; ``on_segment_piece``
        gets ``(segment index, text)`` as each segment's output grows, in the order it is produced (side
        by side: interleaved); ``on_segment`` each finished segment (side by side: as they finish).
        """
        self._require()
        if direction == "auto":
            direction = auto_direction(text)
        _, tgt_lang = split_direction(direction)
        started = time.perf_counter()
        segments, warnings = self.plan(text, direction, max_new_tokens)
        result = TranslationResult(source=text, translation="", direction=direction, warnings=warnings,
                                   model=self.runtime_provenance())
        log.info("translating %d segment(s), %d characters, %s", len(segments), len(text), direction)
        if self.log_source_text:
            log.debug("source text: %r", text)
        emitted: list[str] = []

        def emit(piece: str) -> None:
            if piece:
                emitted.append(piece)
                if on_token:
                    on_token(piece)

        slots, decoder = 1, None
        if len(segments) > 1:
            requests = self._requests(segments, [direction] * len(segments), max_new_tokens)
            slots, decoder = self._slots_for(requests, parallel)
            if self._parallel_note and (parallel if parallel is not None else self.info.options.parallel) != 1:
                warnings.append(self._parallel_note)
        result.parallel, result.total_segments = slots, len(segments)
        if on_plan:
            on_plan(TranslationPlan(list(segments), [separator_after(seg, tgt_lang, last=i + 1 == len(segments))
                                                     for i, seg in enumerate(segments)], slots))
        if on_progress:
            on_progress(0, len(segments))
        if decoder is not None:
            log.info("%d segments, %d side by side", len(segments), slots)
            self._translate_parallel(result, segments, requests, decoder, slots, tgt_lang, cancel, emit, on_segment,
                                     on_progress, on_segment_piece)
            for seg_result in result.segments:
                if seg_result.finish_reason == "length":
                    warnings.append(f"segment {seg_result.index + 1} reached its output limit of "
                                    f"{seg_result.max_tokens} tokens; its translation may be incomplete")
                if self.log_source_text:
                    log.debug("segment %d: %r -> %r", seg_result.index, seg_result.source, seg_result.translation)
            segments = []  # done: skip the sequential loop
        for index, seg in enumerate(segments):
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            _, n_prompt, budget = self.fits(seg, direction, max_new_tokens)
            t0 = time.perf_counter()
            first = None
            raw: list[str] = []
            pending_ws = ""
            started_text = False
            finish = "stop"
            for piece, reason in self.stream(seg.text, direction, budget, cancel):
                if reason is not None:
                    finish = reason
                    break
                if first is None:
                    first = time.perf_counter() - t0
                raw.append(piece)
                # Stream the stripped translation: hold back leading and (for now) trailing whitespace.
                if not started_text:
                    piece = piece.lstrip()
                    started_text = bool(piece)
                body = (pending_ws + piece).rstrip()
                pending_ws = (pending_ws + piece)[len(body):]
                emit(body)
                if on_segment_piece and body:
                    on_segment_piece(index, body)
            translation = "".join(raw).strip()
            seg_result = SegmentResult(
                index=index, start=seg.start, end=seg.end, source=seg.text, translation=translation,
                prompt_tokens=n_prompt, generated_tokens=self.count_tokens(translation), max_tokens=budget,
                first_token_s=first, seconds=time.perf_counter() - t0, finish_reason=finish,
            )
            result.segments.append(seg_result)
            if finish == "length":
                warnings.append(f"segment {index + 1} reached its output limit of {budget} tokens; "
                                "its translation may be incomplete")
            if self.log_source_text:
                log.debug("segment %d: %r -> %r", index, seg.text, translation)
            if finish == "cancelled":
                result.cancelled = True
            else:
                seg_result.separator = separator_after(seg, tgt_lang, last=index + 1 == len(segments))
                emit(seg_result.separator)
            if on_segment:
                on_segment(seg_result, len(segments))
            if on_progress:
                on_progress(index + 1, len(segments))
            if result.cancelled:
                break
        result.translation = "".join(emitted)
        result.seconds = time.perf_counter() - started
        log.info("done: %d segment(s), %d tokens, %.1f tok/s%s", len(result.segments), result.generated_tokens,
                 result.tokens_per_second, " (cancelled)" if result.cancelled else "")
        return result


    def translate_many(self, items: list[tuple[str, str]], max_new_tokens: int | None = None,
                       parallel: int | None = None, cancel: threading.Event | None = None,
                       on_item: Callable[[int, TranslationResult | EngineError], None] | None = None,
                       ) -> list[TranslationResult | EngineError]:
        """Translate independent texts (``(source, direction)``, e.g. a test set) with every segment of
        every text side by side; one result per text, in order, or the :class:`EngineError` that text
        raised (a context too small for it). Each text is planned, prompted and budgeted exactly as
        :meth:`translate` does. ``on_item(index, result)`` fires as each text is complete.
        """
        self._require()
        plans: list[tuple[str, list[Segment], list[str]] | EngineError] = []
        for source, direction in items:
            direction = auto_direction(source) if direction == "auto" else direction
            split_direction(direction)
            try:
                segments, warnings = self.plan(source, direction, max_new_tokens)
            except EngineError as exc:
                plans.append(exc)
                continue
            plans.append((direction, segments, warnings))
        flat = [(i, k, seg, plan[0]) for i, plan in enumerate(plans) if not isinstance(plan, EngineError)
                for k, seg in enumerate(plan[1])]
        requests = self._requests([f[2] for f in flat], [f[3] for f in flat], max_new_tokens) if len(flat) > 1 else []
        slots, decoder = self._slots_for(requests, parallel) if requests else (1, None)
        out: list[TranslationResult | EngineError | None] = [None] * len(items)
        if decoder is None:  # the sequential path, text by text
            for i, (source, _) in enumerate(items):
                if cancel is not None and cancel.is_set():
                    break
                plan = plans[i]
                try:
                    if isinstance(plan, EngineError):
                        raise plan
                    out[i] = self.translate(source, plan[0], cancel=cancel, max_new_tokens=max_new_tokens, parallel=1)
                except EngineError as exc:
                    out[i] = exc
                if on_item:
                    on_item(i, out[i])
            return [r if r is not None else EngineError("stopped before this text was translated") for r in out]
        remaining = {i: len(p[1]) for i, p in enumerate(plans) if not isinstance(p, EngineError)}
        by_item: dict[int, list[SegmentResult]] = {i: [] for i in remaining}

        def finish_item(i: int) -> TranslationResult:
            direction, segments, warnings = plans[i]  # type: ignore[misc]
            _, tgt_lang = split_direction(direction)
            segs = sorted(by_item[i], key=lambda s: s.index)
            parts = []
            for s in segs:
                s.separator = separator_after(segments[s.index], tgt_lang, last=s.index + 1 == len(segments))
                parts += [s.translation, s.separator]
            warnings = list(warnings) + [f"segment {s.index + 1} reached its output limit of {s.max_tokens} tokens; "
                                         "its translation may be incomplete" for s in segs if s.finish_reason == "length"]
            return TranslationResult(
                source=items[i][0], translation="".join(parts) if len(segs) == len(segments) else "".join(parts).rstrip(),
                direction=direction, segments=segs, warnings=warnings,
                cancelled=len(segs) < len(segments) or any(s.finish_reason == "cancelled" for s in segs),
                seconds=sum(s.seconds for s in segs), model=self.runtime_provenance(), parallel=slots,
                total_segments=len(segments))

        def on_done(flat_index: int, seg: SegmentResult) -> None:
            i, k = flat[flat_index][0], flat[flat_index][1]
            seg.index = k
            by_item[i].append(seg)
            remaining[i] -= 1
            if remaining[i] == 0:
                out[i] = finish_item(i)
                if on_item:
                    on_item(i, out[i])

        log.info("translating %d text(s), %d segment(s), %d side by side", len(items), len(flat), slots)
        self._decode_parallel(decoder, slots, [f[2] for f in flat], requests, cancel, lambda i, t: None, on_done)
        for i, plan in enumerate(plans):
            if isinstance(plan, EngineError):
                out[i] = plan
            elif out[i] is None:  # stopped: what it has
                out[i] = finish_item(i)
        return out  # type: ignore[return-value]


def describe_exception(exc: BaseException) -> str:
    """One line for the user: our own errors as they are, anything else with its type."""
    if isinstance(exc, (ModelError, EngineError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
