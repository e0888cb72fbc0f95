"""Translation backends for evaluation: the training-time model and the deployed GGUF, same prompt.

- :class:`TransformersTranslator`: an HF directory or a GGUF base (dequantised once, see
  :mod:`hfmodel.cache`), optionally with the stage adapters applied; prompts rendered with
  :func:`medcore.prompt.render_prompt_ids`; greedy ``generate`` in left-padded batches.
- :class:`LlamaCppTranslator`: a GGUF file (or a tuned model: base GGUF + runtime LoRA adapters)
  through the app's own engine (``runtime.engine.TranslationEngine``), every segment of the
  test set side by side in one llama.cpp context as the app translates a document's (``parallel``).

Both decode greedily, stop at the chat template's end of turn, and cap the output length from the
source length (:func:`output_budget`) without ever exceeding the model's context.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medcore.prompt import end_of_turn_id, render_prompt_ids, split_direction
from medcore.term_block import block_terms, term_block_in_use
from medcore.terms import Glossary

log = logging.getLogger(__name__)

# Output budget: a translation is rarely more than ~1.5x its source in tokens (zh<->en, Qwen/Llama
# tokenizers); 2x + 16 leaves room for a complete answer while a model stuck repeating itself is
# cut off instead of running to the context limit (which on a CPU costs minutes per segment).
BUDGET_RATIO = 2.0
BUDGET_EXTRA = 16
BUDGET_MAX = 1024


def output_budget(source_tokens: int, prompt_tokens: int, context: int, ratio: float = BUDGET_RATIO,
                  extra: int = BUDGET_EXTRA, cap: int = BUDGET_MAX) -> int:
    """max_new_tokens for one segment: from the source length, never past the context window.

    Returns 0 when the prompt alone leaves no room to answer.
    """
    wanted = min(math.ceil(ratio * source_tokens) + extra, cap)
    return max(0, min(wanted, context - prompt_tokens))


@dataclass
class Translation:
    """One hypothesis and how it was produced."""

    text: str
    seconds: float
    new_tokens: int
    max_new_tokens: int
    stopped: bool  # True: ended at the end-of-turn token; False: hit max_new_tokens (or failed)
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Translator:
    """Common interface: ``translate([(source, direction), ...]) -> [Translation, ...]``."""

    backend = "?"

    def translate(self, items: Sequence[tuple[str, str]], progress: bool = False,
                  desc: str = "translating") -> list[Translation]:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        """Release the model (a no-op where garbage collection suffices)."""


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="seg", dynamic_ncols=True)


def _stage_meta(adapter: str) -> dict:
    """A PEFT stage adapter's ``tsx_stage.json`` (empty when it has none)."""
    import json

    try:
        return json.loads((Path(adapter) / "tsx_stage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


class TransformersTranslator(Translator):
    """Greedy translation with transformers: base model (+ stage adapters), batched, left-padded."""

    backend = "transformers"

    def __init__(self, base: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] = (),
                 batch_size: int = 8, device: str | None = None, bf16: bool | None = None,
                 max_new_cap: int = BUDGET_MAX, term_glossary: Glossary | None = None,
                 term_block_mode: str = "on"):
        from hfmodel.loading import load_for_inference, pick_device_dtype

        self.base = str(base)
        self.adapters = [str(a) for a in adapters]
        # "auto" as the app decides: the block only if a stage adapter was trained with it.
        shares = [{"term_block_share": _stage_meta(a).get("term_block_share")} for a in self.adapters]
        use = term_glossary is not None and len(term_glossary) and term_block_in_use(term_block_mode, shares)
        self.term_glossary = term_glossary if use else None
        self.batch_size = max(1, int(batch_size))
        self.max_new_cap = max_new_cap
        self.device, self.dtype = pick_device_dtype(device, bf16)
        self.model, self.tokenizer = load_for_inference(base, self.adapters, dtype=self.dtype, device=self.device)
        self.eot = end_of_turn_id(self.tokenizer)
        self.stop_ids = sorted({self.eot} | ({self.tokenizer.eos_token_id} - {None}))
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eot
        self.context = int(getattr(self.model.config, "max_position_embeddings", 0) or 32768)

    def describe(self) -> dict:
        from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint

        return {
            "backend": self.backend,
            "base": self.base,
            "base_fingerprint": base_fingerprint(self.base),
            "adapters": [{"path": a, "sha256": adapter_fingerprint(a)} for a in self.adapters],
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "batch_size": self.batch_size,
            "context": self.context,
            "term_block": self.term_glossary is not None,
        }

    def _prepare(self, source: str, direction: str) -> tuple[list[int], int]:
        split_direction(direction)
        prompt = render_prompt_ids(self.tokenizer, source, direction, block_terms(self.term_glossary, source, direction))
        n_src = len(self.tokenizer(source, add_special_tokens=False)["input_ids"])
        budget = output_budget(n_src, len(prompt), self.context, cap=self.max_new_cap)
        return prompt, budget

    def translate(self, items: Sequence[tuple[str, str]], progress: bool = False,
                  desc: str = "translating") -> list[Translation]:
        import torch
        from transformers import GenerationConfig

        prepared = [self._prepare(src, direction) for src, direction in items]
        results: list[Translation | None] = [None] * len(items)
        # Longest prompts first, so each batch holds similar lengths (little padding) and the
        # slowest batch comes first (an honest progress-bar estimate).
        order = sorted(range(len(items)), key=lambda i: -len(prepared[i][0]))
        todo = []
        for i in order:
            prompt, budget = prepared[i]
            if budget <= 0:
                results[i] = Translation("", 0.0, 0, 0, False,
                                         f"prompt of {len(prompt)} tokens leaves no room in a {self.context}-token context")
            else:
                todo.append(i)
        bar = _progress(len(items), progress, desc)
        bar.update(len(items) - len(todo))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            width = max(len(prepared[i][0]) for i in batch)
            input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                prompt = prepared[i][0]
                input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
                attention[row, width - len(prompt) :] = 1
            budget = max(prepared[i][1] for i in batch)
            # A fresh config: the model's own generation_config may ask for sampling or a
            # repetition penalty, and llama.cpp (the other backend) applies neither.
            config = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=budget,
                                      eos_token_id=self.stop_ids, pad_token_id=self.pad_id,
                                      repetition_penalty=1.0)
            began = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(input_ids=input_ids.to(self.device),
                                          attention_mask=attention.to(self.device), generation_config=config)
            seconds = (time.perf_counter() - began) / len(batch)
            for row, i in enumerate(batch):
                new = out[row, width:].tolist()[: prepared[i][1]]
                stop = next((k for k, t in enumerate(new) if t in self.stop_ids), None)
                kept = new if stop is None else new[:stop]
                text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
                results[i] = Translation(text, seconds, len(kept), prepared[i][1], stop is not None)
            bar.update(len(batch))
        bar.close()
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.model = None


