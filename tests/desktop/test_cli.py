"""``tsx-medtrans translate``: argument, file and stdin input, --json report, errors, offline."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.cli import build_parser, main
from medcore.models import sha256_file
from medcore.prompt import load_contract

REPO = Path(__file__).resolve().parents[2]


def test_json_output_with_term_report_and_provenance(tiny_gguf, term_files, capsys):
    rc = main(["translate", "-m", str(tiny_gguf), "-d", "zh-en", "--max-tokens", "6", "--json", "--no-default-glossary",
               "-g", str(term_files[0]), "-g", str(term_files[1]), "患者有高血压和糖尿病。"])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    # complete only when it ran to the end and no red flag was raised
    assert payload["direction"] == "zh-en" and payload["complete"] is (not payload["red_flags"])
    terms = {row["term"]: row for row in payload["term_report"]["terms"]}
    assert {"患者", "高血压", "糖尿病"} <= set(terms)
    assert "hypertension" in terms["高血压"]["expected"]
    # random weights cannot produce the expected terms: each is flagged for review
    assert all(row["status"] == "missing" for row in terms.values())
    prov = payload["provenance"]
    assert prov["model_sha256"] == sha256_file(tiny_gguf)
    assert prov["glossaries"] == ["cedict_medical.tsv", "clinic_terms.csv"]
    assert prov["time"].endswith("+00:00") and prov["prompt_contract_version"] == load_contract().version
    assert payload["stats"]["generated_tokens"] > 0


def test_the_shipped_default_translates_and_names_its_adapters(app_gguf, capsys):
    """The default model as users get it (resources/models/default.yaml, the real bundled base plus any
    committed stage adapters, applied by llama.cpp at run time): it translates a clinical sentence, and the
    provenance names the base hash, each adapter's hash and the training data; --base-only drops the adapters."""
    from medcore.modelspec import resolve

    default = resolve(None)
    assert default.base == app_gguf
    sentence = "患者发热三天，伴咳嗽。"
    assert main(["translate", "--json", "--threads", "2", "-d", "zh-en", sentence]) == 0
    tuned = json.loads(capsys.readouterr().out)
    prov = tuned["provenance"]
    assert prov["base_sha256"] == sha256_file(app_gguf) and prov["base_only"] is False
    assert [a["sha256"] for a in prov["adapters"]] == default.adapter_sha256
    if default.spec is not None:
        assert prov["tuned_model"] == default.spec.name and len(prov["adapters"]) == 2
        assert prov["data_manifest_sha256"] == default.spec.provenance["data_manifest_sha256"]
        assert all(a["peft_sha256"] for a in prov["adapters"])
    text = tuned["translation"].lower()
    assert "fever" in text and "cough" in text and tuned["complete"]

    assert main(["translate", "--json", "--threads", "2", "-d", "zh-en", "--base-only", sentence]) == 0
    base = json.loads(capsys.readouterr().out)["provenance"]
    assert base["adapters"] == [] and base["base_sha256"] == prov["base_sha256"]
    assert base["base_only"] is (default.spec is not None)


def test_reads_gb18030_file_and_stdin(tiny_gguf, tmp_path, capsys, monkeypatch):
    src = tmp_path / "note.txt"
    src.write_bytes("患者发热。".encode("gb18030"))
    out = tmp_path / "out.json"
    assert main(["translate", "-m", str(tiny_gguf), "-i", str(src), "--max-tokens", "4", "--json", "-o", str(out)]) == 0
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["source"] == "患者发热。" and payload["direction"] == "zh-en"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"The patient has a fever.")))
    assert main(["translate", "-m", str(tiny_gguf), "--max-tokens", "4"]) == 0
    streamed = capsys.readouterr().out
    assert streamed.strip()  # plain mode streams the translation to stdout


