"""The ablation on a tiny random Qwen2 with two tiny stage adapters: systems, stack checks, table, chart."""

from __future__ import annotations

import csv
import json

import pytest

from evaluation.ablation import ablation_systems, check_stack, run_ablation
from evaluation.translators import TransformersTranslator
from tests.evaluation.samples import CAP, write_prepared
from tests.evaluation.samples import records as _records


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
    moved = tmp_path / "moved_stage1"  # stage 1 copied elsewhere (a fresh checkout): still stage 2's stage 1
    shutil.copytree(stage1, moved)
    assert check_stack(str(tiny_qwen2_dir), str(moved), str(stage2)) == []
    (moved / "adapter_config.json").write_text((moved / "adapter_config.json").read_text() + " ")
    assert check_stack(str(tiny_qwen2_dir), str(moved), str(stage2)) == [
        f"{stage2} was trained on top of another stage 1 (sha256 "
        f"{json.loads((stage2 / 'tsx_stage.json').read_text())['stack_sha256'][0][:12]}…) than {moved}"]


def test_ablation_transformers_tiny(tiny_qwen2_dir, tiny_stages, tmp_path):
    stage1, stage2 = tiny_stages
    test = tmp_path / "prepared" / "combined_test.jsonl"
    test.parent.mkdir()
    write_prepared(test, _records())
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
    # Both kinds in both directions: each kind's own BLEU and chrF, as its system's breakdown has them,
    # and the chart shows them instead of the pooled figures.
    from evaluation.plots import chart_panels

    metrics = json.loads((out / "stage1+2" / "metrics.json").read_text())
    row = summary["table"][2]
    assert row["bleu_sentence_en-zh"] == metrics["by_direction"]["en-zh"]["sentence"]["bleu"]
    assert row["bleu_term_zh-en"] == metrics["by_direction"]["zh-en"]["term"]["bleu"]
    assert row["chrf_sentence"] == metrics["by_kind"]["sentence"]["chrf"]
    panels = [key for key, _, _ in chart_panels(summary["table"])]
    assert panels[:2] == ["bleu_sentence_zh-en", "bleu_sentence_en-zh"] and "bleu_zh-en" not in panels
    # One kind only (a sentences-only run): the pooled panels.
    no_terms = [{**r, "bleu_term_zh-en": None, "bleu_term_en-zh": None} for r in summary["table"]]
    assert [key for key, _, _ in chart_panels(no_terms)][:2] == ["bleu_zh-en", "bleu_en-zh"]
