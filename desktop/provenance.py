"""Provenance of a translation: which model file (by hash), which glossaries, when, how.

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
                     when: datetime | None = None) -> dict[str, Any]:
    """The record attached to every translation (window export and ``translate --json``)."""
    model_path = Path(model_path)
    return {
        "model_file": model_path.name,
        "model_name": model_name,
        "model_sha256": sha256 or model_sha256(model_path),
        "glossaries": [Path(g).name for g in glossary_files],
        "direction": direction,
        "time": (when or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "prompt_contract_version": load_contract().version,
        "app": f"tsx-medtrans {__version__}",
        "settings": dict(options or {}),
    }
