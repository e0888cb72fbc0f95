"""Evaluation runs: translate a test set, save every hypothesis, score it per direction and kind.

A test set is a prepared JSONL (records ``{"id", "kind", "direction", "source", "target", ...}``, as
written by ``tsx-train prepare``) or any pair file :func:`medcore.pairs.read_pairs` reads (each pair
is then used in both directions). Results of one run, in its output folder:

- ``hypotheses.jsonl``: every record with its ``hypothesis`` beside ``source`` and ``reference``, the
  per-segment term checks, COMET score, time and token counts; ``hypotheses.tsv``: the same for a
  spreadsheet (id, direction, kind, source, reference, hypothesis).
- ``metrics.json``: the metrics overall, per direction and per kind, with sacreBLEU signatures,
  the model's and the data's fingerprints and the library versions.

Metric groups: BLEU and chrF are computed per direction (a corpus BLEU over Chinese and English
targets together would mix two tokenisations); ``overall`` and per-kind figures are the mean of the
directions. Term tallies are pooled counts; COMET is the mean of segment scores.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import logging
import os
import platform
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from medcore.atomic import write_json, write_jsonl, write_text
from medcore.pairs import read_pairs
from medcore.prompt import DIRECTIONS, split_direction
from medcore.terms import Glossary
from medcore.textnorm import normalize
from trainer import metrics as M

log = logging.getLogger(__name__)
KINDS = ("term", "sentence")
LIBRARIES = ("tsx-medtrans", "sacrebleu", "unbabel-comet", "torch", "transformers", "peft", "llama-cpp-python",
             "numpy")


# ---------------------------------------------------------------------------------------------
# Test sets
# ---------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_test_set(path: str | os.PathLike[str], kind: str | None = None) -> list[dict]:
    """Records from a prepared JSONL, or from a pair file (both directions, ``kind`` default sentence)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"test set {path} not found (run `tsx-train prepare` or pass a pair file)")
    if path.suffix.lower() == ".jsonl":
        first = next((line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()), "")
        if first and "direction" in json.loads(first):
            records = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                missing = [k for k in ("id", "direction", "source", "target") if k not in record]
                if missing:
                    raise ValueError(f"{path}:{number}: record lacks {missing}")
                split_direction(record["direction"])
                record.setdefault("kind", kind or "sentence")
                records.append(record)
            return records
    records = []
    for index, pair in enumerate(read_pairs(path)):
        zh, en = normalize(pair.zh, "zh"), normalize(pair.en, "en")
        if not zh or not en:
            continue
        for direction in DIRECTIONS:
            src, _ = split_direction(direction)
            records.append({"id": f"{path.stem}-{index:06d}-{direction}", "kind": kind or "sentence",
                            "direction": direction, "source": zh if src == "zh" else en,
                            "target": en if src == "zh" else zh, "origin": f"{path.name}:{pair.line}"})
    return records


def select_records(records: list[dict], limit: int | None = None, seed: int = 0,
                   directions: Sequence[str] | None = None, kinds: Sequence[str] | None = None) -> list[dict]:
    """Filter by direction/kind and take a seeded sample of ``limit`` records, spread evenly over
    the (direction, kind) cells so a small slice still has every cell; test-set order is kept."""
    chosen = [r for r in records if (not directions or r["direction"] in directions)
              and (not kinds or r["kind"] in kinds)]
    if not limit or limit < 0 or limit >= len(chosen):  # None, 0 or negative: everything
        return chosen
    cells: dict[tuple[str, str], list[int]] = {}
    for index, record in enumerate(chosen):
        cells.setdefault((record["direction"], record["kind"]), []).append(index)
    rng = random.Random(seed)
    for members in cells.values():
        rng.shuffle(members)
    picked: list[int] = []
    keys = sorted(cells)
    while len(picked) < limit:  # round robin over the cells
        progressed = False
        for key in keys:
            if cells[key] and len(picked) < limit:
                picked.append(cells[key].pop())
                progressed = True
        if not progressed:
            break
    return [chosen[i] for i in sorted(picked)]


