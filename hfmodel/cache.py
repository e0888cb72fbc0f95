"""A base model as an HF directory: itself, or the dequantised form of a GGUF, cached.

A base model is an HF directory or a GGUF file. transformers can dequantise a GGUF, but that takes
~50 s for the 0.5B (and ~2 min for the 1.5B), so the result is converted once into a plain
safetensors directory cached under ``<models dir>/.hf-cache/<name>-<sha256 prefix>/`` and reused.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from medcore.atomic import atomic_dir
from medcore.models import ModelError, check_gguf_header, models_dir, resolve_model, sha256_file

log = logging.getLogger(__name__)


def gguf_cache(path: Path, cache_root: str | os.PathLike[str] | None) -> tuple[Path, str]:
    """Where the dequantised form of a GGUF file lives (keyed by its sha256), and that sha256."""
    check_gguf_header(path)
    digest = file_sha256(path)
    cache = Path(cache_root) if cache_root else models_dir() / ".hf-cache"
    return cache / f"{path.stem}-{digest[:16]}", digest


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in this process."""
    return _cached_sha256(str(path), path.stat().st_size, path.stat().st_mtime_ns)


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
    target, digest = gguf_cache(path, cache_root)
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
    full, _ = gguf_cache(path, cache_root)
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
