"""The self-test's attention checks (desktop/selftest/attention.py): the term it inspects, and the real
attention from llama.cpp, refused once torch has been imported."""

from __future__ import annotations

import sys

import pytest


def test_pick_term_finds_a_word_in_either_language():
    from desktop.selftest.attention import pick_term
    from desktop.selftest.checks import SENTENCES

    en = SENTENCES["en-zh"]
    span = pick_term(en, "en")
    assert en[span[0]:span[1]] == "percutaneous"
    zh = SENTENCES["zh-en"]
    zh_span = pick_term(zh, "zh")
    assert zh[zh_span[0]:zh_span[1]] in zh and zh_span[1] - zh_span[0] == 4


@pytest.mark.bundled
def test_attention_check_is_real_and_fails_once_torch_is_imported(small_gguf, monkeypatch):
    """The self-test's attention check captures the model's own attention and refuses a torch import."""
    import types

    from desktop.attention.llama_engine import LlamaAttentionEngine
    from desktop.selftest.attention import check_attention
    from desktop.selftest.checks import SENTENCES
    from desktop.selftest.report import CheckFailed

    zh, en = SENTENCES["zh-en"], SENTENCES["en-zh"]
    engine = LlamaAttentionEngine(small_gguf, threads=1)
    try:
        monkeypatch.delitem(sys.modules, "torch", raising=False)
        detail, span = check_attention(engine, zh, en, "zh-en")
        assert detail["engine"] == "llama.cpp" and (detail["layers"], detail["heads"]) == (24, 14)
        assert detail["term"] == "percutaneous" and detail["src_text"] and detail["torch_imported"] is False
        assert 0.0 < detail["kept_mass_mean"] < 1.0 and detail["compare_with_base"] is False
        monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # as if something had imported it
        with pytest.raises(CheckFailed, match="torch was imported"):
            check_attention(engine, zh, en, "zh-en")
    finally:
        engine.close()