def test_clear_errors(tmp_path, capsys):
    assert main(["translate", "-m", str(tmp_path / "missing.gguf"), "text"]) == 1
    assert "model not found" in capsys.readouterr().err
    bad = tmp_path / "bad.gguf"
    bad.write_text("<html>not a model</html>")
    assert main(["translate", "-m", str(bad), "text"]) == 1
    assert "is not a GGUF file" in capsys.readouterr().err
    assert main(["translate", "-m", str(bad), "   "]) == 2


def test_subcommands_registered():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    assert "translate" in choices and "gui" in choices
    try:
        import desktop.attention.cli  # noqa: F401
    except Exception:
        return
    assert "attention" in choices


_AUDIT = r"""
import json, sys
events = []
def hook(event, args):
    if event.startswith(("socket.", "http.", "urllib.", "ftplib.", "smtplib.", "webbrowser.")):
        events.append([event, repr(args)[:200]])
sys.addaudithook(hook)
from desktop.cli import main
rc = main(sys.argv[2:])
with open(sys.argv[1], "w") as fh:
    json.dump({"rc": rc, "events": events, "qtnetwork": "PySide6.QtNetwork" in sys.modules}, fh)
"""


def _translate_cmd(model: Path) -> list[str]:
    return ["translate", "-m", str(model), "-d", "zh-en", "--max-tokens", "6", "--json", "患者发热三天。"]


