"""Merged HF directory -> GGUF files (f16/bf16/q8_0 by llama.cpp's converter, k-quants by its quantize API).

Every file is written to a temporary name beside its target, verified against the merged model
(and the base, read from the merge manifest) and only then renamed into place: an interrupted or
failed export leaves no half file and no unverified file where the app would find it.

``auto`` picks the smallest quantisation that keeps the fine-tune (q4_k_m, then q5_k_m, q6_k, q8_0),
saying why each smaller one was rejected.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from converter import ConvertError
from converter.checks import architecture, check_tokenizer_files, ensure_disk, weights_size
from converter.llamacpp import (
    CONVERT_TYPES,
    QUANT_TYPES,
    converter_dir,
    llama_cpp_version,
    quantize,
    run_convert,
)
from converter.merge import read_manifest
from medcore.atomic import atomic_path, remove_stale_temps, write_json
from medcore.childproc import pid_alive
from medcore.models import sha256_file

log = logging.getLogger(__name__)
AUTO_ORDER = ("q4_k_m", "q5_k_m", "q6_k", "q8_0")
# bytes per parameter, for the disk check (k-quants are smaller; f16 intermediate counts separately)
_BYTES_PER_PARAM = {"f32": 4, "f16": 2, "bf16": 2, "q8_0": 1.07, "q6_k": 0.83, "q5_k_m": 0.72, "q4_k_m": 0.62, "q4_0": 0.57}


class _Rejected(Exception):
    def __init__(self, report: dict[str, Any]):
        super().__init__("rejected")
        self.report = report


def _param_count(model_dir: Path) -> int:
    """Parameters from the safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    for file in model_dir.glob("*.safetensors"):
        try:
            with safe_open(file, "pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                    n = 1
                    for d in f.get_slice(key).get_shape():
                        n *= d
                    total += n
        except Exception as exc:  # safetensors raises its own error type
            raise ConvertError(f"cannot read {file}: {exc} (an incomplete copy? merge again)") from None
    return total or weights_size(model_dir) // 4


_INTERMEDIATE = re.compile(r"\.(?P<stem>.+)-f16(?:\.(?P<pid>\d+))?\.intermediate\.gguf")


def _intermediate_path(directory: Path, stem: str) -> Path:
    """The f16 file the quantiser reads; named with our process id so a rerun can tell if it is stale."""
    return directory / f".{stem}-f16.{os.getpid()}.intermediate.gguf"


def _remove_stale_temps(directory: Path, stem: str, targets: list[Path]) -> None:
    """Remove what an export killed outright (SIGKILL, power loss) left behind: never a result.

    Temporary files of every file this export may write (the GGUFs, their ``.json`` sidecars,
    ``.rejected.gguf`` copies, the f16 intermediate) whose writing process is gone, and f16
    intermediates of ``stem`` whose process is gone. A concurrent export's files are left alone.
    """
    for target in targets:
        for path in (target, target.with_name(target.name + ".json"), target.with_suffix(".rejected.gguf")):
            remove_stale_temps(path)
    for path in directory.glob(f".{glob.escape(stem)}-f16*.intermediate.gguf*"):
        m = _INTERMEDIATE.fullmatch(path.name)
        if m and m.group("stem") == stem and not (m.group("pid") and pid_alive(int(m.group("pid")))):
            log.warning("removing %s, left by an interrupted export", path.name)
            path.unlink(missing_ok=True)
        elif path.name.endswith(".tmp"):
            remove_stale_temps(path.with_name(path.name.split(".intermediate.gguf")[0] + ".intermediate.gguf"))


def output_path(out: Path, merged: Path, ftype: str, single: bool) -> Path:
    if out.suffix.lower() == ".gguf":
        if not single:
            raise ConvertError(f"--out {out} names one file but several types were asked for; give a directory")
        return out
    return out / f"{merged.name}-{ftype}.gguf"


def export(merged: str | os.PathLike[str], out: str | os.PathLike[str], types: list[str],
           verify: bool = True, base: str | os.PathLike[str] | None = None, use_base: bool = True,
           keep_failed: bool = False, max_new_tokens: int = 32, probes_file: str | None = None,
           thresholds: dict[str, dict[str, float]] | None = None) -> list[dict[str, Any]]:
    """Export ``merged`` to each of ``types`` (``auto`` allowed); returns one record per file written.

    Raises :class:`ConvertError` when a requested file fails verification (it is not installed).
    ``thresholds`` overrides verify's limits per file type.
    """
    merged, out = Path(merged), Path(out)
    arch = architecture(merged)
    check_tokenizer_files(merged)
    unknown = [t for t in types if t != "auto" and t not in CONVERT_TYPES and t not in QUANT_TYPES]
    if unknown:
        raise ConvertError(f"unknown GGUF type(s) {', '.join(unknown)}; use {', '.join(CONVERT_TYPES + tuple(QUANT_TYPES))} or auto")
    manifest = read_manifest(merged)
    if base is None and use_base and manifest:
        base = manifest["base"].get("hf_dir") or manifest["base"].get("path")
        if base and not Path(base).exists():
            log.warning("the merge manifest's base %s is gone: fine-tune survival will not be checked", base)
            base = None
    if not use_base:
        base = None

    n_params = _param_count(merged)
    target_dir = out.parent if out.suffix.lower() == ".gguf" else out
    # Before the disk check: a killed export's temporary file may be what fills the disk.
    targets = [output_path(out, merged, t, len(types) == 1) for t in dict.fromkeys(
        c for t in types for c in (AUTO_ORDER if t == "auto" else (t,)))]
    _remove_stale_temps(target_dir, merged.name, targets)
    need = sum(_BYTES_PER_PARAM.get(t, 1.07 * 4) for t in (AUTO_ORDER if "auto" in types else types)) * n_params
    if any(t in QUANT_TYPES and t not in CONVERT_TYPES or t == "auto" for t in types):
        need += 2 * n_params  # the f16 intermediate the quantiser reads
    ensure_disk(target_dir, int(need * 1.05) + (32 << 20), f"GGUF export of {merged.name} ({', '.join(types)})")
    target_dir.mkdir(parents=True, exist_ok=True)
    src = converter_dir()

    reference = None
    if verify:
        from converter.verify import build_reference, load_probes

        t0 = time.perf_counter()
        reference = build_reference(merged, base, load_probes(probes_file), max_new_tokens)
        log.info("reference outputs of the merged model%s in %.1f s", " and the base" if base else "",
                 time.perf_counter() - t0)

    records: list[dict[str, Any]] = []
    intermediate: Path | None = None
    try:
        def f16_source() -> Path:
            nonlocal intermediate
            done = [r for r in records if r.get("path") and r["ftype"] in ("f16", "bf16", "f32")]
            if done:  # quantise from the full-precision file this run already wrote and verified
                return Path(done[0]["path"])
            if intermediate is None:
                fd_path = _intermediate_path(target_dir, merged.name)
                with atomic_path(fd_path) as tmp:
                    run_convert(merged, tmp, "f16", src)
                intermediate = fd_path
            return intermediate

        def make(ftype: str, target: Path) -> dict[str, Any]:
            t0 = time.perf_counter()
            try:
                with atomic_path(target) as tmp:
                    if ftype in CONVERT_TYPES:
                        run_convert(merged, tmp, ftype, src)
                    else:
                        quantize(f16_source(), tmp, ftype)
                    seconds = time.perf_counter() - t0
                    report = None
                    if reference is not None:
                        from converter.verify import compare, format_report

                        report = compare(reference, tmp, ftype, thresholds=(thresholds or {}).get(ftype))
                        report["gguf"] = str(target)
                        log.info("%s", format_report(report))
                        if not report["passed"]:
                            if keep_failed:
                                shutil.copy(tmp, target.with_suffix(".rejected.gguf"))
                            raise _Rejected(report)  # leaves the with-block: the file is not installed
                    record = {"ftype": ftype, "path": str(target), "size_bytes": tmp.stat().st_size,
                              "seconds": round(seconds, 2), "sha256": sha256_file(tmp), "verify": report}
            except _Rejected as rejected:
                return {"ftype": ftype, "path": None, "rejected": rejected.report}
            write_json(target.with_name(target.name + ".json"), {
                "kind": "tsx-gguf", "source": str(merged), "architecture": arch,
                "merge_manifest_sha256": sha256_file(merged / "tsx_merge.json") if (merged / "tsx_merge.json").exists() else None,
                "llama_cpp_python": llama_cpp_version(), **record})
            return record

        for ftype in types:
            if ftype != "auto":
                # Carry on with the other types when one is rejected; report all rejections at the end.
                records.append(make(ftype, output_path(out, merged, ftype, len(types) == 1)))
                continue
            if reference is None:
                raise ConvertError("--type auto needs verification (it picks by the verify results); drop --no-verify")
            chosen = None
            for candidate in AUTO_ORDER:
                rec = make(candidate, output_path(out, merged, candidate, len(types) == 1))
                if rec["path"]:
                    chosen = rec
                    break
                log.warning("%s rejected: %s; trying a larger type", candidate, "; ".join(rec["rejected"]["failures"]))
                rec["auto_tried"] = True
                records.append(rec)
            if chosen is None:
                raise ConvertError(f"no quantisation of {merged.name} passed verification ({', '.join(AUTO_ORDER)})")
            chosen["auto"] = True
            records.append(chosen)
    finally:
        if intermediate is not None and intermediate.exists():
            intermediate.unlink()
    rejected = [r for r in records if not r.get("path") and not r.get("auto_tried")]
    if rejected:
        error = ConvertError("\n".join(
            f"{output_path(out, merged, r['ftype'], len(types) == 1).name} failed verification and was not written:\n  "
            + "\n  ".join(r["rejected"]["failures"]) for r in rejected))
        error.records = records  # what was written, for the caller to report
        raise error
    return records


def summary(records: list[dict[str, Any]]) -> str:
    lines = []
    for rec in records:
        if rec.get("path"):
            v = rec.get("verify") or {}
            ft = (v.get("finetune") or {}).get("kept")
            lines.append(f"{rec['ftype']:>7}  {rec['size_bytes'] / 1e6:8.1f} MB  {rec['seconds']:6.1f} s  "
                         + (f"top1 {v['top1_agreement']:.3f}  KL {v['kl_mean']:.4f}/{v['kl_max']:.3f}  greedy "
                            f"{v['greedy_match']:.2f}  ft kept {ft}" if v else "not verified")
                         + ("  (auto pick)" if rec.get("auto") else "") + f"  {rec['path']}")
        else:
            lines.append(f"{rec['ftype']:>7}  rejected: {'; '.join(rec['rejected']['failures'])}")
    return "\n".join(lines)


def dumps(records: list[dict[str, Any]]) -> str:
    return json.dumps(records, indent=2, ensure_ascii=False)
