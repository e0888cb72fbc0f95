"""PEFT stage adapters -> GGUF LoRA files that llama.cpp applies at run time on the bundled base.

The conversion is llama.cpp's own ``convert_lora_to_gguf.py``, from the same llama-cpp-python sdist
as ``convert_hf_to_gguf.py`` (:func:`converter.llamacpp.converter_dir`), run as a child that dies
with us (:mod:`medcore.childproc`). The base model's config comes from its HF directory — for a GGUF
base, the dequantised cache the adapter was trained on (:func:`hfmodel.cache.hf_dir_for`).

Each ``<name>.gguf`` gets a sidecar ``<name>.gguf.json`` (``kind: tsx-lora``; read by
:mod:`medcore.lora`): the stage, the base fingerprint (sha256 of the base GGUF) the runtime checks,
sha256 of the PEFT files and of the earlier stages it was trained on top of, the training-data
manifest's sha256, and the GGUF's own sha256. Both files are written atomically.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from converter import ConvertError
from medcore.atomic import atomic_path, write_json
from medcore.lora import KIND, sidecar_path
from medcore.models import bundled_for_file, resolve_model, sha256_file

log = logging.getLogger(__name__)
OUTTYPES = ("f32", "f16", "bf16", "q8_0")
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "tsx_stage.json")


def check_peft_config(config: dict[str, Any], where: str) -> float:
    """Refuse what llama.cpp's LoRA format cannot express; return the alpha that gives PEFT's scale.

    llama.cpp scales by ``alpha / r``. With rsLoRA PEFT scales by ``alpha / sqrt(r)``: the exported
    alpha is then ``alpha * sqrt(r)``, which gives the same product.
    """
    problems = []
    if config.get("peft_type", "LORA") != "LORA":
        problems.append(f"peft_type {config.get('peft_type')}")
    if config.get("use_dora"):
        problems.append("DoRA (use_dora)")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        problems.append("per-module rank/alpha (rank_pattern/alpha_pattern)")
    if config.get("modules_to_save"):
        problems.append(f"fully trained modules ({config['modules_to_save']})")
    if config.get("bias", "none") != "none":
        problems.append(f"trained biases (bias={config['bias']})")
    if problems:
        raise ConvertError(f"{where}: llama.cpp's LoRA format cannot carry {', '.join(problems)}")
    alpha, r = float(config["lora_alpha"]), int(config["r"])
    return alpha * math.sqrt(r) if config.get("use_rslora") else alpha


def peft_files(adapter: Path) -> dict[str, str]:
    return {name: sha256_file(adapter / name) for name in PEFT_FILES if (adapter / name).exists()}


def _data_manifest(adapter: Path, meta: dict[str, Any], override: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Which prepared data the adapter was trained on: its manifest.json, by sha256 (None if unknown)."""
    if meta.get("data_manifest_sha256") and not override:
        return {"data_manifest": meta.get("data_manifest"), "data_manifest_sha256": meta["data_manifest_sha256"],
                "data_manifest_source": "tsx_stage.json"}
    candidates: list[Path] = []
    source = "--data-manifest"
    if override:
        path = Path(override)
        candidates.append(path / "manifest.json" if path.is_dir() else path)
    else:
        source = "the training run's config.json (hashed at export time)"
        run_config = adapter.parent / "config.json"
        try:
            data = json.loads(run_config.read_text()).get("data")
        except (OSError, ValueError):
            data = None
        if data:
            data_path = Path(data)
            candidates += [data_path / "manifest.json"] if data_path.is_absolute() else [
                Path.cwd() / data_path / "manifest.json", adapter.parent.parent.parent / data_path / "manifest.json"]
    for path in candidates:
        if path.is_file():
            return {"data_manifest": str(path.resolve()), "data_manifest_sha256": sha256_file(path),
                    "data_manifest_source": source}
    if override:
        raise ConvertError(f"no data manifest at {candidates[0]}")
    log.warning("%s: the training-data manifest is unknown (no config.json beside it naming the prepared data)", adapter)
    return {"data_manifest": None, "data_manifest_sha256": None, "data_manifest_source": None}


def output_path(out: Path, adapter: Path, meta: dict[str, Any], single: bool) -> Path:
    if out.suffix.lower() == ".gguf":
        if not single:
            raise ConvertError(f"--out {out} names one file but several adapters were given; give a directory")
        return out
    stage = meta.get("stage")
    return out / (f"stage{stage}.lora.gguf" if stage is not None else f"{adapter.parent.name}-{adapter.name}.lora.gguf")


def run_convert_lora(adapter: Path, base_dir: Path, outfile: Path, outtype: str, src: Path | None = None) -> float:
    """Run llama.cpp's ``convert_lora_to_gguf.py``; returns seconds taken."""
    from converter.llamacpp import run_script

    if outtype not in OUTTYPES:
        raise ConvertError(f"llama.cpp's LoRA converter writes {', '.join(OUTTYPES)}, not {outtype}")
    return run_script("convert_lora_to_gguf.py",
                      ["--base", str(base_dir), "--outfile", str(outfile), "--outtype", outtype, str(adapter)],
                      outfile, str(adapter), "LoRA converter", src)


