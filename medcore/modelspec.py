"""Which model translates, as data: bundled bases, tuned-model specs, and the default.

A **tuned model** is a bundled (quantised) base plus the stage adapters llama.cpp applies to it at
run time (:mod:`medcore.lora`), described by a YAML spec in ``resources/models/<name>.yaml``::

    name: tsx-medtrans-1.5b
    description: Qwen2.5-Coder-1.5B + stage 1 (terms) + stage 2 (sentences)
    base: qwen2.5-coder-1.5b             # a bundled model name, or a GGUF path relative to this file
    base_sha256: cc324af0…               # checked against the adapters' recorded base
    adapters:                            # GGUF LoRAs (tsx-convert lora), training order, relative paths
      - {file: adapters/tsx-medtrans-1.5b/stage1.lora.gguf, sha256: …}
      - {file: adapters/tsx-medtrans-1.5b/stage2.lora.gguf, sha256: …}
    provenance: {data_manifest_sha256: …, …}   # free-form: how it was trained and evaluated

**The default** of the app, ``tsx-medtrans translate``, ``make run``, the installer and the
self-test is the one line ``default:`` of ``resources/models/default.yaml``: a bundled model name or
a spec name. Making a tuned model the default is changing that line (and committing its spec and
adapter files).

Everywhere a model is asked for (``-m``, the app's model list), :func:`resolve` accepts a spec name,
a spec file, a bundled model name or a GGUF path, and returns the base GGUF with its adapters;
``base_only=True`` drops the adapters (the "translate with the base model" switch). No Qt, no torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcore.models import BUNDLED, ModelError, resolve_model

SPEC_SUFFIXES = (".yaml", ".yml")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def specs_dir() -> Path:
    """``resources/models`` (``$TSX_MODEL_SPECS`` overrides it: tests, a site's own tuned models)."""
    if env := os.environ.get("TSX_MODEL_SPECS"):
        return Path(env).expanduser()
    from medcore.resources import RESOURCES_DIR

    return Path(RESOURCES_DIR) / "models"


@dataclass(frozen=True)
class AdapterEntry:
    file: Path          # absolute
    sha256: str | None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    base: str
    base_sha256: str | None
    adapters: tuple[AdapterEntry, ...]
    description: str = ""
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def base_path(self) -> Path:
        if self.base in BUNDLED:
            return resolve_model(self.base)
        path = Path(self.base).expanduser()
        return resolve_model(str(path if path.is_absolute() else self.path.parent / path))

    def missing(self) -> list[str]:
        """What is not installed: the base model and/or adapter files (empty when usable)."""
        out = []
        try:
            self.base_path()
        except ModelError as exc:
            out.append(str(exc))
        out += [f"adapter file missing: {a.file}" for a in self.adapters if not a.file.is_file()]
        return out


class SpecError(ModelError):
    """A tuned-model spec that cannot be used, with what is wrong."""


def is_spec_file(value: str | os.PathLike[str]) -> bool:
    return Path(value).suffix.lower() in SPEC_SUFFIXES


def load_spec(path: str | os.PathLike[str]) -> ModelSpec:
    import yaml

    path = Path(path).expanduser().resolve()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read the model spec {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a model spec is a mapping with name, base and adapters")
    name = str(data.get("name") or "")
    if not _NAME.match(name):
        raise SpecError(f"{path}: name {name!r} must be letters, digits, '.', '_' or '-'")
    if name in BUNDLED:
        raise SpecError(f"{path}: name {name!r} is a bundled model's name; choose another")
    base = data.get("base")
    if not base:
        raise SpecError(f"{path}: base: missing (a bundled model name or a GGUF path)")
    def digest(value: Any, where: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise SpecError(f"{path}: {where}: a sha256 must be a quoted string (YAML read {value!r})")

    entries = []
    for index, item in enumerate(data.get("adapters") or []):
        if isinstance(item, str):
            item = {"file": item}
        if not isinstance(item, dict) or not item.get("file"):
            raise SpecError(f"{path}: adapters[{index}]: needs file:")
        file = Path(item["file"]).expanduser()
        entries.append(AdapterEntry(file if file.is_absolute() else (path.parent / file).resolve(),
                                    digest(item.get("sha256"), f"adapters[{index}].sha256")))
    base_sha = digest(data.get("base_sha256"), "base_sha256")
    if base in BUNDLED and base_sha and base_sha != BUNDLED[base].sha256:
        raise SpecError(f"{path}: base_sha256 {base_sha[:12]}… is not the bundled {base} ({BUNDLED[base].sha256[:12]}…)")
    return ModelSpec(name=name, path=path, base=str(base), base_sha256=base_sha, adapters=tuple(entries),
                     description=str(data.get("description") or ""), provenance=dict(data.get("provenance") or {}))


def list_specs(directory: str | os.PathLike[str] | None = None) -> list[ModelSpec]:
    """Every tuned-model spec in ``directory`` (default :func:`specs_dir`), by name; unreadable ones skipped."""
    root = Path(directory) if directory else specs_dir()
    out = []
    for path in sorted(root.glob("*.y*ml")) if root.is_dir() else []:
        if path.name.startswith("default.") or not is_spec_file(path):
            continue
        try:
            out.append(load_spec(path))
        except SpecError:
            continue
    return out


def find_spec(value: str | os.PathLike[str], directory: str | os.PathLike[str] | None = None) -> ModelSpec | None:
    """A spec file path, or the name of a spec in the specs directory; None if ``value`` is neither."""
    text = str(value)
    if is_spec_file(text):
        if not Path(text).expanduser().exists():
            raise SpecError(f"model spec not found: {text}")
        return load_spec(text)
    if text in BUNDLED or not _NAME.match(text):
        return None
    root = Path(directory) if directory else specs_dir()
    for suffix in SPEC_SUFFIXES:
        if (root / f"{text}{suffix}").is_file():
            return load_spec(root / f"{text}{suffix}")
    return None


def default_model(directory: str | os.PathLike[str] | None = None) -> str:
    """The default model's name: ``default:`` in ``<specs dir>/default.yaml``, the one place it is named."""
    import yaml

    root = Path(directory) if directory else specs_dir()
    path = root / "default.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SpecError(f"cannot read {path} ({exc.strerror}): it names the default model; the installation "
                        "is incomplete (reinstall, or set $TSX_MODEL_SPECS to a folder that has one)") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML ({exc})") from None
    value = str((data if isinstance(data, dict) else {}).get("default") or "")
    if not value:
        raise SpecError(f"{path}: 'default:' is missing; it names the default model (a bundled model or a spec)")
    return value


@dataclass
class ResolvedModel:
    """What to load: a base GGUF and the runtime adapters on it (none for a plain model or base-only)."""

    base: Path
    adapters: list[Path]
    adapter_sha256: list[str | None]
    spec: ModelSpec | None = None
    base_only: bool = False

    @property
    def source(self) -> Path:
        """What the user chose: the spec file, or the GGUF."""
        return self.spec.path if self.spec else self.base

    @property
    def label(self) -> str:
        if self.spec is None:
            return self.base.name
        return f"{self.spec.name} (base model only)" if self.base_only else self.spec.name


def resolve(value: str | os.PathLike[str] | None = None, *, base_only: bool = False,
            directory: str | os.PathLike[str] | None = None) -> ResolvedModel:
    """A model as users name it — spec name/file, bundled name, GGUF path, None for the default."""
    value = str(value) if value not in (None, "") else default_model(directory)
    spec = find_spec(value, directory)
    if spec is None:
        return ResolvedModel(base=resolve_model(value), adapters=[], adapter_sha256=[], base_only=base_only)
    missing = spec.missing()
    if missing:
        raise SpecError(f"the tuned model {spec.name} ({spec.path}) cannot be used: {'; '.join(missing)}")
    adapters = [] if base_only else list(spec.adapters)
    return ResolvedModel(base=spec.base_path(), adapters=[a.file for a in adapters],
                         adapter_sha256=[a.sha256 for a in adapters], spec=spec, base_only=base_only)


def default_model_path(directory: str | os.PathLike[str] | None = None) -> Path | None:
    """The file the app opens by default (a spec file or a GGUF), None if it is not installed."""
    try:
        return resolve(None, directory=directory).source
    except ModelError:
        return None


def default_base_name(directory: str | os.PathLike[str] | None = None) -> str:
    """The bundled model the default runs on (what the installer's model package and ``make`` fetch)."""
    value = default_model(directory)
    spec = find_spec(value, directory)
    base = spec.base if spec else value
    if base not in BUNDLED:
        raise SpecError(f"the default model {value} does not run on a bundled model ({base})")
    return base


def write_spec(path: str | os.PathLike[str], name: str, base: str, adapters: list[dict[str, Any]],
               description: str = "", provenance: dict[str, Any] | None = None,
               base_sha256: str | None = None) -> Path:
    """Write a spec (atomically); adapter ``file`` paths are made relative to the spec's folder."""
    import yaml

    from medcore.atomic import write_text

    path = Path(path)
    if not _NAME.match(name) or name in BUNDLED:
        raise SpecError(f"invalid tuned-model name {name!r}")
    rows = []
    for a in adapters:
        file = Path(a["file"]).resolve()
        try:
            rel = os.path.relpath(file, path.parent.resolve())
        except ValueError:  # another drive (Windows)
            rel = str(file)
        rows.append({"file": Path(rel).as_posix(), "sha256": a.get("sha256")})
    data = {"name": name, "description": description, "base": base, "base_sha256": base_sha256,
            "adapters": rows, "provenance": provenance or {}}
    header = ("# A tuned model: the base GGUF plus the GGUF LoRA adapters llama.cpp applies at run time, in\n"
              "# training order (docs/converter.md, 'Runtime adapters'). Written by `tsx-convert lora --spec`.\n")
    write_text(path, header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


__all__ = ["AdapterEntry", "ModelSpec", "ResolvedModel", "SpecError", "default_base_name", "default_model",
           "default_model_path",
           "find_spec", "is_spec_file", "list_specs", "load_spec", "resolve", "specs_dir", "write_spec"]


def main(argv: list[str] | None = None) -> int:
    """``python -m medcore.modelspec [default|base|base-file|list]``: for Makefiles and installers.

    ``base-file`` prints the default model's bundled base GGUF file name and its sha256 (the Windows
    installer recipe ships that file)."""
    import sys

    what = (argv if argv is not None else sys.argv[1:]) or ["default"]
    if what[0] == "default":
        print(default_model())
    elif what[0] == "base":
        print(default_base_name())
    elif what[0] == "base-file":
        model = BUNDLED[default_base_name()]
        print(model.filename, model.sha256)
    elif what[0] == "list":
        for spec in list_specs():
            missing = spec.missing()
            print(f"{spec.name}\t{spec.base}\t{len(spec.adapters)} adapter(s)\t"
                  + ("ok" if not missing else "; ".join(missing)))
    else:
        print("usage: python -m medcore.modelspec [default|base|base-file|list]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
