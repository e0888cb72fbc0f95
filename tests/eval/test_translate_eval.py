"""The transformers backend, evaluation runs and the ablation on a tiny random Qwen2 (mechanics, not quality)."""

from __future__ import annotations

import csv
import json

import pytest

from medcore.prompt import render_prompt_ids
from trainer.evaluate import (
    CometSpec,
    ablation_systems,
    check_stack,
    evaluate,
    load_test_set,
    run_ablation,
    score_rows,
    select_records,
)
from trainer.translate import TransformersTranslator, output_budget

ITEMS = [
    ("患者有高血压病史。", "zh-en"),
    ("The patient presented with acute chest pain and shortness of breath.", "en-zh"),
    ("头痛", "zh-en"),
    ("fever", "en-zh"),
    ("术后皮瓣全部成活，切口均一期愈合。", "zh-en"),
]


def _records():
    return [{"id": f"r{i}", "kind": "term" if len(src) < 8 else "sentence", "direction": d, "source": src,
             "target": "reference text" if d == "zh-en" else "参考译文"} for i, (src, d) in enumerate(ITEMS)]


# A random model seldom says end-of-turn and runs to its budget: a small cap keeps the tests quick
# (short sources stay under it, so the source-length rule is still what sets their budget).
CAP = 24


@pytest.fixture(scope="module")
def tiny_translator(tiny_qwen2_dir):
    return TransformersTranslator(tiny_qwen2_dir, batch_size=3, device="cpu", max_new_cap=CAP)


def test_output_budget():
    assert output_budget(10, 50, 4096) == 36  # 2 x 10 + 16
    assert output_budget(10, 4090, 4096) == 6  # never past the context
    assert output_budget(10, 5000, 4096) == 0  # no room at all
    assert output_budget(5000, 10, 100000, cap=1024) == 1024


def test_greedy_is_deterministic_and_batching_does_not_change_outputs(tiny_translator, tiny_qwen2_dir):
    batched = tiny_translator.translate(ITEMS)
    again = tiny_translator.translate(ITEMS)
    assert [t.text for t in batched] == [t.text for t in again]
    one_by_one = TransformersTranslator(tiny_qwen2_dir, batch_size=1, device="cpu", max_new_cap=CAP).translate(ITEMS)
    # Left padding + attention mask: a segment's greedy output does not depend on its batch mates.
    assert [t.text for t in batched] == [t.text for t in one_by_one]
    assert [t.new_tokens for t in batched] == [t.new_tokens for t in one_by_one]


def test_output_length_is_capped_from_source_length(tiny_translator):
    tok = tiny_translator.tokenizer
    budgets = []
    for (src, direction), out in zip(ITEMS, tiny_translator.translate(ITEMS), strict=True):
        n_src = len(tok(src, add_special_tokens=False)["input_ids"])
        n_prompt = len(render_prompt_ids(tok, src, direction))
        assert out.max_new_tokens == output_budget(n_src, n_prompt, 512, cap=CAP)
        budgets.append(out.max_new_tokens)
        assert out.new_tokens <= out.max_new_tokens
        # A random model rarely says end-of-turn; when it does not, it ran exactly to the cap.
        if not out.stopped:
            assert out.new_tokens == out.max_new_tokens
        assert out.error is None
    # "fever" (a token or two) gets 2 x n + 16 < CAP; the long sentences get the cap.
    assert budgets[3] < CAP and budgets[1] == CAP


def test_context_limit_is_never_exceeded(tiny_translator):
    tok = tiny_translator.tokenizer
    words = ["fever", "cough", "headache", "nausea"]
    near = " ".join(words * 60)  # prompt close to the tiny model's 512-token context
    while len(render_prompt_ids(tok, near, "en-zh")) > 500:
        near = near.rsplit(" ", 1)[0]
    too_long = " ".join(words * 200)
    out_near, out_long = tiny_translator.translate([(near, "en-zh"), (too_long, "en-zh")])
    n_prompt = len(render_prompt_ids(tok, near, "en-zh"))
    assert out_near.max_new_tokens == 512 - n_prompt and out_near.new_tokens <= 512 - n_prompt
    assert out_long.text == "" and out_long.max_new_tokens == 0 and "context" in out_long.error


