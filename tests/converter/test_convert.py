"""merge -> GGUF -> llama-cpp-python -> verify on tiny Qwen2 and Llama-3-style models, and the ways it must fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converter import ConvertError
from tests.converter.conftest import TINY_QUANT_LIMITS, copy_tree, make_stage_adapters

pytest.importorskip("llama_cpp")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def test_merge_matches_live_adapters_and_records_hashes(qwen2_merged, tiny_qwen2_real, qwen2_stages):
    from converter.merge import check_merge, read_manifest
    from medcore.models import sha256_file

    manifest = read_manifest(qwen2_merged)
    assert manifest["architecture"] == "Qwen2ForCausalLM"
    assert [a["stage"] for a in manifest["adapters"]] == [1, 2]
    assert manifest["adapters"][1]["sha256"]["adapter_model.safetensors"] == sha256_file(
        qwen2_stages[1] / "adapter_model.safetensors")
    assert manifest["outputs"]["model.safetensors"] == sha256_file(qwen2_merged / "model.safetensors")
    gen = json.loads((qwen2_merged / "generation_config.json").read_text())
    assert gen["eos_token_id"][0] == manifest["end_of_turn_id"]  # <|im_end|> first: generation stops at the turn
    result = check_merge(qwen2_merged, tiny_qwen2_real, list(qwen2_stages))
    assert result["passed"] and result["top1_agreement"] == 1.0 and result["kl_max"] < 1e-4


def test_qwen2_export_f16_and_q4_k_m_verified(qwen2_merged, probes_file, tmp_path):
    from converter.gguf import export
    from runtime.gguf_header import read_gguf_info

    out = tmp_path / "gguf"
    records = export(qwen2_merged, out, ["f16", "q4_k_m"], probes_file=str(probes_file), max_new_tokens=8,
                     thresholds={"q4_k_m": TINY_QUANT_LIMITS})
    f16, q4 = records
    v = f16["verify"]
    assert v["passed"] and v["top1_agreement"] >= 0.97 and v["kl_mean"] < 1e-3 and v["greedy_match"] >= 0.5
    assert v["tokenization_match"] and v["chat_template_match"] and v["end_of_turn_stops"]
    assert v["finetune"]["ft_kl_mean"] > 0.1 and v["finetune"]["kept"] > 0.95  # the adapters really moved it
    info = read_gguf_info(q4["path"])
    assert info.architecture == "qwen2" and info.file_type == "q4_k_m"
    # 64-wide rows cannot hold 256-blocks: llama.cpp falls back to Q5_0 there, and keeps no F16 weights.
    assert info.tensor_types["Q5_0"] > 0 and "F16" not in info.tensor_types
    assert q4["verify"]["finetune"]["kept"] > 0.5 and q4["verify"]["end_of_turn_stops"]
    assert q4["size_bytes"] < 0.6 * f16["size_bytes"]
    assert _leftovers(out) == []  # no intermediate, no temp file
    sidecar = json.loads(Path(f16["path"] + ".json").read_text())
    assert sidecar["sha256"] == f16["sha256"] and sidecar["llama_cpp_python"]

    from runtime.llamacpp import open_llama

    llm = open_llama(f16["path"], n_ctx=256, verbose=False, n_threads=2)
    reply = llm.create_chat_completion(messages=[{"role": "user", "content": "高血压"}], max_tokens=8, temperature=0)
    assert reply["choices"][0]["finish_reason"] in ("stop", "length") and reply["usage"]["completion_tokens"] >= 1
    llm.close()


def test_llama3_cli_gguf_and_verify_json(llama3_merged, probes_file, tmp_path, capsys):
    """Llama layout: llama.cpp permutes q/k on conversion; a q/k mix-up would show as a large KL here."""
    from converter.cli import main
    from runtime.gguf_header import read_gguf_info

    target = tmp_path / "llama3-f16.gguf"
    assert main(["gguf", str(llama3_merged), "--out", str(target), "--type", "f16", "--probes", str(probes_file),
                 "--max-new-tokens", "8", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records[0]["path"] == str(target) and records[0]["verify"]["passed"]
    info = read_gguf_info(target)
    assert info.architecture == "llama" and "<|eot_id|>" in info.chat_template

    assert main(["verify", "--hf", str(llama3_merged), "--gguf", str(target), "--probes", str(probes_file),
                 "--max-new-tokens", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"top1_agreement", "kl_mean", "kl_max", "greedy_match"} <= report.keys()
    assert report["kl_mean"] < 1e-3 and report["top1_agreement"] >= 0.97
    # <|eot_id|> closes the turn in this template, not the tokenizer's EOS <|end_of_text|>: llama.cpp must stop there.
    assert report["end_of_turn_stops"] and report["end_of_turn_id"] != info.eos_token_id
    assert report["finetune"]["kept"] > 0.95


def test_skipped_adapter_is_refused_and_a_wrong_merge_fails_verify(tiny_qwen2_real, qwen2_stages, qwen2_merged,
                                                                    probes_file, tmp_path, capsys):
    from converter.cli import main
    from converter.gguf import export
    from converter.merge import check_merge, merge

    stage1, stage2 = qwen2_stages
    with pytest.raises(ConvertError, match="earlier stage"):
        merge(tiny_qwen2_real, [stage2], tmp_path / "refused")
    with pytest.raises(ConvertError, match="training order|earlier stage"):
        merge(tiny_qwen2_real, [stage2, stage1], tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    wrong = tmp_path / "wrong"
    merge(tiny_qwen2_real, [stage2], wrong, check=False)  # stage 1 skipped on purpose
    assert not check_merge(wrong, tiny_qwen2_real, [stage1, stage2])["passed"]
    [rec] = export(wrong, tmp_path / "wrong.gguf", ["f16"], verify=False)
    code = main(["verify", "--hf", str(qwen2_merged), "--gguf", rec["path"], "--probes", str(probes_file),
                 "--max-new-tokens", "8", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["passed"]
    assert report["top1_agreement"] < 0.5 and report["kl_mean"] > 0.1
    assert report["finetune"]["kept"] < 0.5  # the skipped stage's share of the fine-tune is gone


def test_short_finetune_lost_under_q4_k_m_is_rejected(tmp_path_factory, qwen_tokenizer_dir, probes_file):
    """The case from the 0.5B: a light fine-tune vanishes under Q4_K_M; f16 keeps it; q4_k_m is not written."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from converter.gguf import export
    from converter.merge import merge
    from tests.converter.conftest import DIMS, _save_model

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    torch.manual_seed(3)
    base = _save_model(Qwen2ForCausalLM(Qwen2Config(**DIMS, eos_token_id=tokenizer.eos_token_id)), tokenizer,
                       tmp_path_factory.mktemp("light_base"))
    stages = make_stage_adapters(base, tmp_path_factory.mktemp("light_runs"), std=0.01)
    merged = tmp_path_factory.mktemp("light") / "merged"
    merge(base, list(stages), merged)
    out = tmp_path_factory.mktemp("light_gguf")
    with pytest.raises(ConvertError, match="lost the fine-tune") as err:
        export(merged, out, ["f16", "q4_k_m"], probes_file=str(probes_file), max_new_tokens=8, keep_failed=True,
               thresholds={"q4_k_m": TINY_QUANT_LIMITS})
    assert "merged-q4_k_m.gguf failed verification" in str(err.value)
    assert not (out / "merged-q4_k_m.gguf").exists() and (out / "merged-q4_k_m.rejected.gguf").exists()
    ft = json.loads((out / "merged-f16.gguf.json").read_text())["verify"]["finetune"]
    assert ft["kept"] > 0.9 and 0.005 < ft["ft_kl_mean"] < 1.0  # f16 keeps the light fine-tune


