"""The transformers attention engine on a tiny real Qwen2 (random weights, real tokenizer/template)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from desktop.attention import tokens as tok
from desktop.attention.engine import (
    AttentionResult,
    TransformersAttentionEngine,
    assemble,
    locate_source,
    use_log_attention,
)
from tests.attention.conftest import EN, ZH


def _reference(model_dir, source, translation, direction, model=None):
    """Attention from one plain full forward pass (no prefix cache), cut and merged by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medcore.prompt import end_of_turn_id, render_prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if model is None:
        model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager").eval()
    prompt = render_prompt_ids(tokenizer, source, direction)
    src_pos, src_spans = locate_source(tokenizer, prompt, source, direction)
    tgt = tokenizer(translation, add_special_tokens=False, return_offsets_mapping=True)
    ids = prompt + list(tgt["input_ids"]) + [end_of_turn_id(tokenizer)]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    attn = torch.cat(out.attentions).numpy()  # [L, H, T, T]
    tgt_pos = list(range(len(prompt), len(prompt) + len(tgt["input_ids"])))
    kept = src_pos + tgt_pos
    raw = attn[:, :, kept][:, :, :, kept]
    raw_gen = attn[:, :, [p - 1 for p in tgt_pos]][:, :, :, kept]
    src_units = tok.merge_pieces(source, src_spans)
    tgt_units = tok.merge_pieces(translation, tgt["offset_mapping"])
    return assemble(raw, raw_gen, src_units, tgt_units, len(src_pos), len(tgt_pos)), raw.sum(-1)


