"""The llama.cpp backend on the bundled 0.5B GGUF: a real, short translation run (2 segments)."""

from __future__ import annotations

import json

import pytest

from medcore.textnorm import detect_lang

pytestmark = pytest.mark.bundled


@pytest.fixture(scope="module")
def llama_cpp():
    return pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")


def test_tsx_eval_run_llamacpp(small_gguf, llama_cpp, tmp_path, capsys):
    from evaluation.cli import main

    test = tmp_path / "combined_test.jsonl"
    records = [
        {"id": "s-zh-en", "kind": "sentence", "direction": "zh-en", "source": "患者有高血压病史。",
         "target": "The patient has a history of hypertension."},
        {"id": "s-en-zh", "kind": "sentence", "direction": "en-zh",
         "source": "The patient has a history of hypertension.", "target": "患者有高血压病史。"},
    ]
    test.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    glossary = tmp_path / "glossary.tsv"
    glossary.write_text("高血压\thypertension\n", encoding="utf-8")
    out = tmp_path / "run"
    rc = main(["run", "--backend", "llamacpp", "--model", str(small_gguf), "--test", str(test), "--out", str(out),
               "--n-ctx", "1024", "--no-progress", "--name", "base-0.5b"])
    assert rc == 0, capsys.readouterr().err
    rows = [json.loads(x) for x in (out / "hypotheses.jsonl").read_text().splitlines()]
    zh_en, en_zh = rows
    # Greedy decoding of the real model: English out for zh-en, Chinese out for en-zh, the term right.
    assert detect_lang(zh_en["hypothesis"]) == "en" and "hypertension" in zh_en["hypothesis"].lower()
    assert detect_lang(en_zh["hypothesis"]) == "zh" and "高血压" in en_zh["hypothesis"]
    assert all(r["stopped"] and 0 < r["new_tokens"] < r["max_new_tokens"] for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"]["backend"] == "llamacpp" and len(metrics["model"]["sha256"]) == 64
    assert metrics["overall"]["term_accuracy"]["sentences"] == {"accuracy": 1.0, "correct": 2, "total": 2,
                                                                "examples_missed": []}
    assert 0 < metrics["by_direction"]["zh-en"]["all"]["chrf"] <= 100


def test_llamacpp_context_limit(small_gguf, llama_cpp):
    """The backend is the app's engine: a long input is split to fit (as users get it); a context too
    small for even a short piece gives an error for that segment, not a crash."""
    from evaluation.translators import LlamaCppTranslator

    translator = LlamaCppTranslator(small_gguf, n_ctx=256)
    try:
        (ok,) = translator.translate([("头痛", "zh-en")])
        n_prompt = len(translator.engine.prompt_token_ids("头痛", "zh-en"))
    finally:
        translator.close()
    assert ok.error is None and ok.text and ok.max_new_tokens <= 256
    tight = LlamaCppTranslator(small_gguf, n_ctx=n_prompt + 8)
    try:
        (too_small,) = tight.translate([("头痛", "zh-en")])
    finally:
        tight.close()
    assert too_small.text == "" and "context" in too_small.error


@pytest.mark.slow
def test_transformers_and_llamacpp_agree_on_the_bundled_model(small_gguf, llama_cpp):
    """The training-time path (GGUF dequantised into transformers) and the deployed path (llama.cpp)
    render the same prompt contract and decode greedily, so on a short segment they give the same text.
    Loads the 0.5B in transformers (~50 s and ~3 GB the first time, then a cached safetensors dir)."""
    from evaluation.translators import LlamaCppTranslator, TransformersTranslator

    items = [("患者有高血压病史。", "zh-en")]
    deployed = LlamaCppTranslator(small_gguf, n_ctx=512)
    try:
        gguf_out = deployed.translate(items)[0]
    finally:
        deployed.close()
    trained = TransformersTranslator(small_gguf, device="cpu")
    try:
        hf_out = trained.translate(items)[0]
    finally:
        trained.close()
    assert hf_out.stopped and gguf_out.stopped
    assert hf_out.text == gguf_out.text
