"""Persistent settings (QSettings): the current model, per-model load options, glossaries, privacy.

Per-model options are stored under a key derived from the model's absolute path, so the 0.5B,
the 1.5B and a trained export each keep their own threads / context size / GPU layers / parallel
segments. Weight
repacking (``llama/repack``) is one setting for every model: when a CPU-specific path of llama.cpp
misbehaves it does so for all of them (``$TSX_NO_REPACK=1`` overrides it, see
``runtime.llamacpp``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings

from medcore.models import BUNDLED, ModelError, bundled_path
from runtime.options import LoadOptions

ORGANIZATION = "TSX-MedTrans"
APPLICATION = "tsx-medtrans"


def _model_key(path: str | Path) -> str:
    return hashlib.sha1(str(Path(path).expanduser().resolve()).encode("utf-8")).hexdigest()[:16]


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class AppSettings:
    """Typed access to the app's QSettings (pass one in to isolate tests)."""

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings or QSettings(ORGANIZATION, APPLICATION)

    # -- model selection
    def current_model(self) -> str | None:
        """The last chosen model (GGUF or tuned-model spec file); on first run the default model
        (``resources/models/default.yaml``) if it is installed."""
        from medcore.modelspec import default_model_path

        value = self.q.value("model/current")
        if value:
            return str(value)
        path = default_model_path()
        return str(path) if path else None

    def set_current_model(self, path: str | Path) -> None:
        path = str(Path(path).expanduser().resolve())
        self.q.setValue("model/current", path)
        recent = [p for p in self.recent_models() if p != path]
        self.q.setValue("model/recent", [path, *recent][:8])

    def recent_models(self) -> list[str]:
        value = self.q.value("model/recent") or []
        return [str(v) for v in ([value] if isinstance(value, str) else value)]

    def known_models(self) -> list[tuple[str, str]]:
        """(label, path) for the tuned models and bundled models that are installed, then recently used files."""
        from medcore.modelspec import list_specs

        out, seen = [], set()
        for spec in list_specs():
            if not spec.missing():
                out.append((f"{spec.name} (tuned)", str(spec.path)))
                seen.add(str(spec.path))
        for name in BUNDLED:
            try:
                path = str(bundled_path(name))
            except ModelError:
                continue
            out.append((name, path))
            seen.add(path)
        for path in self.recent_models():
            if path not in seen:
                out.append((Path(path).name, path))
                seen.add(path)
        return out

    # -- per-model options
    def load_options(self, path: str | Path) -> LoadOptions:
        key = f"models/{_model_key(path)}"
        default = LoadOptions()
        threads = _int(self.q.value(f"{key}/n_threads"), 0)
        return LoadOptions(
            n_ctx=_int(self.q.value(f"{key}/n_ctx"), default.n_ctx),
            n_threads=threads or None,
            n_gpu_layers=_int(self.q.value(f"{key}/n_gpu_layers"), default.n_gpu_layers),
            repack=self.repack(),
            parallel=max(0, _int(self.q.value(f"{key}/parallel"), default.parallel)),
        )

    def set_load_options(self, path: str | Path, options: LoadOptions) -> None:
        key = f"models/{_model_key(path)}"
        self.q.setValue(f"{key}/path", str(Path(path).expanduser().resolve()))
        self.q.setValue(f"{key}/n_ctx", int(options.n_ctx))
        self.q.setValue(f"{key}/n_threads", int(options.n_threads or 0))
        self.q.setValue(f"{key}/n_gpu_layers", int(options.n_gpu_layers))
        self.q.setValue(f"{key}/parallel", int(options.parallel))
        self.set_repack(options.repack)

    # -- llama.cpp
    def repack(self) -> bool:
        """llama.cpp's weight repacking (on unless the user turned it off)."""
        return str(self.q.value("llama/repack", "true")).lower() not in ("0", "false", "no", "off")

    def set_repack(self, enabled: bool) -> None:
        self.q.setValue("llama/repack", bool(enabled))

    # -- glossaries and privacy
    def glossaries(self) -> list[str]:
        value = self.q.value("glossary/files") or []
        return [str(v) for v in ([value] if isinstance(value, str) else value)]

    def set_glossaries(self, paths: list[str]) -> None:
        self.q.setValue("glossary/files", list(paths))

    def term_block(self) -> bool:
        """Loaded glossaries' terms go into the prompt as required translations (on unless turned off)."""
        return str(self.q.value("glossary/term_block", "true")).lower() not in ("0", "false", "no", "off")

    def set_term_block(self, enabled: bool) -> None:
        self.q.setValue("glossary/term_block", bool(enabled))

    def use_default_glossary(self) -> bool:
        """The shipped medical glossary: on from the first start until the user turns it off."""
        return str(self.q.value("glossary/use_default", "true")).lower() not in ("0", "false", "no", "off")

    def set_use_default_glossary(self, enabled: bool) -> None:
        self.q.setValue("glossary/use_default", bool(enabled))

    def check_general_terms(self) -> bool:
        """Require the general dictionary's everyday words too (off: they are advisory)."""
        return str(self.q.value("glossary/general_terms", "false")).lower() in ("1", "true", "yes")

    def set_check_general_terms(self, enabled: bool) -> None:
        self.q.setValue("glossary/general_terms", bool(enabled))

    def log_source_text(self) -> bool:
        """Off unless the user turns it on: patient text stays out of log files."""
        return str(self.q.value("privacy/log_source_text", "false")).lower() in ("1", "true", "yes")

    def set_log_source_text(self, enabled: bool) -> None:
        self.q.setValue("privacy/log_source_text", bool(enabled))

    def sync(self) -> None:
        self.q.sync()
