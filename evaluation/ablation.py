"""The ablation: base | +stage 1 | +stage 1+2 on the same records, with a table, a chart and p-values."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.reports import ablation_table, table_csv, table_markdown
from evaluation.runs import evaluate, library_versions, read_hypotheses
from evaluation.scoring import CometSpec
from evaluation.significance import significance_tests
from evaluation.testsets import data_identity, find_glossary, load_eval_glossary, load_test_set
from medcore.atomic import write_json, write_text
from medcore.records import select_records

log = logging.getLogger(__name__)


@dataclass
class SystemSpec:
    name: str
    model: str
    adapters: list[str] = field(default_factory=list)


def ablation_systems(backend: str, base: str, stage1: str | None, stage2: str | None) -> list[SystemSpec]:
    """The systems of the ablation. transformers: one base plus adapter stacks; llama.cpp: the base GGUF
    plus GGUF LoRA stacks applied at run time (``tsx-convert lora`` files), or one merged GGUF each."""
    if stage2 and not stage1:
        raise ValueError("--stage2 needs --stage1 (stage 2 was trained on top of stage 1)")
    if backend == "llamacpp" and stage1 and _is_runtime_lora(stage1):
        if stage2 and not _is_runtime_lora(stage2):
            raise ValueError(f"--stage1 is a GGUF LoRA but --stage2 ({stage2}) is not: give both as `tsx-convert lora` files")
        systems = [SystemSpec("base", base), SystemSpec("+stage1", base, [stage1])]
        systems += [SystemSpec("+stage1+2", base, [stage1, stage2])] if stage2 else []
        return systems
    if backend == "llamacpp":
        systems = [SystemSpec("base", base)]
        systems += [SystemSpec("+stage1", stage1)] if stage1 else []
        systems += [SystemSpec("+stage1+2", stage2)] if stage2 else []
        return systems
    check_stack(base, stage1, stage2)
    systems = [SystemSpec("base", base)]
    if stage1:
        systems.append(SystemSpec("+stage1", base, [stage1]))
    if stage2:
        systems.append(SystemSpec("+stage1+2", base, [stage1, stage2]))
    return systems


def _is_runtime_lora(path: str) -> bool:
    """A GGUF LoRA with its tsx-lora sidecar (``tsx-convert lora``), as opposed to a merged model GGUF."""
    from medcore.lora import KIND, sidecar_path

    side = sidecar_path(path)
    try:
        return Path(path).is_file() and json.loads(side.read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError):
        return False


def check_stack(base: str, stage1: str | None, stage2: str | None) -> list[str]:
    """Refuse adapters trained on another base; warn when stage 2's recorded stack is not stage 1."""
    from hfmodel.adapters import read_stage_meta
    from hfmodel.fingerprints import adapter_fingerprint, base_fingerprint

    warnings: list[str] = []
    if not stage1:
        return warnings
    fingerprint = None
    for adapter in [a for a in (stage1, stage2) if a]:
        meta = read_stage_meta(adapter)
        if meta.get("base_fingerprint"):
            fingerprint = fingerprint or base_fingerprint(base)
            if meta["base_fingerprint"] != fingerprint:
                raise ValueError(f"{adapter} was trained on another base model ({meta.get('base')}, "
                                 f"fingerprint {meta['base_fingerprint'][:12]}) than {base} ({fingerprint[:12]})")
    if stage2:
        meta = read_stage_meta(stage2)
        stack, stack_sha = meta.get("stack"), meta.get("stack_sha256")
        if stack_sha is not None:  # recorded by content: a copy of stage 1 elsewhere is the same stage 1
            if stack_sha != [adapter_fingerprint(stage1)]:
                warnings.append(f"{stage2} was trained on top of another stage 1 (sha256 "
                                f"{', '.join(s[:12] for s in stack_sha)}…) than {stage1}")
        elif stack is not None and [str(Path(p).resolve()) for p in stack] != [str(Path(stage1).resolve())]:
            warnings.append(f"{stage2} records its earlier stages as {stack}, not [{stage1}]")
    for w in warnings:
        log.warning(w)
    return warnings


