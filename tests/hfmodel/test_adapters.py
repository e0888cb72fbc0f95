"""Stage adapters on the tiny Qwen2: the one stacking function, merged or live, computes one model."""

from __future__ import annotations

import shutil

import pytest
import torch

from hfmodel.adapters import read_stage_meta, stack_adapters
from hfmodel.loading import load_for_inference, load_model
from medcore.models import ModelError

IDS = torch.tensor([[5, 17, 230, 42, 8, 99, 311]])


def _logits(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(IDS).logits[0]


@pytest.fixture(scope="module")
def base_logits(tiny_qwen2_dir):
    return _logits(load_model(tiny_qwen2_dir))


@pytest.mark.parametrize("live", ["none", "last", "all"])
def test_merged_or_live_the_stack_computes_the_same(tiny_qwen2_dir, tiny_stages, base_logits, live):
    merged = _logits(stack_adapters(load_model(tiny_qwen2_dir), tiny_stages, live="none"))
    model = stack_adapters(load_model(tiny_qwen2_dir), tiny_stages, live=live)
    assert (merged - base_logits).abs().max() > 1e-3  # the adapters change the model
    torch.testing.assert_close(_logits(model), merged, atol=1e-4, rtol=1e-4)
    live_names = sorted(getattr(model, "peft_config", {}))
    assert live_names == {"none": [], "last": ["stage2"], "all": ["stage1", "stage2"]}[live]
    if live == "all":  # adapters off: the untouched base
        with model.disable_adapter():
            torch.testing.assert_close(_logits(model), base_logits, atol=1e-5, rtol=1e-5)


def test_load_for_inference_merges_the_stack(tiny_qwen2_dir, tiny_stages):
    model, tokenizer = load_for_inference(tiny_qwen2_dir, list(tiny_stages))
    assert not model.training and not hasattr(model, "peft_config") and tokenizer.chat_template
    kept, _ = load_for_inference(tiny_qwen2_dir, list(tiny_stages), merge=False)
    assert list(kept.peft_config) == ["stage2"]


def test_not_an_adapter_or_an_unknown_mode_is_refused(tiny_qwen2_dir, tiny_stages, tmp_path):
    assert read_stage_meta(tiny_stages[1])["stage"] == 2
    with pytest.raises(ModelError, match="not a LoRA adapter directory"):
        stack_adapters(load_model(tiny_qwen2_dir), [tmp_path])
    with pytest.raises(ValueError, match="choose one of none, last, all"):
        stack_adapters(load_model(tiny_qwen2_dir), tiny_stages, live="some")
    bare = tmp_path / "bare"
    shutil.copytree(tiny_stages[0], bare)
    (bare / "tsx_stage.json").unlink()
    assert read_stage_meta(bare) == {}
