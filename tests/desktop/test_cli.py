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

REPO = Path(__file__).resolve().parents[2]


def test_json_output_with_term_report_and_provenance(tiny_gguf, term_files, capsys):
    rc = main(["translate", "-m", str(tiny_gguf), "-d", "zh-en", "--max-tokens", "6", "--json",
               "-g", str(term_files[0]), "-g", str(term_files[1]), "患者有高血压和糖尿病。"])
    assert rc == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["direction"] == "zh-en" and payload["complete"] is True
    terms = {row["term"]: row for row in payload["term_report"]["terms"]}
    assert {"患者", "高血压", "糖尿病"} <= set(terms)
    assert "hypertension" in terms["高血压"]["expected"]
    # random weights cannot produce the expected terms: each is flagged for review
    assert all(row["status"] == "missing" for row in terms.values())
    prov = payload["provenance"]
    assert prov["model_sha256"] == sha256_file(tiny_gguf)
    assert prov["glossaries"] == ["cedict_medical.tsv", "clinic_terms.csv"]
    assert prov["time"].endswith("+00:00") and prov["prompt_contract_version"] == 1
    assert payload["stats"]["generated_tokens"] > 0


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
