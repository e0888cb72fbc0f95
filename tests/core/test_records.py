"""The prepared record: one validator, one reader with errors that name file and line, one seeded sampler."""

from __future__ import annotations

import json
import re

import pytest

from medcore.pairs import DataFormatError
from medcore.records import PreparedRecord, read_records, select_records


def _grid() -> list[PreparedRecord]:
    return [PreparedRecord(f"{k}-{d}-{i}", k, d, "s", "t")
            for k in ("term", "sentence") for d in ("zh-en", "en-zh") for i in range(10)]


def test_select_records_spreads_a_small_limit_over_cells():
    records = _grid()
    picked = select_records(records, 8, seed=1)
    assert len(picked) == 8
    cells = {(r.direction, r.kind) for r in picked}
    assert len(cells) == 4 and all(sum(1 for r in picked if (r.direction, r.kind) == c) == 2 for c in cells)
    assert picked == select_records(records, 8, seed=1)
    assert select_records(records, 5, directions=["zh-en"], kinds=["term"])[0].id.startswith("term-zh-en")
    assert select_records(records, None) == select_records(records, 0) == records


def test_select_records_draws_what_evaluation_always_drew():
    """The exact samples of the sampler before it moved here (evaluation results stay comparable)."""
    assert [r.id for r in select_records(_grid(), 8, seed=1)] == [
        "term-zh-en-1", "term-zh-en-2", "term-en-zh-1", "term-en-zh-3",
        "sentence-zh-en-3", "sentence-zh-en-4", "sentence-en-zh-3", "sentence-en-zh-6"]
    assert [r.id for r in select_records(_grid(), 7, seed=3, directions=["en-zh"])] == [
        "term-en-zh-2", "term-en-zh-3", "term-en-zh-8", "sentence-en-zh-1", "sentence-en-zh-3",
        "sentence-en-zh-4", "sentence-en-zh-7"]


def test_round_trip_keeps_the_prepared_json_form(tmp_path):
    record = PreparedRecord("term-test-000001-zh-en", "term", "zh-en", "头痛", "headache", "cedict.tsv:3")
    assert list(record.to_dict()) == ["id", "kind", "direction", "source", "target", "origin"]
    assert "origin" not in PreparedRecord("a", "term", "zh-en", "头痛", "headache").to_dict()
    path = tmp_path / "train.jsonl"
    # A text may hold U+2028 (a line separator to str.splitlines, not to JSONL).
    odd = PreparedRecord("b", "sentence", "en-zh", "Fever\u2028cough.", "发热\u2028咳嗽。")
    path.write_text("".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in (record, odd)),
                    encoding="utf-8")
    assert read_records(path) == [record, odd]


@pytest.mark.parametrize(("data", "problem"), [
    (["a", "b"], "expected a JSON object"),
    ({"id": "a", "direction": "zh-en", "source": "x", "target": "y"}, "lacks ['kind']"),
    ({"id": "a", "kind": "term", "direction": "en-fr", "source": "x", "target": "y"}, "unknown direction"),
    ({"id": "a", "kind": "terms", "direction": "zh-en", "source": "x", "target": "y"}, "unknown kind 'terms'"),
    ({"id": "a", "kind": "term", "direction": "zh-en", "source": None, "target": "y"}, "source must be a string"),
])
def test_the_validator_says_what_is_wrong(data, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        PreparedRecord.from_dict(data)


def test_a_missing_kind_takes_the_default_only_when_one_is_given():
    data = {"id": "a", "direction": "zh-en", "source": "x", "target": "y", "extra": 1}
    assert PreparedRecord.from_dict(data, default_kind="sentence").kind == "sentence"


def test_the_reader_names_file_and_line(tmp_path):
    path = tmp_path / "val.jsonl"
    path.write_text('{"id": "a", "kind": "term", "direction": "zh-en", "source": "x", "target": "y"}\n\n'
                    '{"id": "b", "kind": "term", "direction": "zh-en", "source": "x"}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=re.escape(f"{path}:3: record lacks ['target']")):
        read_records(path)
    with pytest.raises(FileNotFoundError, match="tsx-train prepare"):
        read_records(tmp_path / "absent.jsonl")

