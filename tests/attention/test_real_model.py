"""One real check on the bundled Qwen2.5-Coder-0.5B (dequantised once into the models cache)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.attention.conftest import EN, ZH


@pytest.mark.bundled
@pytest.mark.slow
def test_bundled_model_attention_and_term_alignment(small_gguf):
    from desktop.attention.alignment import align_term
    from desktop.attention.engine import TransformersAttentionEngine

    engine = TransformersAttentionEngine(small_gguf)
    r = engine.compute(ZH, EN, "zh-en")
    n = r.n_src + r.n_tgt
    assert r.attentions.shape == (24, 14, n, n)  # qwen2 0.5B: 24 layers x 14 heads
    np.testing.assert_allclose(r.attentions.sum(-1), 1.0, atol=1e-4)
    assert r.src_tokens[:4] == ["患者", "确诊", "为", "急性"]  # whole characters, never byte pieces
    assert "myocardial" in r.tgt_tokens and "percutaneous" in r.tgt_tokens
    assert r.meta["prompt_tokens"] > r.n_pieces[0]  # the scaffolding was there, and was removed
    start = EN.index("acute myocardial infarction")
    a = align_term(r, (start, start + 27), (ZH.index("急性心肌梗死"), ZH.index("急性心肌梗死") + 6))
    # Measured: the middle-to-late layers look at 急性心肌梗死 while writing the term.
    assert set(a.src_units) & set(a.expected_units) and not a.weak
    assert a.expected_mass > 0.3 and a.agreement > 0.6
