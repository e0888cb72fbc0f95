"""Tokenizer and model of a base (GGUF or HF directory) in transformers, on a chosen device and dtype."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hfmodel.adapters import stack_adapters
from hfmodel.cache import hf_dir_for, tokenizer_dir_for
from medcore.models import ModelError


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AMX-BF16 or AVX512-BF16); elsewhere bf16 is emulated
    and slower than fp32."""
    import torch

    try:
        caps = torch.cpu.get_capabilities()
    except AttributeError:  # torch < 2.4: read the kernel's flags
        try:
            flags = Path("/proc/cpuinfo").read_text().split()
        except OSError:
            return False
        return "amx_bf16" in flags or "avx512_bf16" in flags
    return bool(caps.get("amx_bf16") or caps.get("avx512_bf16"))


def pick_device_dtype(device: str | None = None, bf16: bool | None = None,
                      cpu_bf16: bool = False) -> tuple[Any, Any]:
    """CUDA with bf16 when present; on a CPU fp32, or with ``cpu_bf16`` (training) bf16 where the CPU
    multiplies it natively. Inference on a CPU stays fp32 so it matches llama.cpp's output."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if bf16 is None:
        bf16 = torch.cuda.is_bf16_supported() if dev.type == "cuda" else cpu_bf16 and cpu_has_fast_bf16()
    return dev, (torch.bfloat16 if bf16 else torch.float32)


class _DropSpuriousMistralWarning(logging.Filter):
    """transformers 4.57.3-4.57.x warns about a Mistral regex for any local tokenizer whose config.json
    it wrote itself (a version check bug); the Qwen tokenizer is not affected, so the warning only
    alarms users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "incorrect regex pattern" not in record.getMessage()


def load_tokenizer(base: str | os.PathLike[str]):
    from transformers import AutoTokenizer

    logging.getLogger("transformers.tokenization_utils_base").addFilter(_DropSpuriousMistralWarning())
    directory = tokenizer_dir_for(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as exc:
        raise ModelError(f"no usable tokenizer in {directory}: {exc}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"the tokenizer in {directory} has no chat template; the prompt contract needs one")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(base: str | os.PathLike[str], dtype: Any = None, device: Any = None, attn: str = "sdpa"):
    """The base model as a transformers causal LM (no adapters)."""
    import torch
    from transformers import AutoModelForCausalLM

    directory = hf_dir_for(base)
    model = AutoModelForCausalLM.from_pretrained(
        directory, dtype=dtype or torch.float32, attn_implementation=attn
    )
    if device is not None:
        model.to(device)
    return model


def load_for_inference(base: str | os.PathLike[str], adapters: Sequence[str | os.PathLike[str]] | None = None,
                       dtype: Any = None, device: Any = None, attn: str = "sdpa", merge: bool = True):
    """Model + tokenizer for translation/evaluation: base with the given stage adapters applied
    (all merged, or with ``merge=False`` the last one kept as a LoRA)."""
    tokenizer = load_tokenizer(base)
    model = load_model(base, dtype=dtype, attn=attn)
    if adapters:
        model = stack_adapters(model, adapters, live="none" if merge else "last")
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer
