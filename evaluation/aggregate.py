"""From rows (records with hypotheses) to the metric breakdown: per direction, per kind, overall.

BLEU and chrF are computed per direction (a corpus BLEU over Chinese and English targets together
would mix two tokenisations); ``overall`` and per-kind figures are the mean of the directions. Term
tallies are pooled counts; COMET is the mean of segment scores.
"""

from __future__ import annotations

from typing import Any

from evaluation import scoring as S
from medcore.prompt import DIRECTIONS, split_direction
from medcore.records import KINDS
from medcore.terms import Glossary


def reference(row: dict) -> str:
    """A row's reference translation (``reference``; ``target`` in rows made by hand)."""
    return row["reference"] if "reference" in row else row["target"]


def annotate_rows(rows: list[dict], glossary: Glossary | None) -> None:
    """Add per-segment term results to each row (``term_match`` for terms, ``terms`` for sentences)."""
    for row in rows:
        src_lang, tgt_lang = split_direction(row["direction"])
        if row["kind"] == "term":
            match = S.term_exact_match(row["source"], row["hypothesis"], reference(row), src_lang, tgt_lang, glossary)
            row["term_match"] = match.to_dict()
        elif glossary is not None:
            row["terms"] = S.sentence_term_checks(glossary, row["source"], row["hypothesis"], src_lang, tgt_lang,
                                                  reference(row))


def add_comet(rows: list[dict], model: Any, batch_size: int = 16, progress: bool = False) -> None:
    """COMET segment scores into ``row["comet"]`` (one model call for every row)."""
    if not rows:
        return
    result = S.comet_score([r["source"] for r in rows], [r["hypothesis"] for r in rows],
                           [reference(r) for r in rows], model=model, batch_size=batch_size, progress=progress)
    for row, score in zip(rows, result.segments, strict=True):
        row["comet"] = score


def _term_tallies(rows: list[dict]) -> dict[str, S.TermTally]:
    tallies = {"terms": S.TermTally(), "sentences": S.TermTally(), "sentences_ref_confirmed": S.TermTally()}
    for row in rows:
        if "term_match" in row:
            tallies["terms"].total += 1
            tallies["terms"].correct += int(row["term_match"]["ok"])
            if not row["term_match"]["ok"]:
                tallies["terms"].misses.append({"id": row["id"], "source": row["source"],
                                                "hypothesis": row["hypothesis"],
                                                "accepted": row["term_match"]["accepted"]})
        for check in row.get("terms", ()):
            if check["status"] == "advisory":  # not a required term: neither a hit nor a miss
                continue
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


def _tally_dict(tallies: dict[str, S.TermTally], examples: int) -> dict:
    return {k: v.to_dict(max_misses=examples) for k, v in tallies.items()}


def direction_metrics(rows: list[dict], direction: str, examples: int = 5) -> dict:
    """Metrics of rows that share one direction (one target language)."""
    _, tgt_lang = split_direction(direction)
    out: dict[str, Any] = {"n": len(rows)}
    if not rows:
        return out
    hyps, refs = [r["hypothesis"] for r in rows], [reference(r) for r in rows]
    b, c = S.bleu(hyps, refs, tgt_lang), S.chrf(hyps, refs)
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
