"""First start: the system model is hash-checked once per user and linked into the user's folder."""

from __future__ import annotations

import hashlib
import os

from medcore.models import BundledModel


def _model(tmp_path, content: bytes) -> tuple[BundledModel, object]:
    system = tmp_path / "opt" / "models"
    system.mkdir(parents=True)
    (system / "m.gguf").write_bytes(content)
    model = BundledModel(name="m", filename="m.gguf", package_prefix="x-part", parts=1, version="1",
                         sha256=hashlib.sha256(content).hexdigest(), size=len(content), description="test")
    return model, system


def test_links_verified_model_and_remembers(tmp_path, firstrun):
    model, system = _model(tmp_path, b"GGUF" + os.urandom(4096))
    user = tmp_path / "home" / "models"
    logs: list[str] = []
    first = firstrun.ensure_system_models(system, user, {"m": model}, log=logs.append)
    assert first[0]["action"] == "verified, symlink"
    assert (user / "m.gguf").is_symlink() and (user / "m.gguf").resolve() == (system / "m.gguf").resolve()
    assert "hash_seconds" in first[0] and any("verified m.gguf" in line for line in logs)
    second = firstrun.ensure_system_models(system, user, {"m": model}, log=logs.append)
    assert second[0]["action"] == "already verified" and "hash_seconds" not in second[0]


def test_damaged_model_is_not_linked(tmp_path, firstrun):
    model, system = _model(tmp_path, b"GGUF" + b"\0" * 4096)
    user = tmp_path / "home" / "models"
    assert firstrun.ensure_system_models(system, user, {"m": model}, log=lambda m: None)[0]["action"] == "verified, symlink"
    # same size, different bytes, newer mtime: as after a bad upgrade or disk damage
    (system / "m.gguf").write_bytes(b"GGUF" + b"\1" * 4096)
    os.utime(system / "m.gguf", ns=(1, 10**18))
    logs: list[str] = []
    record = firstrun.ensure_system_models(system, user, {"m": model}, log=logs.append)[0]
    assert record["action"] == "damaged"
    assert not (user / "m.gguf").exists() and not (user / "m.gguf").is_symlink()
    assert any("damaged" in line and "Reinstall" in line for line in logs)


def test_users_own_copy_wins(tmp_path, firstrun):
    model, system = _model(tmp_path, b"GGUF" + b"\2" * 100)
    user = tmp_path / "home" / "models"
    user.mkdir(parents=True)
    (user / "m.gguf").write_bytes(b"GGUF own")
    record = firstrun.ensure_system_models(system, user, {"m": model}, log=lambda m: None)[0]
    assert record["action"] == "user has own copy" and (user / "m.gguf").read_bytes() == b"GGUF own"


def test_no_system_folder_is_a_no_op(tmp_path, firstrun):
    assert firstrun.ensure_system_models(tmp_path / "absent", tmp_path / "u", {}, log=lambda m: None) == []
    assert not (tmp_path / "u").exists()