def test_evaluate_saves_hypotheses_and_breaks_down_metrics(tiny_translator, tmp_path, tiny_comet):
    from medcore.terms import Glossary, Term

    records = _records()
    glossary = Glossary([Term("高血压", "hypertension"), Term("头痛", "headache"), Term("发热", "fever")])
    metrics = evaluate(records, tiny_translator, tmp_path, glossary=glossary,
                       comet=CometSpec(str(tiny_comet["dir"])), name="tiny", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "hypotheses.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    for row, record in zip(rows, records, strict=True):
        assert row["source"] == record["source"] and row["reference"] == record["target"]
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


def test_select_records_spreads_a_small_limit_over_cells():
    records = [{"id": f"{k}-{d}-{i}", "kind": k, "direction": d, "source": "s", "target": "t"}
               for k in ("term", "sentence") for d in ("zh-en", "en-zh") for i in range(10)]
    picked = select_records(records, 8, seed=1)
    assert len(picked) == 8
    cells = {(r["direction"], r["kind"]) for r in picked}
    assert len(cells) == 4 and all(sum(1 for r in picked if (r["direction"], r["kind"]) == c) == 2 for c in cells)
    assert picked == select_records(records, 8, seed=1)
    assert [r["id"] for r in select_records(records, 5, directions=["zh-en"], kinds=["term"])][0].startswith("term-zh-en")


def test_load_test_set_from_pair_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("头痛\theadache\n发热\tfever\n", encoding="utf-8")
    records = load_test_set(path, kind="term")
    assert len(records) == 4 and {r["direction"] for r in records} == {"zh-en", "en-zh"}
    assert records[0]["kind"] == "term" and records[0]["source"] == "头痛" and records[0]["target"] == "headache"


def test_check_stack_refuses_adapters_of_another_base(tiny_stages, tmp_path, tiny_qwen2_dir):
    stage1, stage2 = tiny_stages
    assert check_stack(str(tiny_qwen2_dir), str(stage1), str(stage2)) == []
    import shutil

    other = tmp_path / "other_stage1"
    shutil.copytree(stage1, other)
    meta = json.loads((other / "tsx_stage.json").read_text())
    meta["base_fingerprint"] = "0" * 64
    (other / "tsx_stage.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="another base"):
        check_stack(str(tiny_qwen2_dir), str(other), None)
    with pytest.raises(ValueError, match="stage2 needs"):
        ablation_systems("transformers", str(tiny_qwen2_dir), None, str(stage2))


def test_ablation_transformers_tiny(tiny_qwen2_dir, tiny_stages, tmp_path):
    stage1, stage2 = tiny_stages
    test = tmp_path / "prepared" / "combined_test.jsonl"
    test.parent.mkdir()
    test.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _records()), encoding="utf-8")
    (test.parent / "glossary.tsv").write_text("高血压\thypertension\n头痛\theadache\n", encoding="utf-8")
    systems = ablation_systems("transformers", str(tiny_qwen2_dir), str(stage1), str(stage2))
    assert [s.name for s in systems] == ["base", "+stage1", "+stage1+2"]
    out = tmp_path / "ablation"
    def factory(backend, model, adapters, batch_size, n_ctx):
        return TransformersTranslator(model, adapters, batch_size=batch_size, device="cpu", max_new_cap=CAP)

    summary = run_ablation(systems, test, out, backend="transformers", batch_size=5, bootstrap_samples=50,
                           progress=False, translator_factory=factory)
    for name in ("ablation.md", "ablation.csv", "ablation.json", "ablation.png"):
        assert (out / name).stat().st_size > 0
    from PIL import Image

    with Image.open(out / "ablation.png") as image:
        assert image.format == "PNG" and image.size[0] >= 600
    hyps = {name: [json.loads(x)["hypothesis"] for x in (out / name / "hypotheses.jsonl").read_text().splitlines()]
            for name in ("base", "stage1", "stage1+2")}
    # The adapters change the model, so the three systems translate differently.
    assert hyps["base"] != hyps["stage1"] != hyps["stage1+2"]
    data = json.loads((out / "ablation.json").read_text())
    assert data["data"]["records"] == 5 and len(data["data"]["sha256"]) == 64
    assert data["glossary"].endswith("glossary.tsv")
    assert [s["name"] for s in data["systems"]] == ["base", "+stage1", "+stage1+2"]
    assert len(data["systems"][2]["model"]["adapters"]) == 2
    assert all(len(a["sha256"]) == 64 for a in data["systems"][2]["model"]["adapters"])
    assert data["versions"]["sacrebleu"] and data["versions"]["torch"]
    assert set(data["significance"]) == {"zh-en", "en-zh"}
    assert "+stage1+2 vs +stage1" in data["significance"]["zh-en"]
    md = (out / "ablation.md").read_text()
    assert md.count("\n| ") >= 3 and "COMET: not computed" in md and "tok:zh" in md
    with (out / "ablation.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["system"] for r in table] == ["base", "+stage1", "+stage1+2"]
    assert float(table[0]["bleu"]) == pytest.approx(summary["table"][0]["bleu"])


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
    from trainer import eval_partial

    monkeypatch.setattr(eval_partial, "CHUNK", 2)
    records = _records()
    whole = evaluate(records, tiny_translator, tmp_path / "whole", name="tiny", progress=False)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        evaluate(records, _StopsAfter(tiny_translator, 1), out, name="tiny", progress=False)
    partial = out / eval_partial.PARTIAL
    assert not (out / "metrics.json").exists() and len(partial.read_text().splitlines()) == 1 + 2
    with partial.open("a") as fh:
        fh.write('{"index": 4, "ro')  # the line being written when the process died
    resumed = _StopsAfter(tiny_translator, 99)
    metrics = evaluate(records, resumed, out, name="tiny", progress=False, resume=True)
    assert resumed.asked == [(r["source"], r["direction"]) for r in records[2:]]  # only what was not saved
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
    assert other.asked == [(r["source"], r["direction"]) for r in records[1:]]
