"""The prompt a model is trained on is, token for token, the prompt the app sends to llama.cpp."""

from __future__ import annotations

import pytest

from medcore.prompt import DIRECTIONS, auto_direction, end_of_turn_id, load_contract, render_prompt_ids

SOURCES = {"zh-en": "急性心肌梗死患者应尽早行经皮冠状动脉介入治疗。",
           "en-zh": "Patients with acute myocardial infarction should undergo PCI as early as possible."}
TERMS = {"zh-en": [("急性心肌梗死", "acute myocardial infarction"), ("经皮冠状动脉介入治疗", "PCI")],
         "en-zh": [("acute myocardial infarction", "急性心肌梗死")]}


def test_contract_is_data_and_has_both_directions():
    contract = load_contract()
    assert contract.version >= 1
    for direction in DIRECTIONS:
        messages = contract.messages(SOURCES[direction], direction)
        assert [m["role"] for m in messages] == ["system", "user"]
        assert messages[1]["content"].endswith(SOURCES[direction])
    with pytest.raises(ValueError, match="unknown direction"):
        contract.messages("x", "fr-en")
    assert auto_direction(SOURCES["zh-en"]) == "zh-en" and auto_direction(SOURCES["en-zh"]) == "en-zh"


@pytest.mark.bundled
def test_trainer_and_llamacpp_render_identical_token_ids(small_gguf, qwen_tokenizer_dir):
    """Trainer: the HF tokenizer's chat template. App: llama.cpp's chat formatter on the GGUF's template."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    llm = llama_cpp.Llama(str(small_gguf), vocab_only=True, verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    eos = llm.detokenize([llm.token_eos()]).decode()
    formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token="")
    for direction in DIRECTIONS:
        for terms in ((), TERMS[direction]):  # the plain prompt and the one with a term block
            trainer_ids = render_prompt_ids(tokenizer, SOURCES[direction], direction, terms)
            prompt = formatter(messages=load_contract().messages(SOURCES[direction], direction, terms)).prompt
            app_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            assert trainer_ids == app_ids, (direction, terms)
    # The answer ends where llama.cpp stops: the template's end-of-turn token.
    assert tokenizer.convert_ids_to_tokens(end_of_turn_id(tokenizer)) == "<|im_end|>"
    assert end_of_turn_id(tokenizer) == llm.token_eos()
