"""The self-test's installation checks (desktop/selftest/checks.py), in process, on a tiny real GGUF."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from desktop.selftest.checks import (
    REQUIRED_RESOURCES,
    SENTENCES,
    check_environment,
    check_load,
    check_model,
    check_resources,
    check_translate,
)
from desktop.selftest.report import CheckFailed


def test_environment_and_resources_of_this_checkout():
    from desktop import __version__

    env = check_environment()
    assert env["app_version"] == __version__ and env["frozen"] is False and env["PySide6_version"]
    assert check_resources()["files"] == len(REQUIRED_RESOURCES)


def test_model_check_names_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    with pytest.raises(CheckFailed, match="is not a GGUF file"):
        check_model(str(bad))


def test_load_and_translate_checks_on_a_tiny_model(tiny_gguf):
    from runtime.engine import TranslationEngine

    status, detail = check_model(str(tiny_gguf))
    assert status == "ok" and detail["path"] == str(tiny_gguf) and "not one of the bundled models" in detail["sha256"]
    engine = TranslationEngine()
    try:
        load = check_load(engine, tiny_gguf, ctx=512, repack=True)
        assert load["n_ctx"] == 512 and load["layers"] == 2 and load["adapters"] == []
        state: dict = {}
        try:  # random weights: whatever comes out, the check reports it
            detail = check_translate(engine, SENTENCES["zh-en"], "zh-en", None, state)
        except CheckFailed as exc:
            detail = exc.detail
        assert detail["source"] == SENTENCES["zh-en"] and detail["translation"] == state["translation"]
        assert detail["direction"] == "zh-en" and detail["finish"]
    finally:
        engine.unload()


class _Engine:
    """Returns a fixed translation (the checks' verdicts, without a model)."""

    def __init__(self, translation: str, finish: str = "stop", warnings: tuple = ()):
        self.result = SimpleNamespace(direction="zh-en", translation=translation, warnings=list(warnings),
                                      segments=[SimpleNamespace(finish_reason=finish)], stats=lambda: {"tokens": 3})

    def translate(self, source, direction):
        return self.result


@pytest.mark.parametrize(("engine", "message"), [
    (_Engine("  "), "empty translation"),
    (_Engine("患者确诊为急性心肌梗死"), "not in the target language (en)"),
    (_Engine("The patient was", finish="length"), "did not finish cleanly"),
    (_Engine("The patient was diagnosed.", warnings=("context full",)), "did not finish cleanly"),
])
def test_translate_check_fails_and_keeps_the_output_for_the_attention_checks(engine, message):
    state: dict = {}
    with pytest.raises(CheckFailed, match=message.replace("(", r"\(").replace(")", r"\)")) as failed:
        check_translate(engine, SENTENCES["zh-en"], "zh-en", None, state)
    assert state["translation"] == engine.result.translation.strip() == failed.value.detail["translation"]


def test_translate_check_passes_an_english_sentence():
    state: dict = {}
    detail = check_translate(_Engine("The patient was diagnosed."), SENTENCES["zh-en"], "zh-en", 1.0, state)
    assert detail["detected_lang"] == "en" and detail["tokens"] == 3 and detail["seconds_since_process_start"] >= 0
