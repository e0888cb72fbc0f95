"""Fixtures for the attention module: a tiny real model with real stage adapters, built locally."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

with contextlib.suppress(ImportError):  # before pytest-qt creates the QApplication; else web tests skip
    import PySide6.QtWebEngineWidgets  # noqa: F401


@pytest.fixture(scope="session")
def tiny_adapters(tmp_path_factory, tiny_qwen2_dir) -> list[Path]:
    """Two real LoRA stage adapters for the tiny Qwen2 (stage 1: MLP r16, stage 2: q/v r8).

    LoRA starts with B = 0 (no change at all); ``init_lora_weights=False`` gives random B so the
    adapters really change the attention, as trained ones do.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny_adapters")
    specs = [("stage1", 16, ["gate_proj", "up_proj", "down_proj"]), ("stage2", 8, ["q_proj", "v_proj"])]
    dirs = []
    for seed, (stage, rank, targets) in enumerate(specs):
        torch.manual_seed(100 + seed)
        model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=targets, init_lora_weights=False)
        peft_model = get_peft_model(model, config)
        with torch.no_grad():  # make the change large enough to see in attention weights
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.mul_(20.0)
        target = out / stage / "adapter"
        peft_model.save_pretrained(target)
        (target / "tsx_stage.json").write_text(json.dumps({
            "stage": stage, "base": str(tiny_qwen2_dir), "stack": [str(d) for d in dirs],
            "val_loss": 0.0, "step": 0, "lora": {"r": rank, "targets": targets}}))
        dirs.append(target)
    return dirs


@pytest.fixture(scope="session")
def tiny_engine(tiny_qwen2_dir):
    from desktop.attention.engine import TransformersAttentionEngine

    return TransformersAttentionEngine(tiny_qwen2_dir)


# A real medical pair (WMT18 Medline style) used across the tests.
ZH = "患者确诊为急性心肌梗死，行经皮冠状动脉介入治疗。"
EN = "The patient was diagnosed with acute myocardial infarction and underwent percutaneous coronary intervention."


@pytest.fixture(scope="session")
def tiny_result(tiny_engine):
    return tiny_engine.compute(ZH, EN, "zh-en")