def test_translate_opens_no_network_connection(tiny_gguf, tmp_path):
    """An audit hook sees every socket the Python process creates, resolves or connects: none."""
    record = tmp_path / "audit.json"
    proc = subprocess.run([sys.executable, "-c", _AUDIT, str(record), *_translate_cmd(tiny_gguf)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    audit = json.loads(record.read_text())
    assert audit["rc"] == 0
    assert audit["events"] == []
    assert audit["qtnetwork"] is False
    assert json.loads(proc.stdout)["translation"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (apt-get install strace)")
def test_translate_makes_no_network_syscalls(tiny_gguf, tmp_path):
    """strace also sees native code (llama.cpp): no AF_INET/AF_INET6 socket is ever created."""
    log = tmp_path / "strace.log"
    proc = subprocess.run(["strace", "-f", "-e", "trace=socket,connect,sendto", "-o", str(log), sys.executable,
                           "-m", "desktop.cli", *_translate_cmd(tiny_gguf)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text()
    assert "AF_INET" not in calls and "AF_INET6" not in calls, calls


def test_qt_void_calls_cannot_kill_the_process():
    """PySide6 6.12 on Python 3.11 drops a reference to None per void call; desktop/qt_compat pins it."""
    code = ("import sys, desktop\nfrom PySide6.QtWidgets import QApplication, QLabel\n"
            "app = QApplication(['t']); label = QLabel()\n"
            "for _ in range(30000): label.setText('x')\nprint('alive')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.strip() == "alive"


def test_translate_json_has_default_glossary_and_red_flags_per_sentence(tiny_gguf, capsys):
    # Random weights: the output cannot carry "5 mg" and "左" over, so those sentences are flagged.
    rc = main(["translate", "-m", str(tiny_gguf), "-d", "zh-en", "--max-tokens", "6", "--json",
               "患者诉头痛。给予阿司匹林 100 mg，左侧胸痛。"])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["provenance"]["glossaries"] == ["default medical glossary"]
    assert {row["term"] for row in payload["term_report"]["terms"]} >= {"头痛", "阿司匹林", "胸痛"}
    flags = payload["red_flags"]
    assert payload["complete"] is False
    assert any(f["kind"] == "number" and f["evidence"] == "100" and f["segment"] == 1 for f in flags)
    assert all(f["segment"] in (0, 1) for f in flags)


def test_check_clean_and_flagged_pairs(capsys):
    clean = ["check", "--source", "患者否认胸痛，左肺无啰音，给予阿司匹林 100 mg 每日一次。",
             "--translation", "The patient denies chest pain; no rales in the left lung; aspirin 100 mg once daily."]
    assert main(clean + ["--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["flagged"] is False and payload["red_flags"] == []
    assert payload["term_report"]["missing"] == 0 and payload["direction"] == "zh-en"
    bad = ["check", "--source", clean[2], "--translation",
           "The patient reports chest pain; rales in the right lung; aspirin 10 mg once daily.", "--json"]
    assert main(bad) == 1
    kinds = sorted(f["kind"] for f in json.loads(capsys.readouterr().out)["red_flags"])
    assert kinds == ["laterality", "laterality", "negation", "number", "number"]
    # plain text output names each finding; exit status 1
    assert main(bad[:-1]) == 1
    out = capsys.readouterr().out
    assert "FLAGGED" in out and "100 mg in the source is not in the translation" in out


def test_check_tsv_of_pairs_is_one_document(tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("source\ttranslation\n"
                     "既往高血压病史。\tHistory of hypertension.\n"
                     "高血压控制良好。\tHigh blood pressure is well controlled.\n"
                     "未见肺炎。\tPneumonia was seen.\n", encoding="utf-8")
    assert main(["check", "-i", str(pairs), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["pairs_checked"] == 3 and payload["pairs_flagged"] == 1
    assert [p["line"] for p in payload["pairs"] if p["flagged"]] == [4]
    assert payload["pairs"][2]["red_flags"][0]["kind"] == "negation"
    # one term, two translations across the document
    assert [c["term"] for c in payload["consistency"]] == ["高血压"]


def test_check_usage_errors(tmp_path, capsys):
    assert main(["check", "--source", "x"]) == 2
    assert "give --source and --translation" in capsys.readouterr().err
    broken = tmp_path / "broken.tsv"
    broken.write_text("only one field\n", encoding="utf-8")
    assert main(["check", "-i", str(broken)]) == 2
    assert "broken.tsv:1: expected source<TAB>translation" in capsys.readouterr().err
    assert main(["check", "-i", str(tmp_path / "none.tsv")]) == 2


def test_parallel_switch(tiny_gguf, capsys):
    """--parallel 1 is the sequential path, --parallel N runs N segments side by side: same text here."""
    text = "第一句。第二句。\n第三句。"
    outs = {}
    for n in ("1", "3"):
        assert main(["translate", "-m", str(tiny_gguf), "-d", "zh-en", "--max-tokens", "5", "--json",
                     "--parallel", n, text]) == 0
        outs[n] = json.loads(capsys.readouterr().out)
    assert outs["1"]["stats"]["parallel"] == 1 and outs["3"]["stats"]["parallel"] == 3
    assert outs["1"]["translation"].count("\n") == outs["3"]["translation"].count("\n") == 1
    for bad in ("-1", "many"):
        with pytest.raises(SystemExit):
            main(["translate", "-m", str(tiny_gguf), "--parallel", bad, text])
        assert "expected a number of segments from 1 to 64, or 0 for automatic" in capsys.readouterr().err


def test_a_file_argument_opens_the_window_with_it(monkeypatch, tmp_path):
    """The desktop entry runs ``tsx-medtrans %F``: a bare path means the window with that document."""
    import desktop.app

    opened = []
    monkeypatch.setattr(desktop.app, "run_gui", lambda model=None, document=None: opened.append((model, document)) or 0)
    note = tmp_path / "translate.txt"
    note.write_text("患者发热。", encoding="utf-8")
    assert main([str(note)]) == 0
    assert main(["--model", "qwen2.5-coder-0.5b", str(note), str(tmp_path / "second.txt")]) == 0
    assert main(["--model=m.gguf", "gui"]) == 0
    assert main([]) == 0
    assert opened == [(None, str(note)), ("qwen2.5-coder-0.5b", str(note)), ("m.gguf", None), (None, None)]
    # a subcommand is still a subcommand, not a file name
    with pytest.raises(SystemExit):
        main(["translate", "--no-such-flag"])
