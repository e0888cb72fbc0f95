"""Merging byte-level BPE pieces into readable units, and carrying attention over."""

from __future__ import annotations

import numpy as np
import pytest

from desktop.attention import tokens as tok


def _spans(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    out, pos = [], 0
    for p in pieces:
        out.append((pos, pos + len(p)))
        pos += len(p)
    assert pos == len(text)
    return out


def test_english_pieces_join_into_words_but_not_across_spaces():
    text = "Acute myocardial infarction, COVID-19 patients."
    pieces = ["Ac", "ute", " myocard", "ial", " inf", "ar", "ction", ",", " COVID", "-", "1", "9", " patients", "."]
    units = tok.merge_pieces(text, _spans(text, pieces))
    assert [u.text for u in units] == ["Acute", "myocardial", "infarction", ",", "COVID-19", "patients", "."]
    assert [u.pieces for u in units][:3] == [(0, 1), (2, 3), (4, 5, 6)]
    for u in units:  # labels are slices of the original text, whitespace trimmed
        assert text[u.span[0]:u.span[1]] == u.text


def test_cjk_keeps_tokenizer_grouping_and_merges_fragments_of_one_character():
    text = "急性心肌梗死 氯吡"
    # "心肌" one piece; "氯" split into three byte pieces that all map to the same character span.
    spans = [(0, 2), (2, 4), (4, 5), (5, 6), (6, 8), (7, 8), (7, 8), (8, 9)]
    units = tok.merge_pieces(text, spans)
    assert [u.text for u in units] == ["急性", "心肌", "梗", "死", "氯", "吡"]
    assert units[4].pieces == (4, 5, 6)


def test_whitespace_only_pieces_attach_to_a_neighbour():
    text = "\n\nfever  cough"
    spans = [(0, 2), (2, 7), (7, 9), (9, 14)]
    units = tok.merge_pieces(text, spans)
    assert [u.text for u in units] == ["fever", "cough"]
    assert units[0].pieces == (0, 1, 2) and units[1].pieces == (3,)  # leading: next; inner: previous


def test_attention_is_summed_over_keys_and_averaged_over_queries():
    rng = np.random.default_rng(0)
    attn = np.tril(rng.random((2, 3, 5, 5))).astype(np.float32)
    attn /= attn.sum(-1, keepdims=True)
    member = tok.membership([[0], [1, 2], [3, 4]], 5)
    merged = tok.merge_queries(tok.merge_keys(attn, member), member)
    assert merged.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(merged.sum(-1), 1.0, atol=1e-6)  # still distributions
    # unit 1 (pieces 1, 2) -> unit 0 (piece 0): mean over the two query rows of the key column 0
    np.testing.assert_allclose(merged[1, 2, 1, 0], (attn[1, 2, 1, 0] + attn[1, 2, 2, 0]) / 2, rtol=1e-6)
    # unit 2 (3, 4) -> unit 1 (1, 2): mean over queries 3, 4 of the sum over keys 1, 2
    expect = (attn[0, 0, 3, 1] + attn[0, 0, 3, 2] + attn[0, 0, 4, 1] + attn[0, 0, 4, 2]) / 2
    np.testing.assert_allclose(merged[0, 0, 2, 1], expect, rtol=1e-6)
    with pytest.raises(ValueError):
        tok.membership([[0, 1], [1]], 2)  # a piece in two units


def test_real_qwen_tokenizer_chinese_never_garbled(qwen_tokenizer_dir, shared_data):
    """Real Chinese from the shared data through the bundled Qwen tokenizer (151,936 tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    lines = (shared_data / "sentences" / "wmt18_medline_zh2en.tsv").read_text(encoding="utf-8").splitlines()[:40]
    texts = [line.split("\t")[0] for line in lines]
    # Rare characters the vocabulary lacks: split into byte pieces (氯 = 3 pieces, 阿 = 3 with its space).
    texts.append("嘌呤霉素 氯吡格雷 阿托伐他汀 鼽衄")
    fragments = 0
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        pieces = [tokenizer.decode([i]) for i in enc["input_ids"]]
        fragments += sum("\ufffd" in p for p in pieces)  # what a naive view would show
        units = tok.merge_pieces(text, enc["offset_mapping"])
        assert sorted(p for u in units for p in u.pieces) == list(range(len(pieces)))
        for u in units:
            assert "\ufffd" not in u.text and u.text == text[u.span[0]:u.span[1]]
            assert not any(ch in u.text for ch in "ĠĊÃåæçè")  # no byte-level BPE symbols
        assert "".join(u.text for u in units) == "".join(text.split())
    assert fragments > 0, "the sample should contain characters split into byte pieces"
    last = tok.merge_pieces(texts[-1], tokenizer(texts[-1], add_special_tokens=False,
                                                 return_offsets_mapping=True)["offset_mapping"])
    labels = [u.text for u in last]
    assert "氯" in labels and "阿" in labels
    assert len(next(u for u in last if u.text == "氯").pieces) == 3