def export_lora(adapter: str | os.PathLike[str], out: str | os.PathLike[str], base: str | os.PathLike[str] | None = None,
                outtype: str = "f16", data_manifest: str | os.PathLike[str] | None = None, single: bool = True,
                src: Path | None = None) -> dict[str, Any]:
    """Convert one PEFT stage adapter; returns its record (the sidecar's content plus ``path``)."""
    from converter.checks import architecture, ensure_disk
    from converter.llamacpp import llama_cpp_version
    from hfmodel.adapters import read_stage_meta
    from hfmodel.cache import hf_dir_for
    from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint

    adapter = Path(adapter).resolve()
    if not adapter.is_dir():
        raise ConvertError(f"adapter not found: {adapter}")
    meta = read_stage_meta(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    alpha = check_peft_config(config, str(adapter))
    base = base or meta.get("base")
    if not base:
        raise ConvertError(f"{adapter} does not record its base model (no tsx_stage.json): give --base")
    base_path = resolve_model(str(base))
    fingerprint = base_fingerprint(base_path)
    recorded = meta.get("base_fingerprint")
    if recorded and recorded != fingerprint:
        raise ConvertError(f"adapter {adapter} was trained on another base model ({meta.get('base')}, fingerprint "
                           f"{recorded[:12]}…), not on {base} (fingerprint {fingerprint[:12]}…)")
    if not recorded:
        log.warning("%s has no tsx_stage.json: assuming it was trained on %s", adapter, base_path)
    base_dir = hf_dir_for(base_path)
    arch = architecture(base_dir)
    target = output_path(Path(out), adapter, meta, single)
    weights = sum((adapter / n).stat().st_size for n in ("adapter_model.safetensors", "adapter_model.bin")
                  if (adapter / n).exists())
    ensure_disk(target.parent, weights * 2 + (16 << 20), f"GGUF LoRA of {adapter}")

    # What the earlier stages were: recorded by the trainer (tsx_stage.json ``stack_sha256``), or for
    # adapters trained before it recorded them, read from where they were (``stack``).
    stack_sha = meta.get("stack_sha256")
    if stack_sha is None:
        stack = [Path(p) for p in meta.get("stack") or []]
        stack_sha = [adapter_fingerprint(p) if (p / "adapter_config.json").exists() else None for p in stack]
        if any(s is None for s in stack_sha):
            log.warning("%s was trained on top of %s, not all present: the stack order will not be checked at "
                        "run time", adapter, ", ".join(map(str, stack)))
            stack_sha = None

    with tempfile.TemporaryDirectory(prefix="tsx-lora-") as scratch:
        source = adapter
        if alpha != float(config["lora_alpha"]):  # rsLoRA: give llama.cpp the alpha that yields PEFT's scale
            source = Path(scratch) / "adapter"
            shutil.copytree(adapter, source)
            (source / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": alpha, "use_rslora": False}))
        with atomic_path(target) as tmp:
            seconds = run_convert_lora(source, base_dir, tmp, outtype, src)
            size, digest = tmp.stat().st_size, sha256_file(tmp)
            record = {
                "kind": KIND, "format": 1, "stage": meta.get("stage"), "architecture": arch,
                "base": str(base_path), "base_file": base_path.name,
                "base_name": getattr(bundled_for_file(base_path.name), "name", None),
                "base_fingerprint": fingerprint,
                "lora": {"r": config["r"], "lora_alpha": config["lora_alpha"], "exported_alpha": alpha,
                         "use_rslora": bool(config.get("use_rslora")),
                         "target_modules": sorted(config.get("target_modules") or [])},
                "peft_source": str(adapter), "peft_sha256": adapter_fingerprint(adapter), "peft_files": peft_files(adapter),
                "stack_peft_sha256": stack_sha, "tsx_stage": meta,
                **_data_manifest(adapter, meta, data_manifest),
                "outtype": outtype, "gguf_sha256": digest, "size_bytes": size, "seconds": round(seconds, 2),
                "llama_cpp_python": llama_cpp_version(),
            }
            # The sidecar first: a GGUF LoRA without its provenance is refused at run time, so the
            # worst an interruption between the two renames leaves is a sidecar without its file.
            write_json(sidecar_path(target), record)
    log.info("%s -> %s (%s, %.1f MB) in %.1f s", adapter, target, outtype, size / 1e6, seconds)
    return {**record, "path": str(target)}


def export_loras(adapters: list[str | os.PathLike[str]], out: str | os.PathLike[str],
                 base: str | os.PathLike[str] | None = None, outtype: str = "f16",
                 data_manifest: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Convert a stack of stage adapters (training order, checked as ``merge`` checks it)."""
    from converter.merge import check_adapters
    from hfmodel.adapters import read_stage_meta

    if not adapters:
        raise ConvertError("no adapters given")
    if len(adapters) > 1:
        base = base or read_stage_meta(adapters[0]).get("base")
        if not base:
            raise ConvertError(f"{adapters[0]} does not record its base model: give --base")
        check_adapters(resolve_model(str(base)), adapters)
    return [export_lora(a, out, base, outtype, data_manifest, single=len(adapters) == 1) for a in adapters]


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


def summary(records: list[dict[str, Any]]) -> str:
    lines = []
    for r in records:
        lines.append(f"stage {r['stage']}: {r['path']} ({r['outtype']}, {r['size_bytes'] / 1e6:.1f} MB, {r['seconds']} s) "
                     f"sha256 {r['gguf_sha256'][:16]}…  base {r['base_file']} ({r['base_fingerprint'][:12]}…)  "
                     f"data manifest {(r['data_manifest_sha256'] or 'unknown')[:16]}")
    return "\n".join(lines)


__all__ = ["OUTTYPES", "check_peft_config", "dumps", "export_lora", "export_loras", "run_convert_lora", "summary"]
