"""Data preparation on real and hand-made inputs: normalisation, filters, dedupe, leak-free split."""

from __future__ import annotations

import json

import pytest

from trainer.cli import main as train_main
from trainer.data import DataConfig, Pair, group_split, prepare


def _config(root, terms, sentences):
    config = DataConfig.load()
    config.data_root = str(root)
    config.terms, config.sentences = terms, sentences
    return config


def test_prepare_real_data_split_ratios_and_no_leakage(small_prepared):
    manifest = json.loads((small_prepared / "manifest.json").read_text())
    for folder in ("terms", "sentences"):
        counts = {s: manifest["outputs"][f"{folder}/{s}.jsonl"]["records"] for s in ("train", "val", "test")}
        total = sum(counts.values())
        assert counts["train"] / total == pytest.approx(0.90, abs=0.03)
        assert counts["val"] / total == pytest.approx(0.05, abs=0.02)
        sources = {}
        for split in ("train", "val", "test"):
            for line in (small_prepared / folder / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                # The same source text (either direction) never lands in two splits.
                assert sources.setdefault(record["source"].lower(), split) == split, record
    combined = (small_prepared / "combined_test.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(combined) == (manifest["outputs"]["terms/test.jsonl"]["records"]
                             + manifest["outputs"]["sentences/test.jsonl"]["records"])
    assert {json.loads(r)["kind"] for r in combined} == {"term", "sentence"}
    assert {json.loads(r)["direction"] for r in combined} == {"zh-en", "en-zh"}


def test_prepared_splits_are_what_the_one_reader_reads(small_prepared):
    from medcore.records import read_records

    for folder, kind in (("terms", "term"), ("sentences", "sentence")):
        records = read_records(small_prepared / folder / "val.jsonl")
        assert records and all(r.kind == kind and r.origin for r in records)


def test_prepare_is_deterministic_and_seed_sensitive(tmp_path, shared_data):
    config = _config(shared_data, ["terms/tico19_covid_terms.tsv"], ["sentences/wmt18_medline_zh2en.tsv"])
    a = prepare(config, tmp_path / "a")
    b = prepare(config, tmp_path / "b")
    assert a["outputs"] == b["outputs"]
    config.split["seed"] = 7
    c = prepare(config, tmp_path / "c")
    assert c["outputs"]["terms/test.jsonl"]["sha256"] != a["outputs"]["terms/test.jsonl"]["sha256"]


def test_bad_rows_are_dropped_with_reasons_and_normalised(tmp_path):
    (tmp_path / "t.tsv").write_text(
        "心肌梗死\tmyocardial infarction\n"
        "心肌梗死\tmyocardial  infarction\n"        # duplicate after whitespace normalisation
        "\tfever\n"                                  # empty side
        "fever\tfever\n"                             # same text
        "发热\t发烧 fever\n"                         # English side is Chinese
        "高血压\tＨｙｐｅｒｔｅｎｓｉｏｎ\n"          # full-width English is folded
        "肺\tan extremely long gloss that is far too long for a one character term\n"  # ratio outlier
        "心绞痛\tangina\n糖尿病\tdiabetes\n",  # enough kept pairs for a non-empty train/val/test
        encoding="utf-8")
    (tmp_path / "s.tsv").write_text("患者 发热 三天。\tThe patient had fever for three days.\n"
                                    "患者咳嗽。\tThe patient coughed.\n患者头痛。\tThe patient had a headache.\n",
                                    encoding="utf-8")
    manifest = prepare(_config(tmp_path, ["t.tsv"], ["s.tsv"]), tmp_path / "out")
    dropped = [json.loads(x) for x in (tmp_path / "out" / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    reasons = {d["origin"]: d["reason"] for d in dropped}
    assert reasons["t.tsv:2"] == "duplicate of t.tsv:1"
    assert reasons["t.tsv:3"] == "empty side"
    assert reasons["t.tsv:4"] == "both sides identical"
    assert reasons["t.tsv:5"] == "English side is not English"
    assert reasons["t.tsv:7"].startswith("length ratio")
    assert manifest["inputs"][str(tmp_path / "t.tsv")]["kept"] == 4
    glossary = (tmp_path / "out" / "glossary.tsv").read_text(encoding="utf-8")
    assert "高血压\tHypertension\n" in glossary
    sentence = [json.loads(x) for split in ("train", "val", "test")
                for x in (tmp_path / "out" / "sentences" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert any(r["source"] == "患者发热三天。" for r in sentence)  # spaces between CJK removed


def test_group_split_keeps_shared_sides_together():
    pairs = [Pair("阿司匹林", "aspirin", "term", "a"), Pair("阿司匹林", "acetylsalicylic acid", "term", "b"),
             Pair("乙酰水杨酸", "Aspirin", "term", "c")] + [Pair(f"词{i}", f"word{i}", "term", str(i)) for i in range(60)]
    for seed in range(5):
        splits = group_split(pairs, {"train": 0.9, "val": 0.05, "test": 0.05}, seed)
        where = {p.origin: s for s, ps in splits.items() for p in ps}
        assert where["a"] == where["b"] == where["c"]
        assert sum(len(v) for v in splits.values()) == len(pairs)


def test_cli_malformed_input_reports_file_and_line(tmp_path, capsys):
    (tmp_path / "bad.tsv").write_text("心绞痛\tangina\n只有一列\n", encoding="utf-8")
    code = train_main(["prepare", "--data-root", str(tmp_path), "--terms", "bad.tsv", "--sentences", "bad.tsv",
                       "--out", str(tmp_path / "out")])
    assert code == 2
    assert "bad.tsv:2" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_show_config_resolves_paper_defaults(capsys):
    assert train_main(["show-config", "stage1"]) == 0
    s1 = json.loads(capsys.readouterr().out)
    assert (s1["lora"]["r"], s1["lora"]["target_modules"]) == (16, ["gate_proj", "up_proj", "down_proj"])
    assert (s1["batch_size"], s1["warmup_ratio"], s1["max_length"], s1["epochs"]) == (16, 0.03, 1024, 5)
    assert train_main(["show-config", "stage2", "--set", "lora.r=4", "--epochs", "2"]) == 0
    s2 = json.loads(capsys.readouterr().out)
    assert (s2["lora"]["r"], s2["lora"]["target_modules"], s2["epochs"]) == (4, ["q_proj", "v_proj"], 2)
    assert s2["init_adapters"] == ["runs/stage1/adapter"]
    assert train_main(["show-config", "stage1", "--set", "nonsense=1"]) == 2
    assert "unknown config key" in capsys.readouterr().err


def test_cli_empty_inputs_are_an_error_naming_them_and_write_nothing(tmp_path, capsys):
    (tmp_path / "t.tsv").write_text("", encoding="utf-8")
    (tmp_path / "s.tsv").write_text("\n", encoding="utf-8")
    out = tmp_path / "out"
    code = train_main(["prepare", "--data-root", str(tmp_path), "--terms", "t.tsv", "--sentences", "s.tsv",
                       "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / "t.tsv") in err and str(tmp_path / "s.tsv") in err
    assert "terms/train.jsonl" in err and "sentences/val.jsonl" in err and "empty (no pairs)" in err
    assert not out.exists()  # nothing half-written


def test_empty_split_keeps_earlier_output_and_says_why(tmp_path):
    good = "".join(f"词{i}\tword{i}\n" for i in range(30))
    (tmp_path / "t.tsv").write_text(good, encoding="utf-8")
    (tmp_path / "s.tsv").write_text(good.replace("词", "句子").replace("word", "a sentence number "),
                                    encoding="utf-8")
    out = tmp_path / "out"
    before = prepare(_config(tmp_path, ["t.tsv"], ["s.tsv"]), out)
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # Sentences: every line dropped (English side is Chinese) -> no sentence records at all.
    (tmp_path / "s.tsv").write_text("患者发热。\t发热\n患者咳嗽。\t咳嗽\n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        prepare(_config(tmp_path, ["t.tsv"], ["s.tsv"]), out)
    message = str(info.value)
    assert "sentences/train.jsonl" in message and "terms/" not in message
    assert "2 line(s) read, 0 kept" in message and "English side is not English (2)" in message
    # Too few pairs for three splits: named as such.
    (tmp_path / "s.tsv").write_text("患者发热。\tThe patient had fever.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="too few"):
        prepare(_config(tmp_path, ["t.tsv"], ["s.tsv"]), out)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot
    assert before["outputs"]["sentences/val.jsonl"]["records"] > 0