def run_ablation(systems: Sequence[SystemSpec], test: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 backend: str = "transformers", limit: int | None = None, seed: int = 0,
                 glossary_path: str | os.PathLike[str] | None = None, comet: CometSpec | None = None,
                 batch_size: int = 8, n_ctx: int = 4096, bootstrap_samples: int = 1000, progress: bool = True,
                 translator_factory: Callable[..., Any] | None = None, directions: Sequence[str] | None = None,
                 kinds: Sequence[str] | None = None, max_new_cap: int | None = None,
                 translator_kwargs: dict | None = None, resume: bool = False, rescore: bool = False) -> dict:
    """Run every system on the same records; write the table (md/csv/json) and the chart."""
    from evaluation.plots import plot_ablation
    from evaluation.translators import make_translator

    out_dir = Path(out_dir)
    records = select_records(load_test_set(test), limit, seed, directions, kinds)
    if not records:
        raise ValueError(f"no records selected from {test}")
    glossary_path = glossary_path or find_glossary(test)
    glossary = load_eval_glossary(glossary_path)
    data = data_identity(test, records)
    comet = comet or CometSpec()
    factory = translator_factory or make_translator
    results = []
    for spec in systems:
        extra = dict(translator_kwargs or {})
        if max_new_cap is not None:
            extra["max_new_cap"] = max_new_cap
        translator = factory(backend, spec.model, spec.adapters, batch_size=batch_size, n_ctx=n_ctx, **extra)
        try:
            metrics = evaluate(records, translator, out_dir / _folder(spec.name), glossary=glossary, comet=comet,
                               data=data, name=spec.name, progress=progress, resume=resume, rescore=rescore)
        finally:
            translator.close()
            del translator
            gc.collect()
        rows = read_hypotheses(out_dir / _folder(spec.name) / "hypotheses.jsonl")
        results.append({"name": spec.name, "metrics": metrics, "rows": rows})
    significance = significance_tests(results, bootstrap_samples)
    table = ablation_table(results, significance)
    notes = [f"Test set: {data['path']} ({data['records']} records, sha256 {data['sha256'][:12]}…, "
             f"selection {data['selection_sha256'][:12]}…); backend {backend}; greedy decoding.",
             "BLEU/chrF: mean of the per-direction corpus scores; p: paired bootstrap of BLEU vs base "
             f"({bootstrap_samples} resamples).",
             "Term EM: exact match on term pairs; term acc. (sentences): glossary terms in the source whose "
             "expected translation appears in the output" + (f" (glossary {glossary_path})." if glossary_path else
                                                             " (no glossary given: not computed)."),
             "COMET: " + (f"checkpoint {comet.checkpoint}." if comet.checkpoint else
                          "not computed (no local COMET checkpoint given).")]
    for direction, sig in significance.items():
        notes.append(f"Signature BLEU {direction}: {sig['vs_base']['signatures']['BLEU']}")
    summary = {"backend": backend, "systems": [{"name": r["name"], "model": r["metrics"]["model"]} for r in results],
               "data": data, "glossary": str(glossary_path) if glossary_path else None,
               "comet_checkpoint": comet.checkpoint, "table": table, "significance": significance,
               "metrics": {r["name"]: {k: r["metrics"][k] for k in ("overall", "by_direction", "by_kind")}
                           for r in results},
               "versions": library_versions(), "command": sys.argv}
    write_text(out_dir / "ablation.md", table_markdown(table, notes))
    write_text(out_dir / "ablation.csv", table_csv(table))
    write_json(out_dir / "ablation.json", summary)
    plot_ablation(table, out_dir / "ablation.png",
                  title=f"Ablation on {Path(test).name} ({len(records)} segments, {backend})")
    return summary


def _folder(name: str) -> str:
    return name.lstrip("+") or "system"
