"""tsx-eval compare: two runs on the same records, group by group, with paired-bootstrap p-values."""

from __future__ import annotations

import json

import pytest

from evaluation.cli import main
from evaluation.compare import compare_rows, paired_accuracy


def _rows(hyps: list[str], term_ok: list[bool]) -> list[dict]:
    rows = []
    for i, h in enumerate(hyps):
        rows.append({"id": f"s{i}", "kind": "sentence", "direction": "zh-en", "source": "患者发热。",
                     "reference": f"The patient has a fever number {i}.", "hypothesis": h,
                     "terms": [{"status": "ok" if term_ok[i] else "missing"}, {"status": "advisory"}]})
        rows.append({"id": f"t{i}", "kind": "term", "direction": "en-zh", "source": "fever", "reference": "发热",
                     "hypothesis": "发热" if term_ok[i] else "发烧", "term_match": {"ok": term_ok[i]}})
    return rows


def test_a_better_system_wins_significantly_and_groups_stay_apart():
    n = 40
    good = _rows([f"The patient has a fever number {i}." for i in range(n)], [True] * n)
    bad = _rows([f"Someone is hot {i}." for i in range(n)], [i % 4 == 0 for i in range(n)])
    out = {(g["direction"], g["kind"]): g for g in compare_rows(bad, list(reversed(good)), n_samples=200)}
    sentence, term = out["zh-en", "sentence"], out["en-zh", "term"]
    assert sentence["n"] == term["n"] == n
    assert sentence["bleu"][1] > sentence["bleu"][0] and sentence["bleu"][2] < 0.05
    # advisory checks count neither way: 40 decisions, not 80
    assert sentence["terms"]["n"] == n and sentence["terms"]["a"] == pytest.approx(0.25)
    assert term["terms"]["b"] == 1.0 and term["terms"]["p_value"] < 0.05


def test_no_difference_is_not_significant():
    rows = _rows(["x"] * 10, [True, False] * 5)
    assert paired_accuracy(rows, rows)["p_value"] == 1.0
    mixed = _rows(["x"] * 10, [False, True] * 5)  # same accuracy, other records
    assert paired_accuracy(rows, mixed)["p_value"] == 1.0


def test_runs_of_different_records_are_refused_by_the_cli(tmp_path, capsys):
    for name, rows in (("a", _rows(["x"] * 3, [True] * 3)), ("b", _rows(["x"] * 2, [True] * 2))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"system": name}))
        (tmp_path / name / "hypotheses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # B covers a subset of A's records: compared on B's records
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "| zh-en | sentence | 2 |" in capsys.readouterr().out
    (tmp_path / "b" / "hypotheses.jsonl").write_text(json.dumps(dict(_rows(["x"], [True])[0], id="other")) + "\n")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "different records" in capsys.readouterr().err
    (tmp_path / "b" / "hypotheses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(["x"] * 2, [True] * 2)))
    assert main(["compare", str(tmp_path / "b"), str(tmp_path / "a"), "--json", str(tmp_path / "c.json")]) == 0
    assert "| zh-en | sentence | 2 |" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["a"] == "b"


def test_examples_are_a_seeded_draw_among_differing_sentences(tmp_path, capsys):
    from evaluation.compare import differing_examples

    n = 12
    a = _rows([f"The patient has a fever number {i}." for i in range(n)], [True] * n)
    # B changes only the even sentences; odd ones are the same text (up to surrounding spaces)
    b = _rows([f"Someone is hot {i}." if i % 2 == 0 else f" The patient has a fever number {i}. " for i in range(n)],
              [True] * n)
    drawn = differing_examples(a, b, per_direction=3)
    assert len(drawn) == 3 and {ex["direction"] for ex in drawn} == {"zh-en"}  # sentences only, one direction
    assert all(int(ex["id"][1:]) % 2 == 0 for ex in drawn)
    assert all(ex["chrf_a"] == 100.0 and ex["chrf_b"] < 50 for ex in drawn)
    assert differing_examples(a, b, per_direction=3) == drawn  # reproducible
    assert len(differing_examples(a, b, per_direction=50)) == n // 2  # never more than differ
    assert differing_examples(a, a, per_direction=3) == []

    for name, rows in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"system": name}))
        (tmp_path / name / "hypotheses.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--examples", "2", "--bootstrap", "50"]) == 0
    out = capsys.readouterr().out
    assert out.count("  - source: ") == 2 and "  - b (chrF " in out and "(chrF 100.0): The patient" in out
