"""Runtime LoRA adapters end to end on a tiny Qwen2 (real Qwen tokenizer): PEFT stage adapters ->
``tsx-convert lora`` -> llama.cpp applies the stack at run time on the base GGUF -> the same
distributions as transformers + PEFT; the stack is refused on another base or out of order; the
app engine, ``tsx-medtrans translate`` and ``tsx-eval``'s llama.cpp backend load a tuned-model spec
the same way, name the hashes in the provenance, and translate with the base alone on request."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from converter import ConvertError
from tests.converter.conftest import copy_tree, make_stage_adapters

pytest.importorskip("llama_cpp")

SENTENCE = "患者有高血压病史。"


@pytest.fixture(scope="session")
def tuned(tmp_path_factory, tiny_qwen2_real):
    """Base GGUF (f16, llama.cpp's converter) + its HF form + two PEFT stages + their GGUF LoRAs + a spec."""
    from converter.llamacpp import run_convert
    from converter.lora import export_loras
    from medcore.models import sha256_file
    from medcore.modelspec import write_spec

    root = tmp_path_factory.mktemp("runtime_lora")
    hf = copy_tree(tiny_qwen2_real, root / "hfbase")
    gguf = root / "tiny-base-f16.gguf"
    run_convert(hf, gguf, "f16")
    # As for a bundled model: the HF form records the GGUF it stands for, so adapters trained on it
    # carry the GGUF's sha256 as their base fingerprint.
    (hf / "tsx_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": sha256_file(gguf)}))
    stage1, stage2 = make_stage_adapters(hf, root / "runs")
    prepared = root / "prepared"
    prepared.mkdir()
    (prepared / "manifest.json").write_text('{"splits": "tiny"}\n')
    for adapter in (stage1, stage2):  # what tsx-train writes beside the adapter: the run's config
        (adapter.parent / "config.json").write_text(json.dumps({"data": str(prepared)}))
    records = export_loras([stage1, stage2], root / "adapters", base=hf)
    loras = [Path(r["path"]) for r in records]
    spec = write_spec(root / "specs" / "tiny-tuned.yaml", "tiny-tuned", str(gguf),
                      [{"file": r["path"], "sha256": r["gguf_sha256"]} for r in records], description="test")
    return SimpleNamespace(root=root, hf=hf, gguf=gguf, peft=[stage1, stage2], loras=loras, records=records,
                           manifest=prepared / "manifest.json", spec=spec)


def _logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[llm.n_tokens - 1])


