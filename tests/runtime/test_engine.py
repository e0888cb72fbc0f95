"""The translation core on real GGUF files: a tiny one built here and the bundled 0.5B."""

from __future__ import annotations

import logging
import threading

import pytest

from medcore.models import ModelError
from medcore.prompt import render_prompt_ids
from medcore.textnorm import normalize
from runtime.engine import TranslationEngine
from runtime.errors import ContextLimitError
from runtime.gguf_header import read_gguf_info
from runtime.machine import check_memory, estimate_memory
from runtime.options import LoadOptions

SOURCE_ZH = "患者诊断为急性心肌梗死。"
# Greedy output of the bundled 0.5B for this sentence names the disease correctly (checked by hand;
# for the bare "患者诊断为急性心肌梗死。" it writes "acute heart muscle injury").
REAL_ZH = "患者诊断为急性心肌梗死，行经皮冠状动脉介入治疗。"


def test_gguf_header_of_the_tiny_model(tiny_gguf):
    info = read_gguf_info(tiny_gguf)
    assert (info.architecture, info.n_layers, info.n_vocab) == ("qwen2", 2, 1000)
    assert "<|im_start|>" in info.chat_template
    # 2 (K,V) x 2 layers x 512 positions x 2 kv heads x 16 dims x 2 bytes
    assert info.kv_cache_bytes(512) == 2 * 2 * 512 * 2 * 16 * 2


