"""`tsx-eval` from the command line: score (no model), run (tiny transformers model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evaluation import scoring as S
from evaluation.cli import main


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.fixture()
def files(tmp_path):
    src = _write(tmp_path / "src.zh", ["患者头痛，伴发热。", "急性心肌梗死患者"])
    hyp = _write(tmp_path / "hyp.en", ["the patient has acute fever", "Patients with acute myocardial infarction"])
    ref = _write(tmp_path / "ref.en", ["the patient has acute pain", "Patients with acute myocardial infarction"])
    glossary = _write(tmp_path / "glossary.tsv", ["头痛\theadache", "发热\tfever", "急性心肌梗死\tacute myocardial infarction"])
    return {"src": src, "hyp": hyp, "ref": ref, "glossary": glossary, "dir": tmp_path}


def _score(capsys, *args):
    rc = main(["score", *args])
    captured = capsys.readouterr()
    return rc, (json.loads(captured.out) if rc == 0 else None), captured.err


def test_score_bleu_chrf_signature(files, capsys):
    rc, out, err = _score(capsys, "--hyp", files["hyp"], "--ref", files["ref"], "--target-lang", "en")
    assert rc == 0
    assert set(out) >= {"bleu", "chrf", "signature"} and "comet" not in out and "term_accuracy" not in out
    # Pooled counts: seg 1 matches 4/3/2/1 of 5/4/3/2 n-grams, seg 2 (5 tokens) all of 5/4/3/2.
    expected = 100 * (9 / 10 * 7 / 8 * 5 / 6 * 3 / 4) ** 0.25
    assert out["bleu"] == pytest.approx(expected, abs=1e-9)
    assert "tok:13a" in out["signature"]["bleu"] and "nc:6" in out["signature"]["chrf"]
    assert "COMET: not computed" in err and "tok:13a" in err


def test_score_term_accuracy_in_sentences(files, capsys):
    rc, out, _ = _score(capsys, "--hyp", files["hyp"], "--ref", files["ref"], "--target-lang", "en",
                        "--src", files["src"], "--glossary", files["glossary"])
    # Source terms: 头痛, 发热 (line 1), 急性心肌梗死 (line 2); the output has fever and the full phrase.
    assert rc == 0 and out["term_accuracy"] == pytest.approx(2 / 3)
    assert (out["term_detail"]["correct"], out["term_detail"]["total"]) == (2, 3)


def test_score_term_pairs(tmp_path, capsys):
    hyp = _write(tmp_path / "h.txt", ["Angina.", "ＣＯＶＩＤ－１９", "heart attack"])
    ref = _write(tmp_path / "r.txt", ["angina", "COVID-19", "myocardial infarction"])
    rc, out, _ = _score(capsys, "--hyp", hyp, "--ref", ref, "--target-lang", "en", "--kind", "term")
    assert rc == 0 and out["term_accuracy"] == pytest.approx(2 / 3)


def test_score_comet(files, capsys, tiny_comet):
    rc, out, err = _score(capsys, "--hyp", files["hyp"], "--ref", files["ref"], "--target-lang", "en",
                          "--src", files["src"], "--comet", str(tiny_comet["dir"]))
    assert rc == 0 and math.isfinite(out["comet"])
    srcs = ["患者头痛，伴发热。", "急性心肌梗死患者"]
    hyps = ["the patient has acute fever", "Patients with acute myocardial infarction"]
    refs = ["the patient has acute pain", "Patients with acute myocardial infarction"]
    direct = S.comet_score(srcs, hyps, refs, checkpoint=tiny_comet["ckpt"])
    assert out["comet"] == pytest.approx(direct.system, abs=1e-6)
    assert out["comet_segments"] == pytest.approx(direct.segments, abs=1e-6)
    assert "COMET" in err


def test_score_paired_bootstrap(files, capsys):
    base = _write(files["dir"] / "base.en", ["a cat", "a dog"])
    rc, out, _ = _score(capsys, "--hyp", files["hyp"], "--ref", files["ref"], "--target-lang", "en",
                        "--baseline", base, "--bootstrap", "100")
    names = [s["system"] for s in out["paired_bootstrap"]["systems"]]
    assert rc == 0 and names == ["baseline", "system"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--glossary", "GLOSSARY"], "needs --src"),
    (["--comet", "/nonexistent/comet"], "needs --src"),
    (["--src", "SRC", "--comet", "/nonexistent/comet"], "not found"),
])
def test_score_errors(files, capsys, extra, message):
    extra = [files["glossary"] if e == "GLOSSARY" else files["src"] if e == "SRC" else e for e in extra]
    rc, _, err = _score(capsys, "--hyp", files["hyp"], "--ref", files["ref"], "--target-lang", "en", *extra)
    assert rc == 2 and message in err


def test_score_line_count_mismatch(files, tmp_path, capsys):
    short = _write(tmp_path / "short.en", ["only one line"])
    rc, _, err = _score(capsys, "--hyp", short, "--ref", files["ref"], "--target-lang", "en")
    assert rc == 2 and "line counts differ" in err


def _tiny_test_set(folder: Path) -> Path:
    """A term and a sentence record, with the glossary.tsv that sits beside a prepared test set."""
    test = folder / "combined_test.jsonl"
    records = [{"id": "t1", "kind": "term", "direction": "zh-en", "source": "头痛", "target": "headache"},
               {"id": "s1", "kind": "sentence", "direction": "en-zh", "source": "Severe headache.",
                "target": "剧烈头痛。"}]
    test.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    (folder / "glossary.tsv").write_text("头痛\theadache\n", encoding="utf-8")
    return test


def test_run_cli_tiny_model(tiny_qwen2_dir, tmp_path, capsys):
    test = _tiny_test_set(tmp_path)
    out = tmp_path / "run"
    rc = main(["run", "--model", str(tiny_qwen2_dir), "--test", str(test), "--out", str(out),
               "--max-new-tokens", "8", "--no-progress", "--name", "tiny"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "signature bleu zh-en" in printed and "COMET: not computed" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["system"] == "tiny" and metrics["overall"]["n"] == 2
    rows = [json.loads(x) for x in (out / "hypotheses.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["t1", "s1"] and all(r["max_new_tokens"] <= 8 for r in rows)
    # The glossary beside the test set was found: the sentence's 'headache' was checked.
    assert rows[1]["terms"][0]["term"] == "headache" and rows[1]["terms"][0]["expected"] == ["头痛"]


def test_run_cli_term_block_is_for_sentences_and_reaches_the_prompt(tiny_qwen2_dir, tmp_path, capsys):
    from evaluation.translators import TransformersTranslator
    from medcore.prompt import render_prompt_ids
    from medcore.terms import Glossary

    test = _tiny_test_set(tmp_path)
    base = ["run", "--model", str(tiny_qwen2_dir), "--test", str(test), "--max-new-tokens", "4", "--no-progress",
            "--term-block"]
    assert main([*base, "--out", str(tmp_path / "all")]) != 0
    assert "add --kinds sentence" in capsys.readouterr().err
    assert not (tmp_path / "all").exists()  # refused before translating anything
    assert main([*base, "--kinds", "sentence", "--out", str(tmp_path / "s")]) == 0
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["model"]["term_block"] is True and metrics["overall"]["n"] == 1
    translator = TransformersTranslator(tiny_qwen2_dir, device="cpu", max_new_cap=4,
                                        term_glossary=Glossary.load(tmp_path / "glossary.tsv"))
    prompt, _ = translator._prepare("Severe headache.", "en-zh")
    assert prompt == render_prompt_ids(translator.tokenizer, "Severe headache.", "en-zh", [("headache", "头痛")])


def test_eval_glossary_default_is_the_apps_shipped_glossary(tmp_path):
    """`--glossary default` scores and prompts with what users get: priorities and advisory everyday words."""
    from evaluation.testsets import load_eval_glossary
    from medcore.glossary import load_glossary

    shipped = load_eval_glossary("default")
    assert len(shipped) == len(load_glossary(use_default=True)) > 1000
    hits = shipped.find("服用", "zh")
    assert hits and not shipped.required(hits[0])  # CC-CEDICT's "take": shown, never required
    plain = tmp_path / "g.tsv"
    plain.write_text("服用\ttake\n", encoding="utf-8")
    assert all(load_eval_glossary(plain).required(hit) for hit in load_eval_glossary(plain).find("服用", "zh"))
    assert load_eval_glossary(None) is None