def load_eval_glossary(path: str | os.PathLike[str] | None) -> Glossary | None:
    """A term file, or ``default``: the app's shipped medical glossary with its priorities and advisory
    everyday words (``medcore.glossary``), i.e. what a user's translation is checked and prompted with."""
    if not path:
        return None
    if str(path) == "default":
        from medcore.glossary import load_glossary

        return load_glossary(use_default=True)
    return Glossary.load(path)


def find_glossary(test_path: str | os.PathLike[str]) -> Path | None:
    """The prepared ``glossary.tsv`` beside a test file or one folder up (``terms/test.jsonl``)."""
    test_path = Path(test_path).resolve()
    for folder in (test_path.parent, test_path.parent.parent):
        if (folder / "glossary.tsv").is_file():
            return folder / "glossary.tsv"
    return None


def data_identity(path: str | os.PathLike[str], records: Sequence[dict]) -> dict:
    path = Path(path)
    ids = "\n".join(r["id"] for r in records).encode()
    return {"path": str(path), "sha256": _sha256(path.read_bytes()), "records": len(records),
            "selection_sha256": _sha256(ids)}


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ---------------------------------------------------------------------------------------------
# Scoring rows (records with hypotheses)
# ---------------------------------------------------------------------------------------------


def _reference(row: dict) -> str:
    return row["reference"] if "reference" in row else row["target"]


def annotate_rows(rows: list[dict], glossary: Glossary | None) -> None:
    """Add per-segment term results to each row (``term_match`` for terms, ``terms`` for sentences)."""
    for row in rows:
        src_lang, tgt_lang = split_direction(row["direction"])
        if row["kind"] == "term":
            match = M.term_exact_match(row["source"], row["hypothesis"], _reference(row), src_lang, tgt_lang, glossary)
            row["term_match"] = match.to_dict()
        elif glossary is not None:
            row["terms"] = M.sentence_term_checks(glossary, row["source"], row["hypothesis"], src_lang, tgt_lang,
                                                  _reference(row))


def add_comet(rows: list[dict], model: Any, batch_size: int = 16, progress: bool = False) -> None:
    """COMET segment scores into ``row["comet"]`` (one model call for every row)."""
    if not rows:
        return
    result = M.comet_score([r["source"] for r in rows], [r["hypothesis"] for r in rows],
                           [_reference(r) for r in rows], model=model, batch_size=batch_size, progress=progress)
    for row, score in zip(rows, result.segments, strict=True):
        row["comet"] = score


def _term_tallies(rows: list[dict]) -> dict[str, M.TermTally]:
    tallies = {"terms": M.TermTally(), "sentences": M.TermTally(), "sentences_ref_confirmed": M.TermTally()}
    for row in rows:
        if "term_match" in row:
            tallies["terms"].total += 1
            tallies["terms"].correct += int(row["term_match"]["ok"])
            if not row["term_match"]["ok"]:
                tallies["terms"].misses.append({"id": row["id"], "source": row["source"],
                                                "hypothesis": row["hypothesis"],
                                                "accepted": row["term_match"]["accepted"]})
        for check in row.get("terms", ()):
            ok = check["status"] == "ok"
            tallies["sentences"].total += 1
            tallies["sentences"].correct += int(ok)
            if not ok:
                tallies["sentences"].misses.append({"id": row["id"], "term": check["term"],
                                                    "expected": check["expected"]})
            if check.get("in_reference"):
                tallies["sentences_ref_confirmed"].total += 1
                tallies["sentences_ref_confirmed"].correct += int(ok)
    return tallies


def _timing(rows: list[dict]) -> dict:
    seconds = [r["seconds"] for r in rows if r.get("seconds") is not None]
    return {"seconds_total": sum(seconds), "seconds_per_segment": sum(seconds) / len(seconds) if seconds else None,
            "hit_length_cap": sum(1 for r in rows if r.get("stopped") is False and not r.get("error")),
            "errors": sum(1 for r in rows if r.get("error"))}


