"""One evaluation run on a tiny random Qwen2: hypotheses saved, metrics broken down, model and data recorded."""

from __future__ import annotations

import csv
import json

import pytest

from evaluation.runs import evaluate
from evaluation.scoring import CometSpec
from tests.evaluation.samples import records as _records


def test_evaluate_saves_hypotheses_and_breaks_down_metrics(tiny_translator, tmp_path, tiny_comet):
    from medcore.terms import Glossary, Term

    records = _records()
    glossary = Glossary([Term("高血压", "hypertension"), Term("头痛", "headache"), Term("发热", "fever")])
    metrics = evaluate(records, tiny_translator, tmp_path, glossary=glossary,
                       comet=CometSpec(str(tiny_comet["dir"])), name="tiny", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "hypotheses.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r.id for r in records]
    for row, record in zip(rows, records, strict=True):
        assert row["source"] == record.source and row["reference"] == record.target
        assert isinstance(row["hypothesis"], str) and isinstance(row["comet"], float)
    # Term records carry their exact-match verdict, sentences their term checks (高血压 in r0).
    assert "term_match" in rows[2] and rows[0]["terms"][0]["term"] == "高血压"
    with (tmp_path / "hypotheses.tsv").open(encoding="utf-8") as fh:
        table = list(csv.reader(fh, delimiter="\t"))
    assert table[0] == ["id", "direction", "kind", "source", "reference", "hypothesis"] and len(table) == 6
    assert set(metrics["by_direction"]) == {"zh-en", "en-zh"}
    assert set(metrics["by_direction"]["zh-en"]) == {"all", "term", "sentence"}
    assert metrics["by_direction"]["zh-en"]["all"]["n"] == 3
    assert "tok:zh" in metrics["signatures"]["bleu en-zh"] and "tok:13a" in metrics["signatures"]["bleu zh-en"]
    assert metrics["overall"]["bleu"] == pytest.approx(
        (metrics["by_direction"]["zh-en"]["all"]["bleu"] + metrics["by_direction"]["en-zh"]["all"]["bleu"]) / 2)
    assert metrics["overall"]["comet"] == pytest.approx(sum(r["comet"] for r in rows) / len(rows))
    assert metrics["overall"]["term_accuracy"]["terms"]["total"] == 2
    assert metrics["model"]["backend"] == "transformers" and len(metrics["model"]["base_fingerprint"]) == 64
    assert json.loads((tmp_path / "metrics.json").read_text())["system"] == "tiny"
