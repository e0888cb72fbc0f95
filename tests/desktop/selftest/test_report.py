"""The self-test's framework (desktop/selftest/report.py): a check's status, timing and error in the JSON
report, and its line on stderr."""

from __future__ import annotations

import json

from desktop.selftest.report import Check, CheckFailed, Report, seconds_since_process_start


def test_each_outcome_of_a_check(capsys):
    report = Report()
    passed = report.run("passes", lambda: {"value": 1})
    skipped = report.run("skips", lambda: ("skipped", {"why": "not here"}))
    expected = report.run("fails", lambda: (_ for _ in ()).throw(CheckFailed("the model is damaged", {"size": 4})))

    def crash():
        return {}["missing"]

    crashed = report.run("crashes", crash)
    report.fail("load", "skipped: no model")
    assert (passed.ok, passed.status, passed.detail, passed.error) == (True, "ok", {"value": 1}, None)
    assert (skipped.ok, skipped.status, skipped.detail) == (True, "skipped", {"why": "not here"})
    assert (expected.ok, expected.status, expected.error, expected.detail) == (False, "failed", "the model is damaged",
                                                                              {"size": 4})
    assert not crashed.ok and crashed.error == "KeyError: 'missing'"
    assert "crash" in crashed.detail["traceback"] and "KeyError" in crashed.detail["traceback"]
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" (")[0] for line in err[:4]] == ["[PASS] passes", "[SKIP] skips", "[FAIL] fails", "[FAIL] crashes"]
    assert err[2].endswith(": the model is damaged") and err[4] == "[FAIL] load: skipped: no model"
    assert not report.ok


def test_the_json_report():
    report = Report()
    report.run("a", lambda: None)
    assert report.ok
    report.run("b", lambda: (_ for _ in ()).throw(CheckFailed("no")))
    payload = report.to_dict({"qt_env": {"QT_QPA_PLATFORM": "offscreen"}})
    assert payload["ok"] is False and payload["failed"] == ["b"] and payload["qt_env"]["QT_QPA_PLATFORM"] == "offscreen"
    assert [c["name"] for c in payload["checks"]] == ["a", "b"] and payload["total_seconds"] >= 0
    assert payload["checks"][0] == {"name": "a", "ok": True, "status": "ok", "seconds": payload["checks"][0]["seconds"]}
    assert payload["checks"][1]["error"] == "no" and "detail" not in payload["checks"][1]
    json.dumps(payload)  # all of it serialisable
    assert Check("x", True, 1.23456).to_dict()["seconds"] == 1.235


def test_seconds_since_process_start():
    seconds = seconds_since_process_start()
    assert seconds is None or 0.0 <= seconds < 24 * 3600