def _tally_dict(tallies: dict[str, M.TermTally], examples: int) -> dict:
    return {k: v.to_dict(max_misses=examples) for k, v in tallies.items()}


def direction_metrics(rows: list[dict], direction: str, examples: int = 5) -> dict:
    """Metrics of rows that share one direction (one target language)."""
    _, tgt_lang = split_direction(direction)
    out: dict[str, Any] = {"n": len(rows)}
    if not rows:
        return out
    hyps, refs = [r["hypothesis"] for r in rows], [_reference(r) for r in rows]
    b, c = M.bleu(hyps, refs, tgt_lang), M.chrf(hyps, refs)
    out.update(bleu=b.score, chrf=c.score, bleu_detail=b.detail, signature={"bleu": b.signature, "chrf": c.signature})
    out.update(_pooled(rows, examples))
    return out


def _pooled(rows: list[dict], examples: int) -> dict[str, Any]:
    """What is pooled over segments whatever their direction: term tallies, mean COMET, timing."""
    out: dict[str, Any] = {"term_accuracy": _tally_dict(_term_tallies(rows), examples)}
    comet = [r["comet"] for r in rows if r.get("comet") is not None]
    if comet:
        out["comet"] = sum(comet) / len(comet)
    out.update(_timing(rows))
    return out


def combined_metrics(rows: list[dict], per_direction: dict[str, dict], examples: int = 5) -> dict:
    """Metrics over several directions: BLEU/chrF averaged over directions, the rest pooled."""
    out: dict[str, Any] = {"n": len(rows)}
    scored = [m for m in per_direction.values() if m.get("n")]
    if not scored:
        return out
    out["bleu"] = sum(m["bleu"] for m in scored) / len(scored)
    out["chrf"] = sum(m["chrf"] for m in scored) / len(scored)
    out["averaged_over"] = [d for d, m in per_direction.items() if m.get("n")]
    out.update(_pooled(rows, examples))
    return out


def score_rows(rows: list[dict], glossary: Glossary | None = None, comet_model: Any = None,
               comet_batch_size: int = 16, progress: bool = False) -> dict:
    """Annotate rows (term checks, COMET) and compute the metric breakdown."""
    annotate_rows(rows, glossary)
    if comet_model is not None:
        add_comet(rows, comet_model, comet_batch_size, progress)
    by_direction: dict[str, dict] = {}
    for direction in DIRECTIONS:
        drows = [r for r in rows if r["direction"] == direction]
        if not drows:
            continue
        by_direction[direction] = {"all": direction_metrics(drows, direction)}
        for kind in KINDS:
            krows = [r for r in drows if r["kind"] == kind]
            if krows:
                by_direction[direction][kind] = direction_metrics(krows, direction)
    by_kind = {}
    for kind in KINDS:
        krows = [r for r in rows if r["kind"] == kind]
        if krows:
            by_kind[kind] = combined_metrics(krows, {d: m.get(kind, {}) for d, m in by_direction.items()})
    overall = combined_metrics(rows, {d: m["all"] for d, m in by_direction.items()})
    signatures = {}
    for direction, m in by_direction.items():
        signatures[f"bleu {direction}"] = m["all"]["signature"]["bleu"]
        signatures["chrf"] = m["all"]["signature"]["chrf"]
    return {"overall": overall, "by_direction": by_direction, "by_kind": by_kind, "signatures": signatures,
            "comet": "computed" if comet_model is not None else "not computed: no COMET checkpoint given",
            "glossary_terms": len(glossary) if glossary is not None else None}


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def translate_records(records: list[dict], translator: Any, progress: bool = True, desc: str = "translating"
                      ) -> list[dict]:
    """Translate records; each returned row is the record plus ``hypothesis`` and how it was made."""
    outputs = translator.translate([(r["source"], r["direction"]) for r in records], progress=progress, desc=desc)
    rows = []
    for record, out in zip(records, outputs, strict=True):
        row = {"id": record["id"], "kind": record["kind"], "direction": record["direction"],
               "source": record["source"], "reference": record["target"], "hypothesis": out.text,
               "seconds": round(out.seconds, 4), "new_tokens": out.new_tokens,
               "max_new_tokens": out.max_new_tokens, "stopped": out.stopped}
        if out.error:
            row["error"] = out.error
        if "origin" in record:
            row["origin"] = record["origin"]
        rows.append(row)
    return rows


