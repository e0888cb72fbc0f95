"""Provenance of a translation: which model file (by hash), which glossaries, when, how.

With a tuned model the record also names the runtime adapters that were active (file, sha256,
stage, the PEFT adapter and training-data manifest they came from) and the base model's hash;
``base_only`` says the base translated alone although adapters were available (the comparison
switch).

Hashing a 1 GB model takes seconds, so digests are cached by (path, size, mtime) in
``$XDG_CACHE_HOME/tsx-medtrans/model-hashes.json``; a changed file gets a fresh digest.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from desktop import __version__
from medcore.atomic import write_json
from medcore.models import sha256_file
from medcore.prompt import load_contract


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tsx-medtrans" / "model-hashes.json"


def model_sha256(path: str | os.PathLike[str], use_cache: bool = True) -> str:
    """sha256 of a model file, from the cache when the file has not changed since it was hashed."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_path = _cache_file()
    cache: dict[str, str] = {}
    if use_cache:
        try:
            cache = json.loads(cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        if key in cache:
            return cache[key]
    digest = sha256_file(path)
    if use_cache:
        # Keep only current entries for this path (old sizes/mtimes are stale).
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
        cache[key] = digest
        with contextlib.suppress(OSError):  # a read-only home must not stop a translation
            write_json(cache_path, cache)
    return digest


def build_provenance(model_path: str | os.PathLike[str], model_name: str, glossary_files: list[str],
                     direction: str, options: dict[str, Any] | None = None, sha256: str | None = None,
                     when: datetime | None = None, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record attached to every translation (window export and ``translate --json``).

    ``model_path`` is the base GGUF; ``model`` the engine's ``runtime_provenance()`` at translation
    time (``TranslationResult.model``): tuned model, active adapters, data manifest.
    """
    model_path = Path(model_path)
    model = model or {}
    digest = sha256 or model.get("base_sha256") or model_sha256(model_path)
    adapters = list(model.get("adapters") or [])
    return {
        "model_file": model_path.name,
        "model_name": model_name,
        "model_sha256": digest,
        "base_sha256": digest,
        "tuned_model": model.get("tuned_model"),
        "base_only": bool(model.get("base_only")),
        "adapters": [{k: a.get(k) for k in ("file", "sha256", "stage", "scale", "peft_sha256", "data_manifest_sha256")}
                     for a in adapters],
        "data_manifest_sha256": model.get("data_manifest_sha256"),
        "glossaries": [Path(g).name for g in glossary_files],
        "direction": direction,
        "time": (when or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "prompt_contract_version": load_contract().version,
        # whether the prompts carried the glossary's required terms (the contract's term block)
        "term_block": bool(model.get("term_block")),
        "app": f"tsx-medtrans {__version__}",
        "settings": dict(options or {}),
    }
