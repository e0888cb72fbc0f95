"""An interrupted evaluation run resumes from the translations it saved."""

from __future__ import annotations

import json

import pytest

from evaluation import resume
from evaluation.runs import evaluate
from tests.evaluation.samples import records as _records


class _StopsAfter:
    """The real tiny translator, killed (as Ctrl-C would) on its call number ``calls + 1``; records what it was asked."""

    def __init__(self, inner, calls: int):
        self.inner, self.calls, self.asked = inner, calls, []

    def describe(self):
        return self.inner.describe()

    def translate(self, items, progress=False, desc=""):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        self.asked += list(items)
        return self.inner.translate(items, progress=progress, desc=desc)


def test_an_interrupted_run_resumes_from_what_it_saved(tiny_translator, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(resume, "CHUNK", 2)
    records = _records()
    whole = evaluate(records, tiny_translator, tmp_path / "whole", name="tiny", progress=False)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(records, _StopsAfter(tiny_translator, 1), out, name="tiny", progress=False)
    partial = out / resume.PARTIAL
    assert not (out / "metrics.json").exists() and len(partial.read_text().splitlines()) == 1 + 2
    with partial.open("a") as fh:
        fh.write('{"index": 4, "ro')  # the line being written when the process died
    resumed = _StopsAfter(tiny_translator, 99)
    metrics = evaluate(records, resumed, out, name="tiny", progress=False, resume=True)
    assert resumed.asked == [(r.source, r.direction) for r in records[2:]]  # only what was not saved
    assert "resuming with 2 of 5 segments" in capsys.readouterr().err
    assert not partial.exists() and metrics["run_key"]["records"] == 5
    hyps = [[json.loads(line)["hypothesis"] for line in (d / "hypotheses.jsonl").read_text().splitlines()]
            for d in (tmp_path / "whole", out)]
    assert hyps[0] == hyps[1] and metrics["overall"]["bleu"] == pytest.approx(whole["overall"]["bleu"])
    # Finished: a resumed run translates nothing ...
    assert evaluate(records, _StopsAfter(tiny_translator, 0), out, name="tiny", progress=False,
                    resume=True)["run_key"] == metrics["run_key"]
    # ... unless the records differ: then saved translations are not reused.
    with pytest.raises(KeyboardInterrupt):
        evaluate(records[:4], _StopsAfter(tiny_translator, 1), out, name="tiny", progress=False)
    other = _StopsAfter(tiny_translator, 99)
    evaluate(records[1:], other, out, name="tiny", progress=False, resume=True)
    assert "another model or record selection; starting over" in capsys.readouterr().err
    assert other.asked == [(r.source, r.direction) for r in records[1:]]


def test_rescore_scores_saved_translations_again_without_translating(tiny_translator, tmp_path):
    from medcore.terms import Glossary, Term

    records = _records()
    first = evaluate(records, tiny_translator, tmp_path, name="tiny", progress=False)
    assert first["overall"]["term_accuracy"]["sentences"]["total"] == 0  # no glossary: no sentence terms
    glossary = Glossary([Term("高血压", "hypertension", "hpo", 30), Term("成活", "survive", "tico19", 20),
                         Term("切口", "incision", "tico19", 20, advisory_from=frozenset({"zh"}))])
    # Finished with the same key: without --rescore the metrics stay what they were ...
    same = evaluate(records, _StopsAfter(tiny_translator, 0), tmp_path, name="tiny", glossary=glossary,
                    progress=False, resume=True)
    assert same["overall"]["term_accuracy"]["sentences"]["total"] == 0
    # ... with it, the saved translations are scored again (the translator is never called).
    again = evaluate(records, _StopsAfter(tiny_translator, 0), tmp_path, name="tiny", glossary=glossary,
                     progress=False, resume=True, rescore=True)
    tally = again["overall"]["term_accuracy"]["sentences"]
    # 高血压 and 成活 are required; 切口 is advisory (demoted from zh) and counts neither way.
    assert tally["total"] == 2 and again["overall"]["bleu"] == pytest.approx(first["overall"]["bleu"])
    rows = [json.loads(line) for line in (tmp_path / "hypotheses.jsonl").read_text().splitlines()]
    statuses = sorted(c["status"] for r in rows for c in r.get("terms", []))
    assert "advisory" in statuses and len(statuses) == 3
    assert json.loads((tmp_path / "metrics.json").read_text())["overall"]["term_accuracy"]["sentences"]["total"] == 2
