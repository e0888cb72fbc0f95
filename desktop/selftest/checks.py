"""The installation checks: environment, resources, model, llama.cpp's backend, and the app's engine
loading the model and translating one sentence (see :mod:`desktop.selftest`)."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from desktop.selftest.report import CheckFailed, seconds_since_process_start

SENTENCES = {
    "zh-en": "患者确诊为急性心肌梗死，行经皮冠状动脉介入治疗。",
    "en-zh": "The patient was diagnosed with acute myocardial infarction and underwent percutaneous coronary intervention.",
}
# Files the app opens at run time; a bundle that lacks one breaks only when that feature is used.
REQUIRED_RESOURCES = (
    ("prompts", "translation.yaml"),
    ("web", "term_view.js"),
    ("web", "term_view.css"),
    ("web", "bertviz_highlight.js"),
    ("web", "vendor", "require-2.3.6.js"),
    ("web", "vendor", "d3-5.7.0.min.js"),
    ("web", "vendor", "jquery-2.2.4.min.js"),
    ("i18n", "tsx_medtrans_zh_CN.qm"),
    ("glossary", "medical_glossary.tsv"),  # the default medical glossary, loaded at first start
    ("glossary", "sources.json"),
    ("glossary", "NOTICE.md"),
    ("models", "default.yaml"),
)



def check_environment() -> dict[str, Any]:
    from desktop import __version__

    info: dict[str, Any] = {
        "app_version": __version__, "python": platform.python_version(), "platform": platform.platform(),
        "frozen": bool(getattr(sys, "frozen", False)), "executable": sys.executable,
        "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    if getattr(sys, "frozen", False):
        info["bundle_dir"] = getattr(sys, "_MEIPASS", None)
    for module in ("llama_cpp", "PySide6", "numpy", "torch", "transformers", "bertviz"):
        info[f"{module}_version"] = _module_version(module)
    return info


def _module_version(module: str) -> str | None:
    """Version of an importable module without importing heavy ones (torch is not imported here)."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    dist = {"llama_cpp": "llama-cpp-python", "PySide6": "PySide6"}.get(module, module)
    try:
        if find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return version(dist)
    except PackageNotFoundError:
        try:  # PyInstaller bundles do not always carry dist-info: fall back to the module attribute
            return str(getattr(__import__(module), "__version__", "present"))
        except Exception:  # noqa: BLE001
            return "present"


def check_llama_backend() -> dict[str, Any]:
    """Which CPU variant and features llama.cpp runs with here (see the module docstring)."""
    from runtime.llamacpp import BackendError, ensure_backends

    try:
        info = ensure_backends()
    except (ImportError, OSError, BackendError) as exc:
        raise CheckFailed(f"llama.cpp's CPU backend could not be loaded: {exc}") from None
    build = "portable (CPU variants loaded at run time)" if info.backend_dl else "CPU backend built in (not portable)"
    detail: dict[str, Any] = {
        "cpu_variant": info.variant, "variant_file": info.variant_file,
        "features": [k for k, v in info.features.items() if v == "1"],
        "feature_values": {k: v for k, v in info.features.items() if v != "1"},
        "cpu": info.cpu_description, "build": build, "shipped_variants": info.shipped_variants,
        "backends": info.backends, "amx": info.amx, "repack_default": info.repack_default,
        "repack_plain_batch_rows": info.plain_batch_rows,
        "llama_cpp_python": info.llama_cpp_python, "lib_dir": info.lib_dir,
    }
    if info.amx:
        detail["warning"] = ("this llama.cpp has AMX compiled in (crashes on decode, llama.cpp #20824): "
                             "weight repacking is off for every model; reinstall the portable build")
    return detail


def check_resources() -> dict[str, Any]:
    from medcore.resources import RESOURCES_DIR

    missing = [os.path.join(*parts) for parts in REQUIRED_RESOURCES if not RESOURCES_DIR.joinpath(*parts).is_file()]
    if missing:
        raise CheckFailed(f"missing from the installation under {RESOURCES_DIR}: {', '.join(missing)}",
                          {"resources_dir": str(RESOURCES_DIR), "missing": missing})
    return {"resources_dir": str(RESOURCES_DIR), "files": len(REQUIRED_RESOURCES)}


def bundled_entry(path: Path):
    """The ``BUNDLED`` model whose file name this is (following a symlink), else None."""
    from medcore.models import bundled_for_file

    return bundled_for_file(path.name, path.resolve().name)