class LlamaCppTranslator(Translator):
    """Greedy translation of a GGUF with llama.cpp, through the app's own engine.

    The model is loaded and run by :class:`runtime.engine.TranslationEngine` (Qt-free, no torch),
    exactly as ``tsx-medtrans`` runs it: the GGUF's chat template, the source normalised, split into
    sentences that fit the context, the app's output budget, the runtime LoRA stack of a tuned model
    (:mod:`runtime.adapters`). So a score of this backend is a score of what users get.

    ``gguf``: a GGUF file, bundled model name or tuned-model spec; ``adapters``: GGUF LoRA files
    applied at run time after the spec's; ``base_only``: a tuned model's base without its adapters.
    """

    backend = "llamacpp"

    def __init__(self, gguf: str | os.PathLike[str], n_ctx: int = 4096, n_threads: int | None = None,
                 max_new_cap: int = BUDGET_MAX, verbose: bool = False,
                 adapters: Sequence[str | os.PathLike[str]] = (), base_only: bool = False, parallel: int = 0,
                 term_glossary: Glossary | None = None, term_block_mode: str = "on"):
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(f"llama-cpp-python is not installed ({exc}); pip install 'tsx-medtrans[desktop]'") from None
        from medcore.models import SMALL_MODEL
        from medcore.modelspec import resolve
        from runtime.engine import TranslationEngine
        from runtime.options import LoadOptions

        model = str(gguf) if str(gguf) else SMALL_MODEL
        resolve(model, base_only=base_only)  # fails early, with the resolver's message, for an unknown model
        self.max_new_cap = max_new_cap
        self.engine = TranslationEngine()
        self.info = self.engine.load(model, LoadOptions(n_ctx=n_ctx, n_threads=n_threads, parallel=parallel),
                                     base_only=base_only,
                                     adapters=[str(a) for a in adapters])
        # --term-block (on) measures the block with any model; --term-block auto is what the app does.
        self.engine.set_term_glossary(term_glossary, mode=term_block_mode)
        self.path = self.info.path
        self.context = int(self.info.n_ctx)

    @property
    def llm(self):
        return self.engine.llm

    def describe(self) -> dict:
        from runtime.model_hash import model_sha256

        info = self.info
        runtime = self.engine.runtime_provenance()
        return {"backend": self.backend, "gguf": str(self.path), "sha256": info.base_sha256 or model_sha256(self.path),
                "tuned_model": info.spec, "base_only": runtime.get("base_only", False),
                "adapters": runtime.get("adapters", []), "data_manifest_sha256": runtime.get("data_manifest_sha256"),
                "context": self.context, "batch_size": 1, "parallel": self.info.options.parallel,
                # A label in saved run keys (evaluation.resume), kept from before the engine moved to
                # runtime.engine: a new spelling would make --resume redo every finished run.
                "engine": "desktop.engine.TranslationEngine", "term_block": runtime.get("term_block", False)}

    def translate(self, items: Sequence[tuple[str, str]], progress: bool = False,
                  desc: str = "translating") -> list[Translation]:
        from runtime.errors import EngineError

        for _, direction in items:
            split_direction(direction)
        bar = _progress(len(items), progress, desc)
        # Every segment of every item side by side (the app's parallel path; sequential with parallel=1).
        outs = self.engine.translate_many(list(items), max_new_tokens=self.max_new_cap,
                                          on_item=lambda i, r: bar.update(1))
        bar.close()
        results = []
        for out in outs:
            if isinstance(out, EngineError):  # not even a short piece fits the context
                results.append(Translation("", 0.0, 0, 0, False, str(out)))
                continue
            segments = out.segments
            results.append(Translation(
                out.translation, out.seconds, out.generated_tokens, sum(seg.max_tokens for seg in segments),
                bool(segments) and all(seg.finish_reason == "stop" for seg in segments),
            ))
        return results

    def close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.unload()


def make_translator(backend: str, model: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] = (),
                    batch_size: int = 8, n_ctx: int = 4096, **kwargs: Any) -> Translator:
    """A translator for ``backend`` ('transformers' or 'llamacpp')."""
    if backend == "transformers":
        return TransformersTranslator(model, adapters, batch_size=batch_size, **kwargs)
    if backend == "llamacpp":
        peft = [str(a) for a in adapters if Path(a).is_dir()]
        if peft:
            raise ValueError(f"the llama.cpp backend applies GGUF LoRA adapters at run time, not PEFT directories "
                             f"({', '.join(peft)}): convert them with `tsx-convert lora` first")
        return LlamaCppTranslator(model, n_ctx=n_ctx, adapters=adapters, **kwargs)
    raise ValueError(f"unknown backend {backend!r} (expected 'transformers' or 'llamacpp')")