def test_prompt_ids_are_the_trainers(tiny_engine, tiny_qwen2_dir):
    """llama.cpp renders the contract with the GGUF's template into exactly the trainer's token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    for source, direction in ((SOURCE_ZH + " 阿司匹林 100 mg", "zh-en"), ("Acute  myocardial infarction.", "en-zh")):
        src_lang = direction[:2]
        assert tiny_engine.prompt_token_ids(source, direction) == render_prompt_ids(
            tokenizer, normalize(source, src_lang), direction)


def test_glossary_terms_go_into_the_prompt_as_the_trainer_renders_them(tiny_engine, tiny_qwen2_dir):
    """With a glossary set the prompt carries the term block, token for token as stage-2 training builds it."""
    from transformers import AutoTokenizer

    from medcore.terms import Glossary, Term

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    source = "患者有高血压病史，否认心肌梗死。"
    plain = tiny_engine.prompt_token_ids(source, "zh-en")
    glossary = Glossary([Term("高血压", "Hypertension"), Term("心肌梗死", "myocardial infarction"), Term("发热", "fever")])
    try:
        tiny_engine.set_term_glossary(glossary)  # auto: a model not trained with the block gets plain prompts
        assert tiny_engine.prompt_terms(source, "zh-en") == [] and tiny_engine.prompt_token_ids(source, "zh-en") == plain
        assert tiny_engine.runtime_provenance()["term_block"] is False
        tiny_engine.set_term_glossary(glossary, mode="on")
        terms = tiny_engine.prompt_terms(source, "zh-en")
        assert terms == [("高血压", "hypertension"), ("心肌梗死", "myocardial infarction")]
        with_block = tiny_engine.prompt_token_ids(source, "zh-en")
        assert with_block == render_prompt_ids(tokenizer, normalize(source, "zh"), "zh-en", terms)
        assert len(with_block) > len(plain)
        assert tiny_engine.runtime_provenance()["term_block"] is True
        result = tiny_engine.translate(source, "zh-en", max_new_tokens=4)
        assert result.segments
    finally:
        tiny_engine.set_term_glossary(None)
    assert tiny_engine.prompt_token_ids(source, "zh-en") == plain
    tiny_engine.set_term_glossary(Glossary([]))  # an empty glossary means plain prompts too
    assert tiny_engine.term_glossary is None


def test_streaming_arrives_in_pieces_that_add_up(tiny_engine):
    pieces: list[str] = []
    result = tiny_engine.translate("第一句。第二句！", "zh-en", on_token=pieces.append, max_new_tokens=12)
    assert len(result.segments) == 2
    assert len(pieces) > 4
    assert "".join(pieces) == result.translation
    assert result.translation == " ".join(s.translation for s in result.segments)
    for seg in result.segments:
        assert 0 < seg.generated_tokens <= seg.max_tokens == 12
        assert seg.finish_reason in ("stop", "length")
        assert seg.first_token_s is not None and seg.first_token_s <= seg.seconds
    if any(s.finish_reason == "length" for s in result.segments):
        assert any("output limit" in w for w in result.warnings)  # never cut silently


def test_cancel_stops_within_a_token(tiny_engine):
    cancel = threading.Event()
    pieces: list[str] = []

    def on_token(piece):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.set()

    # the sequential path (segments side by side: tests/runtime/test_parallel_decode.py)
    result = tiny_engine.translate("第一句很长。第二句。", "zh-en", cancel=cancel, on_token=on_token, max_new_tokens=200,
                                   parallel=1)
    assert result.cancelled
    assert len(result.segments) == 1 and result.segments[0].finish_reason == "cancelled"
    assert len(pieces) == 3  # the flag is checked after every token
    assert result.segments[0].generated_tokens < 20


def test_context_limit_splits_then_refuses(tiny_gguf):
    engine = TranslationEngine()
    engine.load(tiny_gguf, LoadOptions(n_ctx=256))
    text = "患者入院后给予阿司匹林、氯吡格雷、他汀类药物，并行冠状动脉造影，提示三支病变，随后行冠状动脉旁路移植术。"
    segments, warnings = engine.plan(text, "zh-en")
    assert len(segments) > 1 and warnings and "too long" in warnings[0]
    for seg in segments:
        fits, n_prompt, budget = engine.fits(seg, "zh-en")
        assert fits and n_prompt + budget <= 256
    assert "".join(s.text for s in segments) == text
    engine.load(tiny_gguf, LoadOptions(n_ctx=128))  # the prompt alone is ~150 tokens
    with pytest.raises(ContextLimitError, match="context size \\(128 tokens\\) is too small"):
        engine.translate(text, "zh-en")
    engine.unload()


def test_source_text_stays_out_of_logs_unless_enabled(tiny_engine, caplog):
    secret = "张三患有糖尿病。"
    with caplog.at_level(logging.DEBUG, logger="tsx_medtrans"):
        tiny_engine.translate(secret, "zh-en", max_new_tokens=4)
    assert caplog.records and not any(secret in r.getMessage() for r in caplog.records)
    caplog.clear()
    tiny_engine.log_source_text = True
    try:
        with caplog.at_level(logging.DEBUG, logger="tsx_medtrans"):
            tiny_engine.translate(secret, "zh-en", max_new_tokens=4)
    finally:
        tiny_engine.log_source_text = False
    assert any(secret in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


def test_broken_model_files_give_clear_messages(tmp_path, tiny_gguf):
    engine = TranslationEngine()
    with pytest.raises(ModelError, match="not found"):
        engine.load(tmp_path / "nope.gguf")
    text = tmp_path / "notes.gguf"
    text.write_text("just some text", encoding="utf-8")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        engine.load(text)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:3000])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        engine.load(truncated)
    # A valid header whose tensor data is cut off: llama.cpp refuses it, we say so plainly.
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    with pytest.raises(ModelError, match="llama.cpp could not load cut.gguf"):
        engine.load(cut)
    assert not engine.loaded


def test_memory_estimate_and_refusal(tiny_gguf, small_gguf):
    info = read_gguf_info(small_gguf)
    need_2k = estimate_memory(info, LoadOptions(n_ctx=2048))
    need_8k = estimate_memory(info, LoadOptions(n_ctx=8192))
    assert need_8k - need_2k == info.kv_cache_bytes(8192) - info.kv_cache_bytes(2048)
    assert info.size < need_2k < 2 * 1024**3
    with pytest.raises(ModelError, match="too large for this computer's free memory"):
        check_memory(info, LoadOptions(n_ctx=2048), available=300 * 1024**2)
    engine = TranslationEngine()
    with pytest.raises(ModelError, match="too large"):
        engine.load(small_gguf, LoadOptions(n_ctx=2048), available=300 * 1024**2)
    assert not engine.loaded


def test_model_without_chat_template_is_refused(tmp_path, tiny_qwen2_dir):
    import json
    import shutil

    from tests.runtime.tiny_gguf import write_tiny_gguf

    plain = tmp_path / "plain"
    shutil.copytree(tiny_qwen2_dir, plain)
    cfg = json.loads((plain / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(cfg))
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    path = write_tiny_gguf(plain, tmp_path / "no-template.gguf")
    with pytest.raises(ModelError, match="has no chat template"):
        TranslationEngine().load(path)


@pytest.mark.bundled
def test_real_sentence_with_the_bundled_05b(small_engine):
    pieces: list[str] = []
    result = small_engine.translate(REAL_ZH, "auto", on_token=pieces.append, max_new_tokens=40)
    assert result.direction == "zh-en"
    assert len(pieces) >= 5  # streamed token by token, not in one block
    assert "".join(pieces) == result.translation
    assert "myocardial infarction" in result.translation.lower()
    assert result.segments[0].finish_reason == "stop"  # ended at <|im_end|>, not at the budget
    assert small_engine.info.end_of_turn == "<|im_end|>"
    assert result.tokens_per_second > 0  # measured; speed itself is benchmarks/bench_engine.py's job