def check_model(spec: str | None, verify_hash: bool = True) -> tuple[str, dict[str, Any]]:
    from medcore.lora import check_stack, read_adapter
    from medcore.models import (
        ModelError,
        check_gguf_header,
        models_dir,
        sha256_file,
    )
    from medcore.modelspec import default_model, resolve

    spec = spec or default_model()
    try:
        resolved = resolve(spec)
        path = resolved.base
        check_gguf_header(path)
        adapters = [read_adapter(p, expected_sha256=sha) for p, sha in zip(resolved.adapters, resolved.adapter_sha256,
                                                                          strict=True)]
    except ModelError as exc:
        raise CheckFailed(str(exc), {"models_dir": str(models_dir()), "spec": spec}) from None
    detail: dict[str, Any] = {"path": str(path), "size": path.stat().st_size, "models_dir": str(models_dir()),
                              "model": spec, "source": str(resolved.source)}
    if path.is_symlink():
        detail["links_to"] = str(path.resolve())
    if resolved.spec is not None:
        detail["tuned_model"] = resolved.spec.name
        detail["adapters"] = [a.provenance() for a in adapters]
    model = bundled_entry(path)
    if model is not None:
        detail["bundled"] = model.name
    # Adapters need the base's hash (their recorded base must be this file); so does a bundled model's check.
    if adapters or (model is not None and verify_hash):
        t0 = time.perf_counter()
        detail["sha256"] = sha256_file(path)
        detail["hash_seconds"] = round(time.perf_counter() - t0, 2)
    digest = detail.get("sha256")
    # A damaged bundled base is reported as that (reinstall), before the adapters' "another base" check.
    if model is not None and digest is not None and (detail["size"] != model.size or digest != model.sha256):
        raise CheckFailed(
            f"{path} is damaged: size {detail['size']:,} / sha256 {digest[:16]}… but {model.name} is "
            f"{model.size:,} bytes / {model.sha256[:16]}…; reinstall the model package", detail)
    if adapters:
        try:
            check_stack(adapters, digest, path.name)
        except ModelError as exc:
            raise CheckFailed(str(exc), detail) from None
    if model is None:
        detail.setdefault("sha256", "not checked: not one of the bundled models")
        return "ok", detail
    if digest is None:
        detail["sha256"] = "not checked (--no-hash)"
        return "ok", detail
    detail["verified"] = True
    return "ok", detail



def check_load(engine: Any, model: Path, ctx: int, repack: bool) -> dict[str, Any]:
    """The app's engine (``runtime.engine.TranslationEngine``) loads ``model`` (a GGUF or a tuned-model spec)."""
    from runtime.options import LoadOptions

    info = engine.load(model, LoadOptions(n_ctx=ctx, repack=repack))
    detail = {"name": info.name, "architecture": info.architecture, "layers": info.n_layers,
              "n_ctx": info.n_ctx, "load_seconds": round(info.load_seconds, 3),
              "estimated_ram_gb": round(info.estimated_bytes / 1024**3, 2),
              "cpu_variant": info.cpu_variant, "repack": info.repack,
              "weight_buffers_mib": {k: round(v, 2) for k, v in info.buffers.items()},
              "tuned_model": info.spec, "adapters": [a["file"] for a in info.adapters]}
    if any(k.upper().startswith("AMX") for k in info.buffers):
        raise CheckFailed("llama.cpp put weights in an AMX buffer (crashes on decode)", detail)
    return detail


def check_translate(engine: Any, source: str, direction: str, since_start: float | None,
                    state: dict[str, Any]) -> dict[str, Any]:
    """The loaded engine translates ``source``: non-empty, in the target language, finished cleanly.
    ``state["translation"]`` is set as soon as there is one: the attention checks inspect it even when
    this check fails."""
    from medcore.prompt import split_direction
    from medcore.textnorm import detect_lang

    result = engine.translate(source, direction)
    _, tgt = split_direction(result.direction)
    text = result.translation.strip()
    state["translation"] = text
    detail = {"direction": result.direction, "source": source, "translation": text,
              "detected_lang": detect_lang(text) if text else None, **result.stats(),
              "finish": [s.finish_reason for s in result.segments]}
    if not text:
        raise CheckFailed("the model produced an empty translation", detail)
    if detect_lang(text) != tgt:
        raise CheckFailed(f"the translation is not in the target language ({tgt})", detail)
    if any(s.finish_reason != "stop" for s in result.segments) or result.warnings:
        raise CheckFailed(f"the translation did not finish cleanly: {result.warnings}", detail)
    if since_start is not None:
        detail["seconds_since_process_start"] = round(seconds_since_process_start() or 0.0, 3)
    return detail
