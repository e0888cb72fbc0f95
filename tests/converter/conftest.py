"""Tiny Qwen2 and Llama-3-style models with the real Qwen tokenizer, and two real stage adapters each.

llama.cpp's converter recognises a tokenizer by hashing how it pre-tokenizes a fixed text, so the
tiny models need a real one: the Qwen2.5 tokenizer read out of the bundled GGUF. The Llama model
gets it too, extended with Llama-3's header/end-of-turn special tokens and Llama-3's chat template,
so the Llama path (q/k permutation, <|eot_id|> as end of turn) is exercised for real.

The adapters are made with peft the way the trainer makes them (stage 1: r=16 on the MLP; stage 2,
on base+stage1 merged: r=8 on q/v) with random non-zero B matrices, so they really move the model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
DIMS = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": False,
        "initializer_range": 0.08, "vocab_size": 151936}


def _save_model(model, tokenizer, out: Path) -> Path:
    import torch

    # A random 64-wide model spreads its logits thinly over 151,936 tokens: near-ties everywhere make
    # top-1 meaningless. A wider output layer gives confident, pretrained-like distributions.
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_qwen2_real(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    torch.manual_seed(1)
    config = Qwen2Config(**DIMS, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
                         pad_token_id=tokenizer.pad_token_id)
    return _save_model(Qwen2ForCausalLM(config), tokenizer, tmp_path_factory.mktemp("tiny_qwen2_real"))


@pytest.fixture(scope="session")
def tiny_llama3(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    tokenizer.add_special_tokens({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
                                  "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tokenizer.chat_template = LLAMA3_TEMPLATE
    torch.manual_seed(2)
    config = LlamaConfig(**{**DIMS, "vocab_size": len(tokenizer)}, rope_theta=500000.0, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=None)
    return _save_model(LlamaForCausalLM(config), tokenizer, tmp_path_factory.mktemp("tiny_llama3"))


def _randomise_lora_b(model, std: float, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            with torch.no_grad():
                param.copy_(torch.randn(param.shape, generator=gen) * std)


def make_stage_adapters(base: Path, out: Path, std: float = 0.15) -> tuple[Path, Path]:
    """Stage 1 (r=16 gate/up/down) on base, stage 2 (r=8 q/v) on base+stage1, with tsx_stage.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint

    fingerprint = base_fingerprint(base)
    stage1, stage2 = out / "stage1" / "adapter", out / "stage2" / "adapter"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    specs = [(stage1, 16, ["gate_proj", "up_proj", "down_proj"], []),
             (stage2, 8, ["q_proj", "v_proj"], [stage1])]
    for index, (target, r, modules, below) in enumerate(specs, start=1):
        torch.manual_seed(10 + index)
        lora = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=modules, task_type="CAUSAL_LM")
        peft_model = get_peft_model(model, lora)
        _randomise_lora_b(peft_model, std, seed=100 + index)
        peft_model.save_pretrained(target)
        meta = {"stage": index, "base": str(base), "base_fingerprint": fingerprint,  # as tsx-train writes it
                "stack": [str(d.resolve()) for d in below], "stack_sha256": [adapter_fingerprint(d) for d in below],
                "val_loss": 1.0, "step": 1, "lora": {"r": r, "alpha": 2 * r, "target_modules": modules}}
        (target / "tsx_stage.json").write_text(json.dumps(meta, indent=2))
        model = peft_model.merge_and_unload()  # stage 2 trains on base+stage1 merged
    return stage1, stage2


@pytest.fixture(scope="session")
def qwen2_stages(tmp_path_factory, tiny_qwen2_real) -> tuple[Path, Path]:
    return make_stage_adapters(tiny_qwen2_real, tmp_path_factory.mktemp("qwen2_runs"))


@pytest.fixture(scope="session")
def llama3_stages(tmp_path_factory, tiny_llama3) -> tuple[Path, Path]:
    return make_stage_adapters(tiny_llama3, tmp_path_factory.mktemp("llama3_runs"))


@pytest.fixture(scope="session")
def qwen2_merged(tmp_path_factory, tiny_qwen2_real, qwen2_stages) -> Path:
    from converter.merge import merge

    out = tmp_path_factory.mktemp("qwen2_merged") / "merged"
    merge(tiny_qwen2_real, list(qwen2_stages), out)
    return out


@pytest.fixture(scope="session")
def llama3_merged(tmp_path_factory, tiny_llama3, llama3_stages) -> Path:
    from converter.merge import merge

    out = tmp_path_factory.mktemp("llama3_merged") / "merged"
    merge(tiny_llama3, list(llama3_stages), out)
    return out


@pytest.fixture(scope="session")
def probes_file(tmp_path_factory) -> Path:
    """Two probes (one per direction) keep the CPU test budget; the CLI default has six."""
    path = tmp_path_factory.mktemp("probes") / "probes.yaml"
    path.write_text("probes:\n  - {direction: zh-en, source: 急性心肌梗死患者应尽快行经皮冠状动脉介入治疗。}\n"
                    "  - {direction: en-zh, source: Hypertension is a major risk factor for stroke.}\n", encoding="utf-8")
    return path


# Tiny random 64-wide models quantise far worse than pretrained ones (k-quants fall back to Q5_0 as
# 64 is not a multiple of 256, and nothing in random weights is redundant): for quantised files the
# tests judge the fine-tune survival and the template/tokenizer/end-of-turn checks, not top-1.
TINY_QUANT_LIMITS = {"top1": 0.0, "kl_mean": 10.0, "kl_max": 100.0, "greedy": 0.0}


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