def test_clear_errors(tiny_qwen2_real, tiny_llama3, qwen2_stages, qwen2_merged, tmp_path):
    from converter.checks import architecture, check_tokenizer_files, ensure_disk
    from converter.gguf import export
    from converter.merge import merge

    # unsupported architecture
    odd = copy_tree(tiny_qwen2_real, tmp_path / "odd")
    config = json.loads((odd / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConvertError, match="unsupported architecture GPT2LMHeadModel"):
        architecture(odd)
    with pytest.raises(ConvertError, match="unsupported architecture"):
        export(odd, tmp_path / "o", ["f16"], verify=False)
    # missing tokenizer files
    bare = copy_tree(qwen2_merged, tmp_path / "bare")
    (bare / "tokenizer.json").unlink()
    with pytest.raises(ConvertError, match="missing tokenizer files.*tokenizer.json"):
        check_tokenizer_files(bare)
    # adapters trained on another base
    with pytest.raises(ConvertError, match="trained on another base model"):
        merge(tiny_llama3, list(qwen2_stages), tmp_path / "m")
    assert not (tmp_path / "m").exists()
    # not enough disk
    with pytest.raises(ConvertError, match="not enough disk"):
        ensure_disk(tmp_path, 1 << 60, "a model")


def test_interrupted_conversion_leaves_no_file(qwen2_merged, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from converter.gguf import export

    broken = copy_tree(qwen2_merged, tmp_path / "broken")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # as if the copy was cut off
    with pytest.raises(ConvertError, match="cannot read .*model.safetensors"):
        export(broken, tmp_path / "never", ["f16"], verify=False)

    # Killed while llama.cpp's converter is writing: no GGUF, no temporary file stays behind.
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "converter.cli", "gguf", str(qwen2_merged), "--out", str(out),
                             "--type", "f16", "--no-verify"], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and any(out.glob(".*.tmp"))):
        time.sleep(0.2)
    assert any(out.glob(".*.tmp")), "the export never started writing"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    assert list(out.iterdir()) == []
