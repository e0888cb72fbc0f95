"""The transformers attention engine on a tiny real Qwen2 (random weights, real tokenizer/template)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from desktop.attention import tokens as tok
from desktop.attention.engine import AttentionResult, TransformersAttentionEngine, assemble, locate_source
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
    from trainer.modeling import apply_adapters, load_model

    engine = TransformersAttentionEngine(tiny_qwen2_dir, adapters=tiny_adapters)
    assert engine.has_base
    tuned = engine.compute(ZH, EN, "zh-en")
    base = engine.compute(ZH, EN, "zh-en", base=True)
    assert tuned.variant == "fine-tuned" and base.variant == "base"
    np.testing.assert_allclose(base.attentions, tiny_result.attentions, atol=2e-5)
    assert np.abs(tuned.attentions - base.attentions).max() > 1e-2  # the adapters change attention
    merged = apply_adapters(load_model(tiny_qwen2_dir, attn="eager"), tiny_adapters, merge_last=True).eval()
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
