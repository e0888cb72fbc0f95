"""Loading base models and stage adapters, the same way for training, evaluation and export.

A base model is an HF directory or a GGUF file. transformers can dequantise a GGUF, but that takes
~50 s for the 0.5B (and ~2 min for the 1.5B), so the result is converted once into a plain
safetensors directory cached under ``<models dir>/.hf-cache/<sha256 prefix>/`` and reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from medcore.atomic import atomic_dir
from medcore.models import ModelError, check_gguf_header, models_dir, resolve_model, sha256_file

log = logging.getLogger(__name__)
STAGE_META = "tsx_stage.json"  # written beside every adapter: which base and which earlier stages


def is_gguf(path: str | os.PathLike[str]) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() == ".gguf"


def _gguf_cache(path: Path, cache_root: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """Where the dequantised form of a GGUF file lives (keyed by its sha256), and that sha256."""
    check_gguf_header(path)
    digest = _cached_sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns)
    cache = Path(cache_root) if cache_root else models_dir() / ".hf-cache"
    return cache / f"{path.stem}-{digest[:16]}", digest


@functools.lru_cache(maxsize=16)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    # Keyed by size and mtime: tokenizer, model and fingerprint all ask for the same file's hash.
    return sha256_file(path)


def _is_full_cache(directory: Path) -> bool:
    return (directory / "config.json").exists() and (directory / "tsx_source.json").exists()


def hf_dir_for(base: str | os.PathLike[str], cache_root: str | os.PathLike[str] | None = None) -> Path:
    """An HF model directory for ``base``: itself if it is one, else the cached dequantised GGUF."""
    path = resolve_model(str(base), default="qwen2.5-coder-0.5b")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} is not a transformers model directory (no config.json)")
        return path
    target, digest = _gguf_cache(path, cache_root)
    if _is_full_cache(target):
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantising %s into %s (once; later loads reuse it)", path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The GGUF loader leaves a quantizer marker behind; without clearing it save_pretrained
    # refuses or writes a config that claims a quantisation the weights no longer have.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "tsx_source.json").write_text(json.dumps({"gguf": str(path), "sha256": digest}, indent=2))
    return target


def tokenizer_dir_for(base: str | os.PathLike[str], cache_root: str | os.PathLike[str] | None = None) -> Path:
    """A directory holding only the tokenizer of ``base``: cheap for a GGUF (no weights dequantised).

    Reuses the full dequantised cache when it exists; otherwise reads the tokenizer out of the GGUF
    once and caches it beside the model caches.
    """
    path = resolve_model(str(base), default="qwen2.5-coder-0.5b")
    if path.is_dir():
        return path
    full, _ = _gguf_cache(path, cache_root)
    if _is_full_cache(full):
        return full
    target = full.with_name(full.name + "-tokenizer")
    if (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    with atomic_dir(target) as tmp:
        tokenizer.save_pretrained(tmp)
    return target


def base_fingerprint(base: str | os.PathLike[str]) -> str:
    """A stable identity for a base model, recorded with every adapter trained on it.

    A GGUF file: its sha256. An HF directory dequantised from a GGUF: that GGUF's sha256 (so the
    file and its cache agree). Any other HF directory: sha256 over config.json and the names and
    sizes of its weight files (hashing gigabytes of weights for an identity check is not worth it).
    """
    path = resolve_model(str(base), default="qwen2.5-coder-0.5b")
    if path.is_file():
        return _cached_sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns)
    source = path / "tsx_source.json"
    if source.exists():
        return json.loads(source.read_text())["sha256"]
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weight in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weight.name}:{weight.stat().st_size}".encode())
    return digest.hexdigest()


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


def read_stage_meta(adapter: str | os.PathLike[str]) -> dict:
    path = Path(adapter) / STAGE_META
    if not (Path(adapter) / "adapter_config.json").exists():
        raise ModelError(f"{adapter} is not a LoRA adapter directory (no adapter_config.json)")
    return json.loads(path.read_text()) if path.exists() else {}


def apply_adapters(model, adapters: list[str | os.PathLike[str]], merge_last: bool = False):
    """Apply stage adapters in training order. Earlier stages are merged into the weights (as the
    next stage was trained on top of the merged model); the last one stays a LoRA unless
    ``merge_last``. Returns the model (a PeftModel if the last adapter is kept)."""
    from peft import PeftModel

    for index, adapter in enumerate(adapters):
        read_stage_meta(adapter)
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
        if index < len(adapters) - 1 or merge_last:
            model = model.merge_and_unload()
    return model


def load_for_inference(base: str | os.PathLike[str], adapters: list[str | os.PathLike[str]] | None = None,
                       dtype: Any = None, device: Any = None, attn: str = "sdpa", merge: bool = True):
    """Model + tokenizer for translation/evaluation: base with the given stage adapters applied."""
    tokenizer = load_tokenizer(base)
    model = load_model(base, dtype=dtype, attn=attn)
    if adapters:
        model = apply_adapters(model, adapters, merge_last=merge)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer
