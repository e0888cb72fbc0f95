"""Translation backends for evaluation: the training-time model and the deployed GGUF, same prompt.

- :class:`TransformersTranslator`: an HF directory or a GGUF base (dequantised once, see
  :mod:`trainer.modeling`), optionally with the stage adapters applied; prompts rendered with
  :func:`medcore.prompt.render_prompt_ids`; greedy ``generate`` in left-padded batches.
- :class:`LlamaCppTranslator`: a GGUF file through llama-cpp-python's ``create_chat_completion`` with
  the contract's messages (the app's path), temperature 0, one segment at a time.

Both decode greedily, stop at the chat template's end of turn, and cap the output length from the
source length (:func:`output_budget`) without ever exceeding the model's context.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medcore.models import sha256_file
from medcore.prompt import end_of_turn_id, load_contract, render_prompt_ids, split_direction

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


def adapter_fingerprint(adapter: str | os.PathLike[str]) -> str:
    """sha256 over an adapter's config and weight files (names and contents)."""
    adapter = Path(adapter)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        path = adapter / name
        if path.exists():
            digest.update(name.encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


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


class TransformersTranslator(Translator):
    """Greedy translation with transformers: base model (+ stage adapters), batched, left-padded."""

    backend = "transformers"

    def __init__(self, base: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] = (),
                 batch_size: int = 8, device: str | None = None, bf16: bool | None = None,
                 max_new_cap: int = BUDGET_MAX):
        from trainer.modeling import load_for_inference, pick_device_dtype

        self.base = str(base)
        self.adapters = [str(a) for a in adapters]
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
        from trainer.modeling import base_fingerprint

        return {
            "backend": self.backend,
            "base": self.base,
            "base_fingerprint": base_fingerprint(self.base),
            "adapters": [{"path": a, "sha256": adapter_fingerprint(a)} for a in self.adapters],
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "batch_size": self.batch_size,
            "context": self.context,
        }

    def _prepare(self, source: str, direction: str) -> tuple[list[int], int]:
        split_direction(direction)
        prompt = render_prompt_ids(self.tokenizer, source, direction)
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
    """Greedy translation of a GGUF file with llama.cpp, through the chat template inside the GGUF."""

    backend = "llamacpp"

    def __init__(self, gguf: str | os.PathLike[str], n_ctx: int = 4096, n_threads: int | None = None,
                 max_new_cap: int = BUDGET_MAX, verbose: bool = False):
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(f"llama-cpp-python is not installed ({exc}); pip install 'tsx-medtrans[desktop]'") from None
        from medcore.llamacpp_runtime import open_llama
        from medcore.models import check_gguf_header, resolve_model

        self.path = resolve_model(str(gguf), default="qwen2.5-coder-0.5b")
        check_gguf_header(self.path)
        self.max_new_cap = max_new_cap
        self.llm = open_llama(self.path, n_ctx=n_ctx, n_threads=n_threads, verbose=verbose, seed=0)
        self.context = int(self.llm.n_ctx())
        self._overhead: int | None = None

    def describe(self) -> dict:
        from medcore.models import sha256_file

        return {"backend": self.backend, "gguf": str(self.path), "sha256": sha256_file(self.path),
                "context": self.context, "batch_size": 1}

    def _tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> int:
        """Prompt length: message contents plus the template's fixed tokens (measured once)."""
        content = sum(self._tokens(m["content"]) for m in messages)
        if self._overhead is None:
            self._overhead = self._template_overhead(messages, content)
        return content + self._overhead

    def _template_overhead(self, messages: list[dict[str, str]], content: int) -> int:
        template = (self.llm.metadata or {}).get("tokenizer.chat_template")
        if template:
            try:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                formatter = Jinja2ChatFormatter(template=template, eos_token="", bos_token="")
                text = formatter(messages=messages).prompt
                return max(0, len(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)) - content)
            except Exception as exc:  # an exotic template: fall back to a generous estimate
                log.debug("could not render the GGUF chat template: %s", exc)
        return 32

    def translate(self, items: Sequence[tuple[str, str]], progress: bool = False,
                  desc: str = "translating") -> list[Translation]:
        contract = load_contract()
        results = []
        bar = _progress(len(items), progress, desc)
        for source, direction in items:
            messages = contract.messages(source, direction)
            prompt = self._prompt_tokens(messages)
            budget = output_budget(self._tokens(source), prompt, self.context, cap=self.max_new_cap)
            began = time.perf_counter()
            if budget <= 0:
                results.append(Translation("", 0.0, 0, 0, False,
                                           f"prompt of ~{prompt} tokens leaves no room in a {self.context}-token context"))
                bar.update(1)
                continue
            try:
                out = self.llm.create_chat_completion(
                    messages=messages, temperature=0.0, top_k=1, top_p=1.0, min_p=0.0,
                    repeat_penalty=1.0, max_tokens=budget, seed=0,
                )
            except ValueError as exc:  # llama.cpp refuses prompts longer than the context
                results.append(Translation("", time.perf_counter() - began, 0, budget, False, str(exc)))
                bar.update(1)
                continue
            choice = out["choices"][0]
            usage = out.get("usage") or {}
            results.append(Translation(
                (choice["message"]["content"] or "").strip(), time.perf_counter() - began,
                int(usage.get("completion_tokens", 0)), budget, choice.get("finish_reason") == "stop",
            ))
            bar.update(1)
        bar.close()
        return results

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None and hasattr(llm, "close"):
            llm.close()


def make_translator(backend: str, model: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] = (),
                    batch_size: int = 8, n_ctx: int = 4096, **kwargs: Any) -> Translator:
    """A translator for ``backend`` ('transformers' or 'llamacpp')."""
    if backend == "transformers":
        return TransformersTranslator(model, adapters, batch_size=batch_size, **kwargs)
    if backend == "llamacpp":
        if adapters:
            raise ValueError("the llama.cpp backend takes a merged GGUF per system, not adapter directories "
                             "(export each stage with the converter first)")
        return LlamaCppTranslator(model, n_ctx=n_ctx, **kwargs)
    raise ValueError(f"unknown backend {backend!r} (expected 'transformers' or 'llamacpp')")
