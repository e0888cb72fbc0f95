"""The chat template policy: a prompt is the prompt contract's messages rendered by the GGUF's own template.

- The template is the GGUF's (``tokenizer.chat_template``); a GGUF without one is refused, never guessed.
- llama-cpp-python's ``Jinja2ChatFormatter`` renders it with the model's own BOS and end-of-turn text
  and stops at the end-of-turn token. The engine sets it as the ``Llama``'s chat handler itself
  (llama-cpp-python would swap in its built-in "chatml" for some templates), so generation and
  prompt counting use the same renderer; the attention capture renders with it too.
- The rendered text is tokenised by llama.cpp with special tokens parsed, and a BOS only where the
  template did not write one.

``tests/core/test_prompt_contract.py`` checks the result is the trainer's token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def chat_formatter(llm: Any, template: str) -> Any:
    """A ``Jinja2ChatFormatter`` for ``template`` with ``llm``'s BOS and end-of-turn token (``.eos_token``)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    eos_id, bos_id = llm.token_eos(), llm.token_bos()
    eos = llm.detokenize([eos_id], special=True).decode("utf-8", "replace") if eos_id >= 0 else ""
    bos = llm.detokenize([bos_id], special=True).decode("utf-8", "replace") if bos_id >= 0 else ""
    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, stop_token_ids=[eos_id])


def render(formatter: Any, llm: Any, messages: Sequence[dict[str, str]]) -> tuple[list[int], str]:
    """The token ids llama.cpp evaluates for ``messages``, and the prompt text they come from."""
    rendered = formatter(messages=messages)
    ids = llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)
    return list(ids), rendered.prompt