def write_hypotheses(rows: list[dict], out_dir: str | os.PathLike[str]) -> None:
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "hypotheses.jsonl", rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["id", "direction", "kind", "source", "reference", "hypothesis"])
    for r in rows:
        writer.writerow([r["id"], r["direction"], r["kind"], r["source"], r["reference"], r["hypothesis"]])
    write_text(out_dir / "hypotheses.tsv", buffer.getvalue())


def read_hypotheses(path: str | os.PathLike[str]) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class CometSpec:
    """Where COMET comes from; the model is loaded on first use and shared by every system."""

    checkpoint: str | None = None
    encoder: str | None = None
    batch_size: int = 16
    _model: Any = field(default=None, repr=False)

    def model(self) -> Any:
        if self.checkpoint is None:
            return None
        if self._model is None:
            self._model = M.load_comet(self.checkpoint, self.encoder)
        return self._model


def evaluate(records: list[dict], translator: Any, out_dir: str | os.PathLike[str], *,
             glossary: Glossary | None = None, comet: CometSpec | None = None, data: dict | None = None,
             name: str = "system", progress: bool = True, resume: bool = False) -> dict:
    """Translate, score and write one system's outputs; returns the metrics (also in metrics.json).

    Translations are saved as they finish (:mod:`trainer.eval_partial`); with ``resume`` an
    interrupted run continues where it stopped and a finished one is not translated again.
    """
    from trainer.eval_partial import discard_partial, finished_metrics, run_key, translate_resumable

    out_dir = Path(out_dir)
    key = run_key(name, translator, records)
    checkpoint = comet.checkpoint if comet else None
    finished = finished_metrics(out_dir, key) if resume else None
    if finished is not None and finished.get("comet_checkpoint") == checkpoint:
        _say(f"{name}: finished earlier with this model and these records ({out_dir / 'metrics.json'})")
        return finished
    if finished is not None:  # same translations, another COMET choice: score again, translate nothing
        rows = read_hypotheses(out_dir / "hypotheses.jsonl")
    else:
        rows = translate_resumable(records, lambda chunk: translate_records(chunk, translator, progress=False),
                                   out_dir, key, resume=resume, progress=progress, desc=name, say=_say)
        # Saved before scoring, so a scoring failure (e.g. COMET) never costs the translations.
        write_hypotheses(rows, out_dir)
    metrics = score_rows(rows, glossary, comet.model() if comet else None,
                         comet.batch_size if comet else 16, progress=False)
    metrics["system"] = name
    metrics["model"] = translator.describe()
    metrics["data"] = data
    metrics["comet_checkpoint"] = checkpoint
    metrics["versions"] = library_versions()
    metrics["run_key"] = key
    write_hypotheses(rows, out_dir)
    write_json(out_dir / "metrics.json", metrics)
    discard_partial(out_dir)
    return metrics


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Ablation: base | +stage 1 | +stage 1+2
# ---------------------------------------------------------------------------------------------


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
    from trainer.modeling import base_fingerprint, read_stage_meta

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
        stack = read_stage_meta(stage2).get("stack")
        if stack is not None and [str(Path(p).resolve()) for p in stack] != [str(Path(stage1).resolve())]:
            warnings.append(f"{stage2} records its earlier stages as {stack}, not [{stage1}]")
    for w in warnings:
        log.warning(w)
    return warnings


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def ablation_table(results: list[dict], significance: dict) -> list[dict]:
    """One flat row per system (the numbers behind the Markdown/CSV table and the chart)."""
    rows = []
    for res in results:
        m = res["metrics"]
        o = m["overall"]
        row = {"system": res["name"], "n": o.get("n"), "bleu": o.get("bleu"), "chrf": o.get("chrf"),
               "comet": o.get("comet"),
               "term_exact_match": o.get("term_accuracy", {}).get("terms", {}).get("accuracy"),
               "term_in_sentences": o.get("term_accuracy", {}).get("sentences", {}).get("accuracy"),
               "seconds_per_segment": o.get("seconds_per_segment")}
        for direction in DIRECTIONS:
            d = m["by_direction"].get(direction, {}).get("all", {})
            row[f"bleu_{direction}"] = d.get("bleu")
            sig = next((s for s in significance.get(direction, {}).get("vs_base", {}).get("systems", [])
                        if s["system"] == res["name"] and "identical" in s), None)
            row[f"p_bleu_{direction}_vs_base"] = sig["bleu"]["p_value"] if sig else None
        rows.append(row)
    return rows


