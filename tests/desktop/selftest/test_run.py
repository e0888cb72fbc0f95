"""``tsx-medtrans --self-test`` (its one entry point, run as ``python -m desktop.cli --self-test``): its report
and exit status on failures and bad arguments, and real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medcore.models import BUNDLED, SMALL_MODEL
from medcore.modelspec import default_base_name

ROOT = Path(__file__).resolve().parents[3]


def run_selftest(args: list[str], env_extra: dict[str, str], timeout: float = 300) -> tuple[int, dict, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen", **env_extra)
    proc = subprocess.run([sys.executable, "-m", "desktop.cli", "--self-test", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_missing_model_fails_with_report(tmp_path):
    rc, report, err = run_selftest(["--no-page"], {"TSX_MODELS_DIR": str(tmp_path)})
    assert rc == 1 and report["ok"] is False
    by_name = checks(report)
    assert by_name["environment"]["ok"] and by_name["resources"]["ok"]
    assert not by_name["model"]["ok"] and "tsx-models fetch" in by_name["model"]["error"]
    assert not by_name["load"]["ok"]
    assert "model" in report["failed"] and "[FAIL] model" in err and "self-test FAILED" in err


def test_damaged_bundled_model_fails_the_hash_check(tmp_path):
    model = BUNDLED[default_base_name()]
    fake = tmp_path / model.filename
    fake.write_bytes(b"GGUF" + b"\0" * 1024)  # right name and magic, wrong content
    rc, report, _ = run_selftest(["--no-page"], {"TSX_MODELS_DIR": str(tmp_path)})
    model_check = checks(report)["model"]
    assert rc == 1 and not model_check["ok"]
    assert "damaged" in model_check["error"] and model_check["detail"]["size"] == 1028
    assert "translate" not in checks(report)  # nothing loaded a damaged file


def test_not_a_gguf_file_fails(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model")
    rc, report, _ = run_selftest(["--no-page", "--model", str(bad)], {})
    assert rc == 1 and "is not a GGUF file" in checks(report)["model"]["error"]


def test_help_and_bad_arguments_exit_without_running_a_check(capsys):
    from desktop.cli import main

    assert main(["--self-test", "--help"]) == 0
    assert "tsx-medtrans --self-test" in capsys.readouterr().out
    assert main(["--self-test", "--ctx", "many"]) == 2
    assert "invalid int value" in capsys.readouterr().err


@pytest.mark.bundled
@pytest.mark.slow
def test_real_self_test_on_the_small_model(small_gguf, tmp_path):
    """The whole self-test on the bundled 0.5B: load, translate, real attention from llama.cpp, draw the
    term view and the head view offscreen."""
    rc, report, err = run_selftest(["--model", SMALL_MODEL, "--keep", str(tmp_path), "--ctx", "1024"], {}, timeout=600)
    by_name = checks(report)
    assert rc == 0, err
    assert by_name["model"]["detail"]["verified"] is True
    assert by_name["translate"]["detail"]["detected_lang"] == "en"
    attention = by_name["attention_engine"]["detail"]
    assert attention["engine"] == "llama.cpp" and (attention["layers"], attention["heads"]) == (24, 14)
    assert attention["torch_imported"] is False and attention["src_text"]
    for view in ("term", "head"):
        page = by_name[f"attention_page:{view}"]["detail"]
        assert page["drawn"] is True and page["colours_sampled"] >= 3 and "remote" not in page
        assert (tmp_path / f"{view}.png").stat().st_size > 1000


@pytest.mark.bundled
def test_self_test_names_the_cpu_variant_and_honours_the_repack_switch(small_gguf):
    """The report says which llama.cpp CPU variant and features run here; TSX_NO_REPACK=1 reaches the load."""
    from runtime.llamacpp import AMX_FEATURES, EXCLUDED_VARIANTS, X86_VARIANTS, reported_features

    rc, report, err = run_selftest(["--model", SMALL_MODEL, "--no-page", "--no-hash", "--ctx", "512"],
                                   {"TSX_NO_REPACK": "1"}, timeout=300)
    by_name = checks(report)
    assert rc == 0, err
    backend = by_name["llama_backend"]["detail"]
    assert backend["cpu_variant"] in X86_VARIANTS and backend["cpu_variant"] not in EXCLUDED_VARIANTS
    assert reported_features(backend["cpu_variant"]) <= set(backend["features"])
    assert not set(backend["features"]) & set(AMX_FEATURES) and backend["amx"] is False
    assert backend["cpu"] and backend["build"].startswith("portable") and "x64" in backend["shipped_variants"]
    assert backend["repack_default"] is False  # the environment variable
    load = by_name["load"]["detail"]
    assert load["repack"] is False and load["cpu_variant"] == backend["cpu_variant"]
    assert "CPU_REPACK" not in load["weight_buffers_mib"] and not any("AMX" in k for k in load["weight_buffers_mib"])
    assert by_name["translate"]["ok"]
