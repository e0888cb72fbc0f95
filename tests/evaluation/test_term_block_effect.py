"""benchmarks/term_block_effect: a whole-split plain run is compared on the block run's records only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.term_block_effect import compare, echoes_block
from medcore.prompt import load_contract


def _write_run(folder: Path, rows: list[dict], term_block: bool) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"model": {"term_block": term_block}}), encoding="utf-8")
    (folder / "hypotheses.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                             encoding="utf-8")
    return folder


def _row(i: int, kind: str, hypothesis: str, status: str = "ok") -> dict:
    return {"id": f"{kind}-{i}", "kind": kind, "direction": "zh-en", "source": "患者发热。",
            "reference": "The patient has a fever.", "hypothesis": hypothesis,
            "terms": [{"status": status, "in_reference": True}]}


def test_plain_rows_are_taken_for_the_block_runs_records(tmp_path):
    entry = load_contract().term_block.entry.format(source_term="发热", target_term="fever")
    # The plain run also holds term records and a sentence the block run did not translate.
    plain = [_row(0, "term", "fever")] + [_row(i, "sentence", "The patient has a cough.", "missing")
                                          for i in range(1, 6)]
    block = [_row(i, "sentence", "The patient has a fever.") for i in range(1, 5)]
    block[0]["hypothesis"] += "\n" + entry  # one output echoes its block
    out = compare(_write_run(tmp_path / "plain", plain, False), _write_run(tmp_path / "block", block, True),
                  n_samples=50)
    assert len(out) == 1
    result = out[0]
    assert result["n"] == 4
    assert result["terms"] == ((0, 4), (4, 4))  # plain rows 1-4 only, not the term record or sentence 5
    assert result["echoed"] == 1 and echoes_block(block[0]["hypothesis"])
    assert result["terms_not_echoed"] == ((0, 3), (3, 3))
    assert result["bleu"][1] > result["bleu"][0]


def test_a_block_record_missing_from_the_plain_run_is_refused(tmp_path):
    plain = [_row(1, "sentence", "x")]
    block = [_row(1, "sentence", "x"), _row(2, "sentence", "y")]
    with pytest.raises(SystemExit, match="lacks records"):
        compare(_write_run(tmp_path / "plain", plain, False), _write_run(tmp_path / "block", block, True), 50)
