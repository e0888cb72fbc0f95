"""First start of an installed app: make the system-wide model visible to this user, hash-checked.

The model package (``tsx-medtrans-model-qwen1.5b`` / the Windows installer's model component) puts
the GGUF beside the app, in ``<install dir>/models/`` (``/opt/tsx-medtrans/models``), read-only.
The app looks for its models in the user's models directory (``medcore.models.models_dir()``,
``~/.local/share/tsx-medtrans/models``). On each start this module:

1. finds the bundled models present in the system folder;
2. for each one the user does not already have, checks size and sha256 against
   ``medcore.models.BUNDLED`` (**the first run, and again whenever the system file changes**: the
   result is remembered per user in ``<models>/.system-models.json`` keyed by size and mtime);
3. links it into the user's folder (a symlink; a hard link or nothing where symlinks are not
   allowed, then ``TSX_MODELS_DIR`` points at the system folder for this process).

A model whose hash does not match is *not* linked: the app then says the model is missing, and
stderr says the file is damaged and which package to reinstall. Nothing here ever downloads.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

STATE_FILE = ".system-models.json"


def app_dir() -> Path:
    """Folder of the installed app (the executable's folder when frozen, else the repo root)."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent
    return Path(__file__).resolve().parent.parent


def system_models_dir() -> Path:
    env = os.environ.get("TSX_SYSTEM_MODELS_DIR")
    return Path(env) if env else app_dir() / "models"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _load_state(user_dir: Path) -> dict:
    try:
        return json.loads((user_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _link(target: Path, link: Path) -> str:
    """Make ``link`` point at ``target``; returns how ("symlink", "hardlink") or "" if impossible."""
    if link.is_symlink() or link.exists():
        link.unlink()
    try:
        link.symlink_to(target)
        return "symlink"
    except OSError:  # Windows without the symlink privilege
        pass
    try:
        os.link(target, link)
        return "hardlink"
    except OSError:
        return ""


def ensure_system_models(system_dir: Path | None = None, user_dir: Path | None = None, bundled=None,
                         log=None) -> list[dict]:
    """Verify and link the system models for this user; returns one record per system model."""
    from medcore.models import BUNDLED, models_dir, sha256_file

    system_dir = Path(system_dir) if system_dir else system_models_dir()
    user_dir = Path(user_dir) if user_dir else models_dir()
    bundled = BUNDLED if bundled is None else bundled
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    records: list[dict] = []
    if not system_dir.is_dir():
        return records
    state = _load_state(user_dir)
    changed = False
    for model in bundled.values():
        source = system_dir / model.filename
        if not source.is_file():
            continue
        target = user_dir / model.filename
        record = {"model": model.name, "source": str(source), "target": str(target)}
        records.append(record)
        if target.exists() and not target.is_symlink() and target.resolve() != source.resolve():
            record["action"] = "user has own copy"  # fetched by tsx-models: the user's file wins
            continue
        key = _key(source)
        seen = state.get(model.filename, {})
        if seen.get("key") == key and seen.get("ok") and target.exists():
            record["action"] = "already verified"
            continue
        t0 = time.perf_counter()
        size_ok = source.stat().st_size == model.size
        digest = sha256_file(source) if size_ok else None
        record["hash_seconds"] = round(time.perf_counter() - t0, 2)
        ok = size_ok and digest == model.sha256
        state[model.filename] = {"key": key, "ok": ok, "sha256": digest, "checked": time.strftime("%Y-%m-%dT%H:%M:%S")}
        changed = True
        if not ok:
            record["action"] = "damaged"
            log(f"tsx-medtrans: the installed model {source} is damaged (size or sha256 does not match "
                f"{model.name}); it was not used. Reinstall the model package.")
            if target.is_symlink():
                target.unlink()
            continue
        user_dir.mkdir(parents=True, exist_ok=True)
        how = _link(source, target)
        record["action"] = f"verified, {how}" if how else "verified, used in place"
        if not how:
            os.environ.setdefault("TSX_MODELS_DIR", str(system_dir))
        log(f"tsx-medtrans: first start: verified {model.filename} (sha256 in {record['hash_seconds']} s)")
    if changed:
        try:
            user_dir.mkdir(parents=True, exist_ok=True)
            (user_dir / STATE_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        except OSError as exc:  # a read-only home must not stop the app; we re-check next time
            log(f"tsx-medtrans: could not remember the model check ({exc})")
    return records
