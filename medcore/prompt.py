"""The prompt contract: what the trainer trains on is exactly what the app sends.

The messages come from ``resources/prompts/translation.yaml``. Callers turn them into tokens
with the model's own chat template: ``render_prompt_ids`` for a transformers tokenizer (trainer,
evaluation, attention), llama.cpp's ``create_chat_completion`` for the app. The answer the model
is trained to produce is the target text followed by the template's end-of-turn token.

Since version 2 a prompt may carry a *term block*: glossary terms found in the source, given as
required translations (``terms``). Without terms the prompt is exactly version 1's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import yaml

from medcore.resources import resource_path
from medcore.textnorm import detect_lang

DIRECTIONS = ("zh-en", "en-zh")


def split_direction(direction: str) -> tuple[str, str]:
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
    src, tgt = direction.split("-")
    return src, tgt


def auto_direction(text: str) -> str:
    """zh-en for Chinese input, en-zh otherwise."""
    return "zh-en" if detect_lang(text) == "zh" else "en-zh"


_SLOT = re.compile(r"\{(terms|source)\}")

#: A required translation in the term block: (term as it appears in the source, its translation).
TermPair = tuple[str, str]


@dataclass(frozen=True)
class TermBlock:
    header: str
    entry: str
    max_terms: int

    def render(self, terms: Sequence[TermPair]) -> str:
        """The block for ``terms`` (the first ``max_terms``, duplicates dropped); "" when there are none."""
        lines, seen = [], set()
        for source_term, target_term in terms:
            source_term, target_term = source_term.strip(), target_term.strip()
            key = source_term.casefold()
            if not source_term or not target_term or key in seen:
                continue
            seen.add(key)
            lines.append(self.entry.replace("{source_term}", source_term).replace("{target_term}", target_term))
            if len(lines) == self.max_terms:
                break
        return "" if not lines else self.header + "\n" + "\n".join(lines) + "\n\n"


@dataclass(frozen=True)
class PromptContract:
    version: int
    system: str
    user_templates: dict[str, str]
    term_block: TermBlock

    def messages(self, source: str, direction: str, terms: Sequence[TermPair] = ()) -> list[dict[str, str]]:
        """The chat messages for translating ``source`` in ``direction`` (no answer).

        ``terms`` are required translations for terms in the source; they become the term block.
        """
        split_direction(direction)
        slots = {"terms": self.term_block.render(terms), "source": source}
        # One pass over the template: text inside the source or the terms is never substituted again.
        user = _SLOT.sub(lambda m: slots[m.group(1)], self.user_templates[direction])
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@lru_cache(maxsize=1)
def load_contract() -> PromptContract:
    data = yaml.safe_load(resource_path("prompts", "translation.yaml").read_text(encoding="utf-8"))
    templates = data.get("user_templates", {})
    missing = [d for d in DIRECTIONS if d not in templates]
    if missing:
        raise ValueError(f"prompt contract lacks user templates for {missing}")
    for direction in DIRECTIONS:
        if templates[direction].count("{source}") != 1 or templates[direction].count("{terms}") != 1:
            raise ValueError(f"prompt contract: the {direction} template needs exactly one {{terms}} and one {{source}}")
    block = data.get("term_block") or {}
    try:
        term_block = TermBlock(str(block["header"]), str(block["entry"]), int(block["max_terms"]))
    except KeyError as exc:
        raise ValueError(f"prompt contract: term_block lacks {exc}") from None
    return PromptContract(int(data["version"]), str(data["system"]), dict(templates), term_block)


def render_prompt_ids(tokenizer: Any, source: str, direction: str, terms: Sequence[TermPair] = ()) -> list[int]:
    """Token ids of the prompt (up to and including the assistant header) via the chat template."""
    messages = load_contract().messages(source, direction, terms)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    # transformers 5 returns a BatchEncoding here; 4.x returns a list.
    if hasattr(ids, "keys") and "input_ids" in ids:
        ids = ids["input_ids"]
    return list(ids)


def end_of_turn_id(tokenizer: Any) -> int:
    """The token that closes an assistant turn in this tokenizer's chat template.

    For ChatML templates (Qwen) it is ``<|im_end|>``, for Llama-3 ``<|eot_id|>``; otherwise the EOS.
    """
    vocab = tokenizer.get_vocab()
    for candidate in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
        if candidate in vocab and candidate in (tokenizer.chat_template or ""):
            return vocab[candidate]
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has neither a known end-of-turn token nor an EOS token")
    return int(tokenizer.eos_token_id)
