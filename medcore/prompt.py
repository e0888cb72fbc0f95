"""The prompt contract: what the trainer trains on is exactly what the app sends.

The messages come from ``resources/prompts/translation.yaml``. Callers turn them into tokens
with the model's own chat template: ``render_prompt_ids`` for a transformers tokenizer (trainer,
evaluation, attention), llama.cpp's ``create_chat_completion`` for the app. The answer the model
is trained to produce is the target text followed by the template's end-of-turn token.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class PromptContract:
    version: int
    system: str
    user_templates: dict[str, str]

    def messages(self, source: str, direction: str) -> list[dict[str, str]]:
        """The chat messages for translating ``source`` in ``direction`` (no answer)."""
        split_direction(direction)
        user = self.user_templates[direction].replace("{source}", source)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@lru_cache(maxsize=1)
def load_contract() -> PromptContract:
    data = yaml.safe_load(resource_path("prompts", "translation.yaml").read_text(encoding="utf-8"))
    missing = [d for d in DIRECTIONS if d not in data.get("user_templates", {})]
    if missing:
        raise ValueError(f"prompt contract lacks user templates for {missing}")
    return PromptContract(int(data["version"]), str(data["system"]), dict(data["user_templates"]))


def render_prompt_ids(tokenizer: Any, source: str, direction: str) -> list[int]:
    """Token ids of the prompt (up to and including the assistant header) via the chat template."""
    messages = load_contract().messages(source, direction)
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