def test_export_writes_gguf_lora_with_provenance(tuned):
    from hfmodel.fingerprints import adapter_fingerprint
    from medcore.models import sha256_file
    from runtime.gguf_header import read_gguf_info

    base_sha = sha256_file(tuned.gguf)
    s1, s2 = tuned.records
    assert (s1["stage"], s2["stage"]) == (1, 2)
    assert [Path(r["path"]).name for r in tuned.records] == ["stage1.lora.gguf", "stage2.lora.gguf"]
    for record, peft in zip(tuned.records, tuned.peft, strict=True):
        side = json.loads(Path(record["path"] + ".json").read_text())
        assert side["kind"] == "tsx-lora" and side["base_fingerprint"] == base_sha
        assert side["gguf_sha256"] == sha256_file(record["path"]) and side["size_bytes"] > 0
        assert side["peft_sha256"] == adapter_fingerprint(peft)
        assert side["peft_files"]["adapter_model.safetensors"] == sha256_file(peft / "adapter_model.safetensors")
        assert side["data_manifest_sha256"] == sha256_file(tuned.manifest)
        info = read_gguf_info(record["path"])
        assert info.architecture == "qwen2" and info.metadata.get("general.type") == "adapter"
        assert info.metadata.get("adapter.lora.alpha") == side["lora"]["lora_alpha"]
    assert s1["stack_peft_sha256"] == [] and s2["stack_peft_sha256"] == [adapter_fingerprint(tuned.peft[0])]
    assert set(s1["lora"]["target_modules"]) == {"gate_proj", "up_proj", "down_proj"}
    leftovers = [p.name for p in Path(s1["path"]).parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_runtime_stack_matches_transformers_with_peft(tuned, probes_file):
    """Base GGUF + both GGUF LoRAs in llama.cpp vs HF base + both PEFT adapters (stage 1 merged, stage 2
    live, as training saw them): the same distributions, the fine-tune kept; without the adapters far off."""
    from converter.verify import format_report, verify_runtime

    report = verify_runtime(tuned.gguf, tuned.loras, hf=tuned.hf, probes_file=str(probes_file), max_new_tokens=8)
    text = format_report(report)
    assert report["passed"], text
    assert report["kl_mean"] < 5e-3 and report["top1_agreement"] >= 0.97, text
    assert report["tokenization_match"] and report["chat_template_match"] and report["end_of_turn_stops"]
    assert [a["stage"] for a in report["adapters"]] == [1, 2] and len(report["peft_adapters"]) == 2
    ft = report["finetune"]
    assert ft["ft_kl_mean"] > 0.1 and ft["kept"] > 0.95, text
    off = report["without_adapters"]
    assert off["kl_mean"] > 20 * max(report["kl_mean"], 1e-4), text  # the adapters are what moves it
    assert off["vs_hf_base_kl_mean"] < 5e-3, text  # ... and alone the GGUF is the HF base
    assert "runtime adapters: stage1.lora.gguf (stage 1), stage2.lora.gguf (stage 2)" in text


def test_stage1_alone_matches_peft(tuned, probes_file):
    from converter.verify import verify_runtime

    report = verify_runtime(tuned.gguf, tuned.loras[:1], peft=tuned.peft[:1], hf=tuned.hf,
                            probes_file=str(probes_file), max_new_tokens=8)
    assert report["passed"] and report["kl_mean"] < 5e-3 and report["finetune"]["kept"] > 0.95


def _ship(tuned, folder: Path, peft_for_stage2: Path) -> list[Path]:
    """The LoRAs as the repo ships them (resources/models/adapters/<name>/): the GGUF files, their
    sidecars naming a training run this machine does not have, and PEFT copies in peft/stage<N>/."""
    folder.mkdir()
    shipped = []
    for lora, peft in zip(tuned.loras, (tuned.peft[0], peft_for_stage2), strict=True):
        shutil.copy2(lora, folder / lora.name)
        side = json.loads(Path(str(lora) + ".json").read_text())
        side["peft_source"] = str(folder / "gone" / "runs" / f"stage{side['stage']}" / "adapter")
        (folder / (lora.name + ".json")).write_text(json.dumps(side))
        copy_tree(peft, folder / "peft" / f"stage{side['stage']}")
        shipped.append(folder / lora.name)
    return shipped


def test_verify_finds_the_committed_peft_copies_in_a_fresh_checkout(tuned, tmp_path, probes_file):
    """`tsx-convert verify --spec` on another machine: the sidecars' training run is not there, the
    PEFT copies beside the LoRAs are, and they are used only when their sha256 is the recorded one."""
    from converter.verify import find_peft_source, verify_runtime
    from medcore.lora import read_adapter

    shipped = _ship(tuned, tmp_path / "ok", tuned.peft[1])
    assert [find_peft_source(read_adapter(p)) for p in shipped] == [
        tmp_path / "ok" / "peft" / "stage1", tmp_path / "ok" / "peft" / "stage2"]
    report = verify_runtime(tuned.gguf, shipped, hf=tuned.hf, probes_file=str(probes_file), max_new_tokens=8)
    assert report["passed"] and report["kl_mean"] < 5e-3
    assert [Path(p).parent.name for p in report["peft_adapters"]] == ["peft", "peft"]

    wrong = _ship(tuned, tmp_path / "wrong", tuned.peft[0])  # stage 1's weights where stage 2's belong
    with pytest.raises(ConvertError, match=r"stage2.lora.gguf .*looked in .*gone.*peft/stage2, which have other weights"):
        find_peft_source(read_adapter(wrong[1]))
    shutil.rmtree(tmp_path / "wrong" / "peft")
    with pytest.raises(ConvertError, match="are not there; give it with --adapter"):
        verify_runtime(tuned.gguf, wrong, hf=tuned.hf, probes_file=str(probes_file), max_new_tokens=8)


def test_two_stacked_adapters_both_apply_and_switch_off(tuned):
    from runtime.adapters import open_llama_with_adapters, set_active

    ids = list(range(200, 230))
    kwargs = {"n_ctx": 128, "n_threads": 2, "verbose": False, "logits_all": True}
    base = open_llama_with_adapters(tuned.gguf, [], **kwargs)
    one = open_llama_with_adapters(tuned.gguf, tuned.loras[:1], **kwargs)
    both = open_llama_with_adapters(tuned.gguf, tuned.loras, **kwargs)
    try:
        lb, l1, l2 = _logits(base, ids), _logits(one, ids), _logits(both, ids)
        assert np.abs(l1 - lb).max() > 0.1 and np.abs(l2 - l1).max() > 0.1  # each stage changes the output
        assert [a.stage for a in both.tsx_adapters] == [1, 2] and both.tsx_adapters_active
        set_active(both, False)
        assert not both.tsx_adapters_active
        np.testing.assert_allclose(_logits(both, ids), lb, atol=1e-4)  # off = the base alone, no reload
        set_active(both, True)
        np.testing.assert_allclose(_logits(both, ids), l2, atol=1e-4)
    finally:
        for llm in (base, one, both):
            llm.close()


def _fake_sidecar(src: Path, dst_dir: Path, **changes) -> Path:
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    meta = json.loads(Path(str(src) + ".json").read_text())
    meta.update(changes)
    Path(str(dst) + ".json").write_text(json.dumps(meta))
    return dst


def test_adapters_of_another_base_or_out_of_order_are_refused(tuned, tmp_path):
    from medcore.lora import AdapterError
    from medcore.models import ModelError
    from runtime.adapters import open_llama_with_adapters
    from runtime.engine import TranslationEngine

    foreign = _fake_sidecar(tuned.loras[0], tmp_path, base_fingerprint="ab" * 32, base_file="other-base.gguf")
    with pytest.raises(AdapterError, match="trained on another base model.*other-base.gguf"):
        open_llama_with_adapters(tuned.gguf, [foreign], n_ctx=64, verbose=False)
    with pytest.raises(ModelError, match="trained on another base model"):
        TranslationEngine().load(tuned.gguf, adapters=[foreign])
    # The right base by name with other bytes (a damaged or replaced bundled file): the message says
    # reinstall, not "another base".
    from medcore.models import BUNDLED

    bundled = BUNDLED["qwen2.5-coder-0.5b"]
    (tmp_path / "b").mkdir()
    renamed = tmp_path / "b" / bundled.filename
    shutil.copy(tuned.gguf, renamed)
    ours = _fake_sidecar(tuned.loras[0], tmp_path / "b", base_fingerprint=bundled.sha256, base_file=bundled.filename)
    with pytest.raises(ModelError, match=rf"{bundled.filename} is damaged or was replaced.*tsx-models fetch {bundled.name}"):
        TranslationEngine().load(renamed, adapters=[ours])
    with pytest.raises(AdapterError, match="training order"):
        open_llama_with_adapters(tuned.gguf, list(reversed(tuned.loras)), n_ctx=64, verbose=False)
    (tmp_path / "x").mkdir()
    wrong_below = _fake_sidecar(tuned.loras[1], tmp_path / "x", stack_peft_sha256=["f" * 64])
    with pytest.raises(AdapterError, match="trained on top of"):
        open_llama_with_adapters(tuned.gguf, [tuned.loras[0], wrong_below], n_ctx=64, verbose=False)
    (tmp_path / "y").mkdir()
    damaged = _fake_sidecar(tuned.loras[0], tmp_path / "y")
    with open(damaged, "r+b") as fh:
        fh.seek(-4, 2)
        fh.write(b"\0\1\2\3")
    with pytest.raises(AdapterError, match="damaged"):
        open_llama_with_adapters(tuned.gguf, [damaged], n_ctx=64, verbose=False)
    bare = tmp_path / "bare.lora.gguf"
    shutil.copy(tuned.loras[0], bare)
    with pytest.raises(AdapterError, match="no provenance"):
        open_llama_with_adapters(tuned.gguf, [bare], n_ctx=64, verbose=False)


def test_export_refuses_another_base(tuned, tmp_path, tiny_qwen2_real):
    from converter.lora import export_lora

    with pytest.raises(ConvertError, match="another base model"):
        export_lora(tuned.peft[0], tmp_path / "x.gguf", base=tiny_qwen2_real)  # same weights, no GGUF identity
    assert not (tmp_path / "x.gguf").exists()


def test_stack_is_checked_by_content_not_by_path(tuned, tmp_path):
    """Stage 2 records its stage 1 by sha256: a moved copy of that stage 1 (a fresh checkout's
    peft/stage1) exports with the stack recorded; another stage 1 in its place is refused."""
    from converter.lora import export_loras
    from hfmodel.fingerprints import adapter_fingerprint

    moved = copy_tree(tuned.peft[0], tmp_path / "elsewhere" / "stage1")
    stage2 = copy_tree(tuned.peft[1], tmp_path / "elsewhere" / "stage2")
    records = export_loras([moved, stage2], tmp_path / "out", base=tuned.hf)
    assert records[1]["stack_peft_sha256"] == [adapter_fingerprint(tuned.peft[0])]

    impostor = copy_tree(tuned.peft[0], tmp_path / "impostor")
    (impostor / "adapter_config.json").write_text(
        (impostor / "adapter_config.json").read_text().replace('"r": 16', '"r": 16 '))  # other bytes, other sha
    with pytest.raises(ConvertError, match="trained on top of another earlier stage"):
        export_loras([impostor, stage2], tmp_path / "out2", base=tuned.hf)
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_engine_tuned_spec_provenance_and_base_only_switch(tuned):
    from desktop.provenance import build_provenance
    from medcore.models import sha256_file
    from runtime.engine import TranslationEngine
    from runtime.options import LoadOptions

    base_sha = sha256_file(tuned.gguf)
    engine = TranslationEngine()
    plain = TranslationEngine()
    try:
        info = engine.load(tuned.spec, LoadOptions(n_ctx=512, n_threads=2))
        assert info.spec == "tiny-tuned" and info.source == tuned.spec.resolve() and info.path == tuned.gguf.resolve()
        assert [a["stage"] for a in info.adapters] == [1, 2] and info.adapters_active
        tuned_out = engine.translate(SENTENCE, "zh-en", max_new_tokens=12)
        prov = build_provenance(info.path, info.name, [], tuned_out.direction, info.options.to_dict(),
                                model=tuned_out.model)
        assert prov["base_sha256"] == prov["model_sha256"] == base_sha and prov["tuned_model"] == "tiny-tuned"
        assert [a["sha256"] for a in prov["adapters"]] == [r["gguf_sha256"] for r in tuned.records]
        assert [a["peft_sha256"] for a in prov["adapters"]] == [r["peft_sha256"] for r in tuned.records]
        assert prov["data_manifest_sha256"] == sha256_file(tuned.manifest) and not prov["base_only"]

        engine.set_adapters_active(False)
        base_out = engine.translate(SENTENCE, "zh-en", max_new_tokens=12)
        assert base_out.model["base_only"] and base_out.model["adapters"] == []
        plain.load(tuned.gguf, LoadOptions(n_ctx=512, n_threads=2))
        assert plain.translate(SENTENCE, "zh-en", max_new_tokens=12).translation == base_out.translation
        assert base_out.translation != tuned_out.translation  # the random adapters really change the text
        engine.set_adapters_active(True)
        assert engine.translate(SENTENCE, "zh-en", max_new_tokens=12).translation == tuned_out.translation
    finally:
        engine.unload()
        plain.unload()


def test_cli_translate_and_tsx_eval_give_identical_text(tuned, tmp_path, capsys):
    """`tsx-medtrans translate` and `tsx-eval run --backend llamacpp`: same engine, same adapters, same text."""
    from desktop.cli import main as medtrans
    from evaluation.cli import main as tsx_eval
    from medcore.models import sha256_file

    def translate(*extra: str) -> dict:
        assert medtrans(["translate", "--json", "-d", "zh-en", "--ctx", "512", "--threads", "2", "--term-block", "on",
                         *extra, SENTENCE]) == 0
        return json.loads(capsys.readouterr().out)

    by_spec = translate("-m", str(tuned.spec))
    by_files = translate("-m", str(tuned.gguf), "--lora", str(tuned.loras[0]), "--lora", str(tuned.loras[1]))
    base_only = translate("-m", str(tuned.spec), "--base-only")
    assert by_spec["translation"] == by_files["translation"] != base_only["translation"]
    prov = by_spec["provenance"]
    assert prov["tuned_model"] == "tiny-tuned" and len(prov["adapters"]) == 2
    assert prov["base_sha256"] == sha256_file(tuned.gguf) and prov["data_manifest_sha256"]
    assert base_only["provenance"]["base_only"] and base_only["provenance"]["adapters"] == []

    test = tmp_path / "test.jsonl"
    test.write_text(json.dumps({"id": "1", "kind": "sentence", "direction": "zh-en", "source": SENTENCE,
                                "target": "The patient has a history of hypertension."}, ensure_ascii=False) + "\n")
    out = tmp_path / "eval"
    # The shipped glossary's terms required in the prompt, in both (`--term-block on`: these adapters were
    # not trained with the block, so the CLI's `auto` would leave it out).
    assert tsx_eval(["run", "--backend", "llamacpp", "--model", str(tuned.spec), "--test", str(test), "--out", str(out),
                     "--n-ctx", "512", "--no-progress", "--glossary", "default", "--term-block",
                     "--kinds", "sentence"]) == 0
    capsys.readouterr()
    row = json.loads((out / "hypotheses.jsonl").read_text().splitlines()[0])
    assert row["hypothesis"] == by_spec["translation"]
    described = json.loads((out / "metrics.json").read_text())["model"]
    assert described["tuned_model"] == "tiny-tuned" and [a["stage"] for a in described["adapters"]] == [1, 2]
    # The users' default, `auto`, on both sides: these adapters were not trained with the block, so neither
    # puts it in, and the two still agree.
    assert medtrans(["translate", "--json", "-d", "zh-en", "--ctx", "512", "--threads", "2", "-m", str(tuned.spec),
                     SENTENCE]) == 0
    by_default = json.loads(capsys.readouterr().out)
    assert tsx_eval(["run", "--backend", "llamacpp", "--model", str(tuned.spec), "--test", str(test), "--out",
                     str(tmp_path / "auto"), "--n-ctx", "512", "--no-progress", "--glossary", "default",
                     "--term-block", "auto", "--kinds", "sentence"]) == 0
    capsys.readouterr()
    auto_row = json.loads((tmp_path / "auto" / "hypotheses.jsonl").read_text().splitlines()[0])
    assert auto_row["hypothesis"] == by_default["translation"] != by_spec["translation"]
    assert json.loads((tmp_path / "auto" / "metrics.json").read_text())["model"]["term_block"] is False
    assert by_default["provenance"]["term_block"] is False


def test_tsx_eval_refuses_peft_dirs_and_builds_runtime_ablation(tuned):
    from evaluation.ablation import ablation_systems
    from evaluation.translators import make_translator

    with pytest.raises(ValueError, match="tsx-convert lora"):
        make_translator("llamacpp", tuned.gguf, [tuned.peft[0]])
    systems = ablation_systems("llamacpp", str(tuned.gguf), str(tuned.loras[0]), str(tuned.loras[1]))
    assert [(s.name, s.model, s.adapters) for s in systems] == [
        ("base", str(tuned.gguf), []), ("+stage1", str(tuned.gguf), [str(tuned.loras[0])]),
        ("+stage1+2", str(tuned.gguf), [str(tuned.loras[0]), str(tuned.loras[1])])]


def test_default_model_is_one_line_of_data(tuned, tmp_path, monkeypatch):
    """The shipped default is the 1.5B base or a committed tuned spec whose adapters are in the repo on a bundled
    base (docs/converter.md: it must beat the 1.5B); pointing default.yaml at a spec makes every entry point use it."""
    from desktop.selftest import check_model
    from medcore.models import BUNDLED, LARGE_MODEL, sha256_file
    from medcore.modelspec import default_model, find_spec, list_specs, resolve
    from medcore.resources import RESOURCES_DIR

    shipped = RESOURCES_DIR / "models" / "default.yaml"
    default = default_model(shipped.parent)
    spec = find_spec(default, shipped.parent)
    if spec is None:
        assert default == LARGE_MODEL
    else:  # a tuned default: its adapters are committed, byte for byte what the spec records
        assert spec.base in BUNDLED and spec.base_sha256 == BUNDLED[spec.base].sha256
        assert len(spec.adapters) == 2 and spec.provenance.get("data_manifest_sha256")
        for adapter in spec.adapters:
            assert adapter.file.is_relative_to(RESOURCES_DIR) and adapter.sha256 == sha256_file(adapter.file)

    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(tuned.spec, specs / "tiny-tuned.yaml")
    text = shipped.read_text(encoding="utf-8").replace(f"default: {default}", "default: tiny-tuned")
    assert text != shipped.read_text(encoding="utf-8")
    (specs / "default.yaml").write_text(text, encoding="utf-8")
    # adapter paths in a spec are relative to it: keep them resolvable from the copy
    spec_text = (specs / "tiny-tuned.yaml").read_text().replace("../adapters/", f"{tuned.root}/adapters/")
    (specs / "tiny-tuned.yaml").write_text(spec_text)
    monkeypatch.setenv("TSX_MODEL_SPECS", str(specs))

    assert default_model() == "tiny-tuned" and [s.name for s in list_specs()] == ["tiny-tuned"]
    resolved = resolve(None)
    assert resolved.spec.name == "tiny-tuned" and len(resolved.adapters) == 2 and resolved.base == tuned.gguf.resolve()
    assert resolve(None, base_only=True).adapters == []
    status, detail = check_model(None)
    assert status == "ok" and detail["tuned_model"] == "tiny-tuned" and len(detail["adapters"]) == 2

    from PySide6.QtCore import QSettings

    from desktop.settings import AppSettings

    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    assert settings.current_model() == str(specs / "tiny-tuned.yaml")
    assert ("tiny-tuned (tuned)", str(specs / "tiny-tuned.yaml")) in settings.known_models()


def test_spec_errors_are_clear(tmp_path):
    from medcore.modelspec import SpecError, load_spec, resolve

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: qwen2.5-coder-0.5b\nbase: qwen2.5-coder-0.5b\n")
    with pytest.raises(SpecError, match="bundled model's name"):
        load_spec(bad)
    missing = tmp_path / "missing.yaml"
    missing.write_text("name: t\nbase: qwen2.5-coder-0.5b\nadapters: [{file: nowhere/stage1.lora.gguf}]\n")
    with pytest.raises(SpecError, match="adapter file missing"):
        resolve(str(missing))
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("name: t\nbase: qwen2.5-coder-0.5b\nbase_sha256: '" + "0" * 64 + "'\n")
    with pytest.raises(SpecError, match="is not the bundled"):
        load_spec(wrong)
    wrong.write_text("name: t\nbase: qwen2.5-coder-0.5b\nbase_sha256: " + "0" * 64 + "\n")  # YAML reads an int
    with pytest.raises(SpecError, match="quoted string"):
        load_spec(wrong)


def test_parallel_segments_keep_the_runtime_adapters(tuned):
    """Segments side by side run on the parallel context with the same adapter stack, on and off."""
    from runtime.engine import TranslationEngine
    from runtime.options import LoadOptions

    text = "患者有高血压病史。既往无糖尿病。胸部CT未见异常。"
    engine = TranslationEngine()
    try:
        engine.load(tuned.spec, LoadOptions(n_ctx=512, n_threads=2, parallel=3))
        side = engine.translate(text, "zh-en", max_new_tokens=10)
        assert side.parallel == 3 and len(side.segments) == 3
        assert side.translation == engine.translate(text, "zh-en", max_new_tokens=10, parallel=1).translation
        engine.set_adapters_active(False)
        base = engine.translate(text, "zh-en", max_new_tokens=10)
        assert base.parallel == 3 and base.model["base_only"]
        assert base.translation == engine.translate(text, "zh-en", max_new_tokens=10, parallel=1).translation
        assert base.translation != side.translation  # the adapters were really on, then really off
    finally:
        engine.unload()


def test_term_block_auto_follows_what_the_adapters_were_trained_with(tuned, tmp_path):
    """auto: the block goes into the prompt only while an adapter trained with it is active;
    on: with any model; the provenance says which happened."""
    from medcore.terms import Glossary, Term
    from runtime.engine import TranslationEngine
    from runtime.options import LoadOptions

    meta = json.loads(Path(str(tuned.loras[1]) + ".json").read_text())
    stage2 = _fake_sidecar(tuned.loras[1], tmp_path, tsx_stage={**meta["tsx_stage"], "term_block_share": 0.5})
    glossary = Glossary([Term("高血压", "hypertension")])
    source = "患者有高血压病史。"
    untrained, trained = TranslationEngine(), TranslationEngine()
    try:
        untrained.load(tuned.gguf, LoadOptions(n_ctx=256, n_threads=2), adapters=tuned.loras)
        trained.load(tuned.gguf, LoadOptions(n_ctx=256, n_threads=2), adapters=[tuned.loras[0], stage2])
        for engine in (untrained, trained):
            engine.set_term_glossary(glossary)
        assert [a["term_block_share"] for a in trained.info.adapters] == [0.0, 0.5]
        assert untrained.prompt_terms(source, "zh-en") == [] and not untrained.runtime_provenance()["term_block"]
        assert trained.prompt_terms(source, "zh-en") == [("高血压", "hypertension")]
        assert trained.runtime_provenance()["term_block"]
        blocked = trained.prompt_token_ids(source, "zh-en")
        assert len(blocked) > len(untrained.prompt_token_ids(source, "zh-en"))
        trained.set_adapters_active(False)  # the base alone was never trained with the block
        assert trained.prompt_terms(source, "zh-en") == [] and not trained.runtime_provenance()["term_block"]
        untrained.set_term_glossary(glossary, mode="on")
        assert untrained.prompt_token_ids(source, "zh-en") == blocked
        with pytest.raises(ValueError, match="auto, on, off"):
            untrained.set_term_glossary(glossary, mode="always")
    finally:
        untrained.unload()
        trained.unload()
