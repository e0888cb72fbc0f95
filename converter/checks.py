"""Checks that fail early with a clear message instead of deep inside torch or llama.cpp."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from converter import ConvertError

# Architectures this converter has been proven on (merge -> GGUF -> verify in tests). llama.cpp
# converts many more, but an export nobody verified is what this tool exists to prevent.
SUPPORTED_ARCHITECTURES = {
    "Qwen2ForCausalLM": "qwen2",
    "LlamaForCausalLM": "llama",  # LLaMA-2/3 layout; llama.cpp un-permutes q/k on conversion
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")  # one of them, plus tokenizer_config.json


def architecture(model_dir: str | os.PathLike[str]) -> str:
    """The HF architecture of a model directory; :class:`ConvertError` if unsupported."""
    config = Path(model_dir) / "config.json"
    if not config.exists():
        raise ConvertError(f"{model_dir} is not a transformers model directory (no config.json)")
    archs = json.loads(config.read_text()).get("architectures") or []
    for arch in archs:
        if arch in SUPPORTED_ARCHITECTURES:
            return arch
    raise ConvertError(
        f"unsupported architecture {', '.join(archs) or '(none in config.json)'} in {model_dir}; "
        f"tsx-convert supports {', '.join(SUPPORTED_ARCHITECTURES)}")


def check_tokenizer_files(model_dir: str | os.PathLike[str]) -> None:
    """The files llama.cpp's converter needs to rebuild the vocabulary and chat template."""
    model_dir = Path(model_dir)
    missing = []
    if not any((model_dir / name).exists() for name in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    config = model_dir / "tokenizer_config.json"
    if not config.exists():
        missing.append("tokenizer_config.json")
    if missing:
        raise ConvertError(f"missing tokenizer files in {model_dir}: {', '.join(missing)} "
                           "(copy them from the base model; without them the GGUF cannot tokenize)")
    has_template = (model_dir / "chat_template.jinja").exists() or (model_dir / "chat_template.json").exists() \
        or "chat_template" in json.loads(config.read_text(encoding="utf-8"))
    if not has_template:
        raise ConvertError(f"{model_dir} has no chat template (tokenizer_config.json or chat_template.jinja); "
                           "the app's prompts need the one the model was trained with")


def weights_size(model_dir: str | os.PathLike[str]) -> int:
    model_dir = Path(model_dir)
    return sum(p.stat().st_size for p in list(model_dir.glob("*.safetensors")) + list(model_dir.glob("*.bin")))


def ensure_disk(directory: str | os.PathLike[str], need_bytes: int, what: str) -> None:
    """Refuse to start a job that would fill the disk halfway through."""
    directory = Path(directory)
    probe = directory
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise ConvertError(f"not enough disk in {probe} for {what}: needs ~{need_bytes / 1e9:.2f} GB free, "
                           f"{free / 1e9:.2f} GB are")