COLUMNS = [("system", "System", None), ("n", "n", None), ("bleu", "BLEU", 1), ("bleu_zh-en", "BLEU zh→en", 1),
           ("bleu_en-zh", "BLEU en→zh", 1), ("chrf", "chrF", 1), ("comet", "COMET", 1),
           ("term_exact_match", "Term EM % (term pairs)", 100), ("term_in_sentences", "Term acc. % (sentences)", 100),
           ("p_bleu_zh-en_vs_base", "p zh→en vs base", None), ("p_bleu_en-zh_vs_base", "p en→zh vs base", None),
           ("seconds_per_segment", "s/segment", 1)]


def table_markdown(rows: list[dict], notes: Sequence[str] = ()) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
             "|" + "|".join("---" if key == "system" else "---:" for key, _, _ in COLUMNS) + "|"]
    for row in rows:
        cells = []
        for key, _, scale in COLUMNS:
            value = row.get(key)
            if key in ("system", "n"):
                cells.append(str(value))
            elif key.startswith("p_"):
                cells.append("–" if value is None else f"{value:.3f}")
            elif key == "comet":
                cells.append(_fmt(value, 1, 4))
            else:
                cells.append(_fmt(value, scale or 1))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + "".join(f"\n{n}" for n in notes) + ("\n" if notes else "")


def table_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[k for k, _, _ in COLUMNS], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k, _, _ in COLUMNS})
    return buffer.getvalue()


def significance_tests(results: list[dict], n_samples: int = 1000, seed: int = 12345) -> dict:
    """Paired bootstrap per direction: every system vs base, and the last system vs the one before."""
    if len(results) < 2:
        return {}
    out: dict[str, dict] = {}
    for direction in DIRECTIONS:
        _, tgt_lang = split_direction(direction)
        per_system = [(r["name"], [row for row in r["rows"] if row["direction"] == direction]) for r in results]
        if not per_system[0][1]:
            continue
        refs = [_reference(row) for row in per_system[0][1]]
        hyps = [(name, [row["hypothesis"] for row in rows]) for name, rows in per_system]
        out[direction] = {"vs_base": M.paired_bootstrap(hyps[0], hyps[1:], refs, tgt_lang, n_samples, seed)}
        if len(hyps) > 2:
            out[direction][f"{hyps[-1][0]} vs {hyps[-2][0]}"] = M.paired_bootstrap(
                hyps[-2], [hyps[-1]], refs, tgt_lang, n_samples, seed)
    return out


def run_ablation(systems: Sequence[SystemSpec], test: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 backend: str = "transformers", limit: int | None = None, seed: int = 0,
                 glossary_path: str | os.PathLike[str] | None = None, comet: CometSpec | None = None,
                 batch_size: int = 8, n_ctx: int = 4096, bootstrap_samples: int = 1000, progress: bool = True,
                 translator_factory: Callable[..., Any] | None = None, directions: Sequence[str] | None = None,
                 kinds: Sequence[str] | None = None, max_new_cap: int | None = None,
                 translator_kwargs: dict | None = None, resume: bool = False) -> dict:
    """Run every system on the same records; write the table (md/csv/json) and the chart."""
    from trainer.eval_plots import plot_ablation
    from trainer.translate import make_translator

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
                               data=data, name=spec.name, progress=progress, resume=resume)
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
