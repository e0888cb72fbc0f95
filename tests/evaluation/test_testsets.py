"""Test sets: prepared JSONL and pair files become the same records."""

from __future__ import annotations

import re

import pytest

from evaluation.testsets import load_test_set
from medcore.pairs import DataFormatError


def test_load_test_set_from_pair_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("头痛\theadache\n发热\tfever\n", encoding="utf-8")
    records = load_test_set(path, kind="term")
    assert len(records) == 4 and {r.direction for r in records} == {"zh-en", "en-zh"}
    assert records[0].kind == "term" and records[0].source == "头痛" and records[0].target == "headache"
    assert records[0].origin == "pairs.tsv:1"


def test_prepared_test_set_reads_records_and_defaults_a_missing_kind(tmp_path):
    path = tmp_path / "combined_test.jsonl"
    path.write_text('{"id": "a", "kind": "term", "direction": "zh-en", "source": "头痛", "target": "headache"}\n'
                    '\n{"id": "b", "direction": "en-zh", "source": "Fever.", "target": "发热。", "note": "x"}\n',
                    encoding="utf-8")
    a, b = load_test_set(path)
    assert (a.kind, a.source, b.kind, b.target, b.origin) == ("term", "头痛", "sentence", "发热。", None)
    assert load_test_set(path, kind="term")[1].kind == "term"


@pytest.mark.parametrize(("line", "problem"), [
    ('{"id": "a", "kind": "term", "direction": "zh-en", "source": "头痛"}', "lacks ['target']"),
    ('{"id": "a", "kind": "term", "direction": "zh-fr", "source": "头痛", "target": "x"}', "unknown direction"),
    ('{"id": "a", "kind": "phrase", "direction": "zh-en", "source": "头痛", "target": "x"}', "unknown kind"),
    ('{"id": 7, "kind": "term", "direction": "zh-en", "source": "头痛", "target": "x"}', "id must be a string"),
    ('{"id": "a", "kind": "term", "direction": "zh-en", "source": "头', "not a JSON line"),
])
def test_a_bad_prepared_line_names_file_line_and_problem(tmp_path, line, problem):
    path = tmp_path / "test.jsonl"
    good = '{"id": "g", "kind": "term", "direction": "zh-en", "source": "发热", "target": "fever"}'
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=re.escape(problem)) as caught:
        load_test_set(path)
    assert str(caught.value).startswith(f"{path}:2: ")
