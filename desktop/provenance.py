"""Provenance of a translation: which model file (by hash), which glossaries, when, how.

With a tuned model the record also names the runtime adapters that were active (file, sha256,
stage, the PEFT adapter and training-data manifest they came from) and the base model's hash;
``base_only`` says the base translated alone although adapters were available (the comparison
switch).

The base model's hash comes from :func:`runtime.model_hash.model_sha256` (cached per file version).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from desktop import __version__
from medcore.prompt import load_contract
from runtime.model_hash import model_sha256


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