def test_shapes_row_sums_and_causality(tiny_result: AttentionResult):
    r = tiny_result
    n = r.n_src + r.n_tgt
    assert r.attentions.shape == (2, 4, n, n)  # tiny Qwen2: 2 layers, 4 heads
    assert r.kept_mass.shape == (2, 4, n)
    assert r.generation.shape == (2, 4, r.n_tgt, n)
    assert r.generation_kept_mass.shape == (2, 4, r.n_tgt)
    assert r.attentions.dtype == np.float32 and isinstance(r.attentions, np.ndarray)
    np.testing.assert_allclose(r.attentions.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(r.generation.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(r.attentions, k=1) == 0)  # units are contiguous: causal at unit level too
    gen_tgt = r.generation[:, :, :, r.n_src:]
    assert np.all(np.triu(gen_tgt, k=1) == 0)  # producing unit j never sees units after j
    assert np.all((r.kept_mass > 0) & (r.kept_mass <= 1 + 1e-5))
    # scaffolding really was removed: kept tokens get only part of each raw row
    assert r.kept_mass.mean() < 0.99
    r.validate()


def test_tokens_and_spans_cover_the_texts(tiny_result: AttentionResult):
    r = tiny_result
    assert "".join(r.src_tokens) == ZH
    assert "".join(r.tgt_tokens) == EN.replace(" ", "")
    for text, tokens, spans in ((ZH, r.src_tokens, r.src_spans), (EN, r.tgt_tokens, r.tgt_spans)):
        assert [text[s:e] for s, e in spans.tolist()] == tokens
    assert r.units_in((31, 58), "tgt") == [r.tgt_tokens.index("acute"), r.tgt_tokens.index("myocardial"),
                                           r.tgt_tokens.index("infarction")]


def test_prefix_cache_matches_one_full_forward_pass(tiny_engine, tiny_qwen2_dir, tiny_result):
    expected, raw_mass = _reference(tiny_qwen2_dir, ZH, EN, "zh-en")
    for name, array in expected.items():
        np.testing.assert_allclose(getattr(tiny_result, name), array, atol=2e-5, err_msg=name)
    # second pair, other direction: the cached prefix of the other direction is not reused wrongly
    other = tiny_engine.compute("Fever and cough.", "发热和咳嗽。", "en-zh")
    expected2, _ = _reference(tiny_qwen2_dir, "Fever and cough.", "发热和咳嗽。", "en-zh")
    np.testing.assert_allclose(other.attentions, expected2["attentions"], atol=2e-5)


def test_results_are_cached_per_pair(tiny_engine):
    t0 = time.perf_counter()
    first = tiny_engine.compute(ZH, EN, "zh-en")
    again = tiny_engine.compute(ZH, EN, "zh-en")
    assert again is first and time.perf_counter() - t0 < 1.0
    assert tiny_engine.compute(ZH, EN + " ", "zh-en") is not first


def test_adapters_stack_and_base_comparison(tiny_qwen2_dir, tiny_adapters, tiny_result):
    """Unmerged stage adapters == the merged stack; adapters disabled == the plain base model."""
    from hfmodel.adapters import stack_adapters
    from hfmodel.loading import load_model

    engine = TransformersAttentionEngine(tiny_qwen2_dir, adapters=tiny_adapters)
    assert engine.has_base
    tuned = engine.compute(ZH, EN, "zh-en")
    base = engine.compute(ZH, EN, "zh-en", base=True)
    assert tuned.variant == "fine-tuned" and base.variant == "base"
    np.testing.assert_allclose(base.attentions, tiny_result.attentions, atol=2e-5)
    assert np.abs(tuned.attentions - base.attentions).max() > 1e-2  # the adapters change attention
    merged = stack_adapters(load_model(tiny_qwen2_dir, attn="eager"), tiny_adapters, live="none").eval()
    expected, _ = _reference(tiny_qwen2_dir, ZH, EN, "zh-en", model=merged)
    np.testing.assert_allclose(tuned.attentions, expected["attentions"], atol=1e-4)
    np.testing.assert_allclose(tuned.generation, expected["generation"], atol=1e-4)


def test_no_base_without_adapters_and_empty_input(tiny_engine):
    assert not tiny_engine.has_base
    with pytest.raises(ValueError, match="no base model"):
        tiny_engine.compute(ZH, EN, "zh-en", base=True)
    with pytest.raises(ValueError, match="non-empty"):
        tiny_engine.compute(ZH, "  ", "zh-en")


def test_validate_rejects_wrong_shapes(tiny_result):
    from dataclasses import replace

    bad = replace(tiny_result, attentions=tiny_result.attentions[:, :, :-1])
    with pytest.raises(ValueError, match="attentions has shape"):
        bad.validate()


def _two_by_one():
    """Source 心肌 (two units), translation MI (one unit): three kept pieces."""
    return tok.merge_pieces("心肌", [(0, 1), (1, 2)]), tok.merge_pieces("MI", [(0, 2)])


def test_row_with_a_tiny_kept_share_is_renormalised_by_that_share():
    """Issue 10: in the bundled 1.5B, layer 0 head 1 at the last header token (the query producing
    the first translated word) gives the source 3.2e-13 of its attention. Dividing by a 1e-12
    floor instead of that share gave a row summing to 0.32, and the 1.5B could not be viewed."""
    src_units, tgt_units = _two_by_one()
    raw = np.array([[[[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]]]])  # kept rows: all mass kept
    raw_gen = np.array([[[[1e-13, 2.2e-13, 0.0]]]], dtype=np.float32)  # the rest went to the prompt
    out = assemble(raw, raw_gen, src_units, tgt_units, 2, 1)
    np.testing.assert_allclose(out["generation"][0, 0, 0], [1 / 3.2, 2.2 / 3.2, 0.0], rtol=1e-5)
    np.testing.assert_allclose(out["generation_kept_mass"], [[[3.2e-13]]], rtol=1e-5)
    # The same from log-weights, also when the kept share is far below float32 (exp(-200)).
    with np.errstate(divide="ignore"):
        log_gen = np.log(np.array([[[[1.0, 2.2, 0.0]]]])) - 200.0
    out_log = assemble(np.log(raw + 1e-30), log_gen, src_units, tgt_units, 2, 1, log_weights=True)
    np.testing.assert_allclose(out_log["generation"], out["generation"], rtol=1e-6)
    np.testing.assert_allclose(out_log["attentions"], out["attentions"], atol=1e-6)
    assert out_log["generation_kept_mass"].dtype == np.float32


def test_underflowed_probability_row_is_an_error_not_a_wrong_row():
    src_units, tgt_units = _two_by_one()
    raw = np.array([[[[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]]]])
    with pytest.raises(ValueError, match="underflow"):
        assemble(raw, np.zeros((1, 1, 1, 3)), src_units, tgt_units, 2, 1)


@pytest.mark.filterwarnings("ignore:.*output_attentions=True. is not supported:UserWarning")
def test_log_weight_attention_is_eager_attention(tiny_qwen2_dir, tiny_engine, tiny_result):
    """The engine's attention implementation computes exactly eager's output and hands back
    log-weights equal to eager's weights."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir, attn_implementation="eager").eval()
    ids = torch.tensor([list(range(100, 140))])
    with torch.no_grad():
        eager = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
        assert use_log_attention(model)
        logged = model(input_ids=ids, output_attentions=True, output_hidden_states=True)
    assert torch.equal(eager.logits, logged.logits)
    for a, b in zip(eager.attentions, logged.attentions, strict=True):
        torch.testing.assert_close(b.exp(), a, atol=1e-6, rtol=1e-5)
    assert tiny_engine._log_weights  # the engine really runs on log-weights
