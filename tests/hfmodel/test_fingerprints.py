"""Identities of base models and adapters, and HF directories standing for themselves."""

from __future__ import annotations

import json
import shutil

import pytest

from hfmodel.cache import hf_dir_for, tokenizer_dir_for
from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint
from medcore.models import ModelError


def test_base_fingerprint_of_an_hf_directory(tiny_qwen2_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_qwen2_dir, copy)
    assert base_fingerprint(copy) == base_fingerprint(tiny_qwen2_dir)
    config = json.loads((copy / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert base_fingerprint(copy) != base_fingerprint(tiny_qwen2_dir)
    # A directory dequantised from a GGUF is that GGUF, whatever its own files.
    (copy / "tsx_source.json").write_text(json.dumps({"gguf": "x.gguf", "sha256": "ab" * 32}))
    assert base_fingerprint(copy) == "ab" * 32


def test_adapter_fingerprint_follows_the_weights(tiny_stages, tmp_path):
    copy = tmp_path / "adapter"
    shutil.copytree(tiny_stages[0], copy)
    assert adapter_fingerprint(copy) == adapter_fingerprint(tiny_stages[0]) != adapter_fingerprint(tiny_stages[1])
    weights = copy / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert adapter_fingerprint(copy) != adapter_fingerprint(tiny_stages[0])


def test_an_hf_directory_is_its_own_model_and_tokenizer_dir(tiny_qwen2_dir, tmp_path):
    assert hf_dir_for(tiny_qwen2_dir) == tiny_qwen2_dir == tokenizer_dir_for(tiny_qwen2_dir)
    with pytest.raises(ModelError, match="no config.json"):
        hf_dir_for(tmp_path)
