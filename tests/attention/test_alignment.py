"""Term -> source alignment on hand-made attention with a known answer."""

from __future__ import annotations

import numpy as np

from desktop.attention.alignment import align_term, best_span, default_band
from desktop.attention.engine import AttentionResult

SRC = ["患者", "确诊", "为", "急性", "心肌", "梗死", "，", "预后", "良好", "。"]
TGT = ["The", "patient", "had", "acute", "myocardial", "infarction", "."]


def _result(gen_to_src: np.ndarray) -> AttentionResult:
    """A result whose generation rows put ``gen_to_src`` [L, H, n_tgt, n_src] on the source."""
    layers, heads = gen_to_src.shape[:2]
    n_src, n_tgt = len(SRC), len(TGT)
    n = n_src + n_tgt
    src_text = "".join(SRC)
    tgt_text = " ".join(TGT[:-1]) + "."
    src_spans, pos = [], 0
    for t in SRC:
        src_spans.append((pos, pos + len(t)))
        pos += len(t)
    tgt_spans, pos = [], 0
    for t in TGT:
        start = tgt_text.index(t, pos)
        tgt_spans.append((start, start + len(t)))
        pos = start + len(t)
    gen = np.zeros((layers, heads, n_tgt, n), dtype=np.float32)
    gen[..., :n_src] = gen_to_src * 0.6
    gen[..., n_src] = 1 - gen[..., :n_src].sum(-1)  # the rest on the translation's first token
    attn = np.tril(np.ones((layers, heads, n, n), dtype=np.float32))
    attn /= attn.sum(-1, keepdims=True)
    return AttentionResult(src_text, tgt_text, "zh-en", SRC, TGT, np.array(src_spans), np.array(tgt_spans),
                           attn, np.ones((layers, heads, n)), gen, np.ones((layers, heads, n_tgt)))


def _peaked(focus: list[int], layers=12, heads=4, noise=0.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.full((layers, heads, len(TGT), len(SRC)), 0.02)
    base[..., focus] = 1.0
    base += noise * rng.random(base.shape)
    base[..., 6] = 3.0  # the comma is a strong attention sink; it must be ignored
    return base / base.sum(-1, keepdims=True)


def test_concentrated_attention_aligns_with_high_confidence():
    r = _result(_peaked([3, 4, 5]))
    term = r.translation.index("acute myocardial infarction")
    a = align_term(r, (term, term + len("acute myocardial infarction")), expected_span=(5, 11))
    assert a.src_text == "急性心肌梗死" and a.src_units == [3, 4, 5]
    assert a.tgt_units == [3, 4, 5]
    assert a.confidence > 0.9 and a.agreement == 1.0 and not a.weak and a.reason == "ok"
    assert a.expected_units == [3, 4, 5] and a.expected_mass > 0.9
    assert a.per_layer.shape == (12, len(SRC)) and a.per_head.shape == (12, 4, len(SRC))
    np.testing.assert_allclose(a.profile.sum(), 1.0, atol=1e-5)
    assert a.profile[6] == 0.0  # punctuation left out
    np.testing.assert_allclose(a.source_share, 0.6, atol=1e-5)  # share of attention on the source


def test_diffuse_attention_is_flagged_weak():
    r = _result(_peaked(list(range(10)), noise=1.0, seed=1))
    a = align_term(r, (4, 11))  # "patient"
    assert a.weak and "confidence" in a.reason and a.confidence < 0.2


def test_alignment_missing_the_expected_source_term_is_flagged():
    r = _result(_peaked([7, 8]))  # looks at 预后良好
    term = r.translation.index("acute myocardial infarction")
    a = align_term(r, (term, term + 27), expected_span=(5, 11))
    assert a.src_text == "预后良好" and a.weak and "misses the expected" in a.reason
    assert a.expected_mass < 0.1


def test_best_span_and_band():
    assert best_span(np.array([0.05, 0.1, 0.4, 0.3, 0.1, 0.05])) == (2, 4)
    assert best_span(np.array([0.05, 0.1, 0.4, 0.3, 0.25, 0.05]), grow=0.5) == (2, 5)
    assert best_span(np.ones(20) / 20, max_units=4) == (0, 4)
    assert default_band(24) == list(range(8, 22))
    assert default_band(2) == [1] and default_band(1) == [0]
