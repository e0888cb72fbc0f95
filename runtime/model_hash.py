"""A model file's sha256, cached: hashing a 1 GB model takes seconds, so it is done once per file version.

Digests are cached by (path, size, mtime) in ``$XDG_CACHE_HOME/tsx-medtrans/model-hashes.json``; a
changed file gets a fresh digest. The engine checks runtime adapters against the base with it, and
translations' provenance names the base by it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from medcore.atomic import write_json
from medcore.models import sha256_file


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
