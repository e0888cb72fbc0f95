"""The metric breakdown per direction and kind, on hand-made hypotheses."""

from __future__ import annotations

import pytest

from evaluation.aggregate import score_rows


def test_score_rows_with_known_answers():
    """The breakdown on hand-made hypotheses: perfect en-zh, half-right zh-en terms."""
    from medcore.terms import Glossary, Term

    rows = [
        {"id": "a", "kind": "term", "direction": "zh-en", "source": "头痛", "target": "headache", "hypothesis": "Headache"},
        {"id": "b", "kind": "term", "direction": "zh-en", "source": "发热", "target": "fever", "hypothesis": "pyrexia"},
        {"id": "c", "kind": "sentence", "direction": "en-zh", "source": "Fever and headache.",
         "target": "发热和头痛。", "hypothesis": "发热和头痛。"},
    ]
    glossary = Glossary([Term("头痛", "headache"), Term("发热", "fever")])
    metrics = score_rows(rows, glossary)
    zh_en = metrics["by_direction"]["zh-en"]
    assert zh_en["term"]["term_accuracy"]["terms"] == {"accuracy": 0.5, "correct": 1, "total": 2,
                                                       "examples_missed": zh_en["term"]["term_accuracy"]["terms"]["examples_missed"]}
    assert metrics["by_direction"]["en-zh"]["all"]["bleu"] == pytest.approx(100.0)
    assert metrics["by_direction"]["en-zh"]["sentence"]["term_accuracy"]["sentences"]["accuracy"] == 1.0
    assert metrics["comet"].startswith("not computed")
    assert "comet" not in metrics["overall"]
