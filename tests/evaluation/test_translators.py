"""The transformers backend on a tiny random Qwen2: greedy, batched, output budgets (mechanics, not quality)."""

from __future__ import annotations

from evaluation.translators import TransformersTranslator, output_budget
from medcore.prompt import render_prompt_ids
from tests.evaluation.samples import CAP, ITEMS


def test_output_budget():
    assert output_budget(10, 50, 4096) == 36  # 2 x 10 + 16
    assert output_budget(10, 4090, 4096) == 6  # never past the context
    assert output_budget(10, 5000, 4096) == 0  # no room at all
    assert output_budget(5000, 10, 100000, cap=1024) == 1024


def test_greedy_is_deterministic_and_batching_does_not_change_outputs(tiny_translator, tiny_qwen2_dir):
    batched = tiny_translator.translate(ITEMS)
    again = tiny_translator.translate(ITEMS)
    assert [t.text for t in batched] == [t.text for t in again]
    one_by_one = TransformersTranslator(tiny_qwen2_dir, batch_size=1, device="cpu", max_new_cap=CAP).translate(ITEMS)
    # Left padding + attention mask: a segment's greedy output does not depend on its batch mates.
    assert [t.text for t in batched] == [t.text for t in one_by_one]
    assert [t.new_tokens for t in batched] == [t.new_tokens for t in one_by_one]


def test_output_length_is_capped_from_source_length(tiny_translator):
    tok = tiny_translator.tokenizer
    budgets = []
    for (src, direction), out in zip(ITEMS, tiny_translator.translate(ITEMS), strict=True):
        n_src = len(tok(src, add_special_tokens=False)["input_ids"])
        n_prompt = len(render_prompt_ids(tok, src, direction))
        assert out.max_new_tokens == output_budget(n_src, n_prompt, 512, cap=CAP)
        budgets.append(out.max_new_tokens)
        assert out.new_tokens <= out.max_new_tokens
        # A random model rarely says end-of-turn; when it does not, it ran exactly to the cap.
        if not out.stopped:
            assert out.new_tokens == out.max_new_tokens
        assert out.error is None
    # "fever" (a token or two) gets 2 x n + 16 < CAP; the long sentences get the cap.
    assert budgets[3] < CAP and budgets[1] == CAP


def test_context_limit_is_never_exceeded(tiny_translator):
    tok = tiny_translator.tokenizer
    words = ["fever", "cough", "headache", "nausea"]
    near = " ".join(words * 60)  # prompt close to the tiny model's 512-token context
    while len(render_prompt_ids(tok, near, "en-zh")) > 500:
        near = near.rsplit(" ", 1)[0]
    too_long = " ".join(words * 200)
    out_near, out_long = tiny_translator.translate([(near, "en-zh"), (too_long, "en-zh")])
    n_prompt = len(render_prompt_ids(tok, near, "en-zh"))
    assert out_near.max_new_tokens == 512 - n_prompt and out_near.new_tokens <= 512 - n_prompt
    assert out_long.text == "" and out_long.max_new_tokens == 0 and "context" in out_long.error
