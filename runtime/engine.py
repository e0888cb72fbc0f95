"""The translation core: llama.cpp behind one small, Qt-free API (the window, ``tsx-medtrans translate``,
``tsx-eval``'s llama.cpp backend, the self-test).

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
  :mod:`runtime.side_by_side`): same prompts, same budgets, greedy, output in the input's order;
  ``parallel=1`` is the sequential path (one ``create_chat_completion`` per segment);
- a tuned model (``medcore.modelspec``: a bundled base plus GGUF LoRA adapters) is loaded as the
  base GGUF with the adapter stack applied by llama.cpp at run time (:mod:`runtime.adapters`); adapters
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
from dataclasses import replace
from typing import Any

from medcore.models import ModelError
from medcore.prompt import TermPair, auto_direction, load_contract, split_direction
from medcore.term_block import block_terms, term_block_in_use
from medcore.terms import Glossary
from medcore.textnorm import normalize
from runtime.chat_template import chat_formatter, render
from runtime.errors import ContextLimitError, EngineError
from runtime.gguf_header import GGUFInfo, read_gguf_info
from runtime.machine import check_memory, default_threads
from runtime.options import LoadOptions, ModelInfo
from runtime.results import SegmentResult, TranslationPlan, TranslationResult
from runtime.segment import (
    Segment,
    StrippedStream,
    separator_after,
    split_clauses,
    split_in_half,
    split_sentences,
)
from runtime.side_by_side import AUTO_PARALLEL, SideBySide, decode, translate_in_order

log = logging.getLogger("tsx_medtrans.engine")

ProgressFn = Callable[[int, str], None]


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
        self._side_by_side: SideBySide | None = None  # the parallel path's decoder, made at load

    # ------------------------------------------------------------------ loading
    @property
    def loaded(self) -> bool:
        return self.llm is not None

    def unload(self) -> None:
        if self._side_by_side is not None:
            self._side_by_side.close()  # its context goes before the model
        self._side_by_side = None
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
            from runtime.adapters import open_llama_with_adapters
            from runtime.llamacpp import BackendError, ensure_backends
            from runtime.model_hash import model_sha256

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
        # Set the handler ourselves so the GGUF template is always used (llama-cpp-python would swap
        # in its built-in "chatml" for some templates) and prompt counting uses the same renderer.
        self._formatter = chat_formatter(llm, gguf.chat_template)
        llm.chat_handler = self._formatter.to_chat_handler()
        self.llm, self.gguf = llm, gguf
        # llama.cpp may pad the context it allocates, but llama-cpp-python's token buffer has the size
        # asked for: the usable context is the smaller of the two.
        self.n_ctx = min(llm.n_ctx(), options.n_ctx)
        self.info = ModelInfo(
            path=path.resolve(), name=gguf.name, size=gguf.size, architecture=gguf.architecture,
            n_layers=gguf.n_layers, n_ctx=self.n_ctx, n_vocab=llm.n_vocab(), end_of_turn=self._formatter.eos_token,
            estimated_bytes=need, load_seconds=time.perf_counter() - started, options=options,
            repack=llm.tsx_repack, buffers=llm.tsx_buffers, cpu_variant=runtime.variant,
            source=resolved.source.resolve(), spec=resolved.spec.name if resolved.spec else None,
            adapters=[a.provenance() for a in stack], adapters_active=bool(stack), base_sha256=llm.tsx_base_sha256,
        )
        self._side_by_side = SideBySide(llm, gguf, self.n_ctx, options)
        if options.parallel != 1:
            progress(95, "preparing parallel decoding")
            self._side_by_side.decoder_for(options.parallel or AUTO_PARALLEL)  # now, not on the first translation (~0.3 s)
        progress(100, "ready")
        log.info("loaded %s (%s, ctx %d, CPU variant %s, repacking %s) in %.2f s", path.name, gguf.name, self.info.n_ctx,
                 runtime.variant or "built-in", "on" if llm.tsx_repack else "off", self.info.load_seconds)
        return self.info

    def set_adapters_active(self, active: bool) -> None:
        """Translate with the adapter stack (True) or with the base model alone (False); no reload."""
        from runtime.adapters import set_active

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
        return render(self._formatter, llm, self.messages(source, direction))[0]

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

    def _requests(self, segments: list[Segment], directions: list[str],
                  max_new_tokens: int | None) -> list[Any]:
        """Prompt ids and output budget of each segment, exactly as the sequential path would use them."""
        from runtime.parallel_decode import Request

        out = []
        for seg, direction in zip(segments, directions, strict=True):
            budget = self.output_budget(self.count_tokens(seg.text))
            if max_new_tokens:
                budget = min(budget, max_new_tokens)
            out.append(Request(tuple(self.prompt_token_ids(seg.text, direction)), budget))
        return out

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
            slots, decoder = self._side_by_side.slots_for(requests, parallel)
            note = self._side_by_side.note
            if note and (parallel if parallel is not None else self.info.options.parallel) != 1:
                warnings.append(note)
        result.parallel, result.total_segments = slots, len(segments)
        if on_plan:
            on_plan(TranslationPlan(list(segments), [separator_after(seg, tgt_lang, last=i + 1 == len(segments))
                                                     for i, seg in enumerate(segments)], slots))
        if on_progress:
            on_progress(0, len(segments))
        if decoder is not None:
            log.info("%d segments, %d side by side", len(segments), slots)
            translate_in_order(result, segments, requests, decoder, slots, tgt_lang, cancel, emit, on_segment,
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
            stripped = StrippedStream()
            finish = "stop"
            for piece, reason in self.stream(seg.text, direction, budget, cancel):
                if reason is not None:
                    finish = reason
                    break
                if first is None:
                    first = time.perf_counter() - t0
                raw.append(piece)
                # Stream the stripped translation: hold back leading and (for now) trailing whitespace.
                body = stripped.feed(piece)
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
        slots, decoder = self._side_by_side.slots_for(requests, parallel) if requests else (1, None)
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
        decode(decoder, slots, [f[2] for f in flat], requests, cancel, lambda i, t: None, on_done)
        for i, plan in enumerate(plans):
            if isinstance(plan, EngineError):
                out[i] = plan
            elif out[i] is None:  # stopped: what it has
                out[i] = finish_item(i)
        return out  # type: ignore[return-value]
