"""Stable identities: of a base model (recorded with every adapter trained on it) and of an adapter."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from hfmodel.cache import file_sha256
from medcore.models import resolve_model, sha256_file


def base_fingerprint(base: str | os.PathLike[str]) -> str:
    """A stable identity for a base model, recorded with every adapter trained on it.

    A GGUF file: its sha256. An HF directory dequantised from a GGUF: that GGUF's sha256 (so the
    file and its cache agree). Any other HF directory: sha256 over config.json and the names and
    sizes of its weight files (hashing gigabytes of weights for an identity check is not worth it).
    """
    path = resolve_model(str(base), default="qwen2.5-coder-0.5b")
    if path.is_file():
        return file_sha256(path)
    source = path / "tsx_source.json"
    if source.exists():
        return json.loads(source.read_text())["sha256"]
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weight in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(f"{weight.name}:{weight.stat().st_size}".encode())
    return digest.hexdigest()


def adapter_fingerprint(adapter: str | os.PathLike[str]) -> str:
    """sha256 over an adapter's config and weight files (names and contents)."""
    adapter = Path(adapter)
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        path = adapter / name
        if path.exists():
            digest.update(name.encode())
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()
