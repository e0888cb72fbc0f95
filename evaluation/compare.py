"""Two systems on the same records, group by group: which one is better, and is the difference real?

``tsx-eval compare A B`` reads two ``tsx-eval run`` (or ablation system) folders made on the same
records and prints, for every direction × kind, B against A: BLEU and chrF with sacreBLEU's paired
bootstrap p-value, and term accuracy (exact match on term pairs; glossary terms rendered as expected
in sentences) with a paired bootstrap over records. This is the table behind "does the tuned model
beat the 1.5B base" (issue 11): a model can win on term pairs and lose on sentences, and an overall
BLEU over both hides that.

``--examples N`` adds N segments per direction to read side by side: a seeded draw among the
sentences the two systems translate differently (not the ones that flatter either side), each with
its sentence-level chrF against the reference.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from evaluation.aggregate import reference
from evaluation.runs import read_hypotheses
from evaluation.scoring import paired_bootstrap


def term_outcomes(row: dict, confirmed_only: bool = False) -> list[bool]:
    """The row's term decisions: one for a term pair, one per required glossary term checked in a
    sentence (advisory ones are no decision; ``confirmed_only``: only terms the reference itself uses)."""
    if "term_match" in row:
        return [bool(row["term_match"]["ok"])]
    return [c["status"] == "ok" for c in row.get("terms") or ()
            if c.get("status") != "advisory" and (c.get("in_reference") or not confirmed_only)]


def paired_accuracy(a_rows: Sequence[dict], b_rows: Sequence[dict], n_samples: int = 1000,
                    seed: int = 12345) -> dict | None:
    """Term accuracy of A and B and a paired bootstrap p-value over records (None without term decisions).

    Records are resampled together for both systems; each system's accuracy is its correct decisions
    over its decisions in the resample (an advisory term left untranslated is a decision for one
    system only). The p-value is the share of resamples in which B's advantage (or disadvantage)
    disappears or flips, the same reading as sacreBLEU's paired bootstrap.
    """
    pairs = []
    for ra, rb in zip(a_rows, b_rows, strict=True):
        oa, ob = term_outcomes(ra), term_outcomes(rb)
        if oa or ob:
            pairs.append((sum(oa), len(oa), sum(ob), len(ob)))
    if not pairs or not sum(x[1] for x in pairs) or not sum(x[3] for x in pairs):
        return None

    def accuracies(sample: Sequence[tuple[int, int, int, int]]) -> tuple[float, float]:
        na, nb = sum(x[1] for x in sample), sum(x[3] for x in sample)
        return (sum(x[0] for x in sample) / na if na else 0.0, sum(x[2] for x in sample) / nb if nb else 0.0)

    a_acc, b_acc = accuracies(pairs)
    observed = b_acc - a_acc
    rng = random.Random(seed)
    against = 0
    for _ in range(n_samples):
        sa, sb = accuracies([pairs[rng.randrange(len(pairs))] for _ in pairs])
        against += (sb - sa <= 0) if observed > 0 else (sb - sa >= 0)
    return {"n": sum(x[1] for x in pairs), "n_b": sum(x[3] for x in pairs), "a": a_acc, "b": b_acc,
            "p_value": (against + 1) / (n_samples + 1) if observed else 1.0}


def compare_rows(a_rows: list[dict], b_rows: list[dict], n_samples: int = 1000) -> list[dict]:
    """One result per direction × kind (rows matched by id).

    One run may cover more than the other (a whole test split against a sentences-only run): then
    the records of the smaller run are compared, and they must all be in the larger one.
    """
    by_id = {r["id"]: r for r in b_rows}
    if len(b_rows) < len(a_rows):  # compare on B's records
        a_by_id = {r["id"]: r for r in a_rows}
        if all(r["id"] in a_by_id for r in b_rows):
            a_rows = [a_by_id[r["id"]] for r in b_rows]
    missing = [r["id"] for r in a_rows if r["id"] not in by_id]
    if missing:
        raise ValueError(f"the runs translated different records ({len(missing)} of A's are not in B, "
                         f"e.g. {missing[0]}): compare runs made with the same --test/--limit/--seed")
    out = []
    groups = sorted({(r["direction"], r["kind"]) for r in a_rows})
    for direction, kind in groups:
        a = [r for r in a_rows if (r["direction"], r["kind"]) == (direction, kind)]
        b = [by_id[r["id"]] for r in a]
        boot = paired_bootstrap(("A", [r["hypothesis"] for r in a]), [("B", [r["hypothesis"] for r in b])],
                                [reference(r) for r in a], direction.split("-")[1], n_samples=n_samples)
        sa, sb = boot["systems"]
        out.append({"direction": direction, "kind": kind, "n": len(a),
                    "bleu": (sa["bleu"]["score"], sb["bleu"]["score"], sb["bleu"]["p_value"]),
                    "chrf": (sa["chrf"]["score"], sb["chrf"]["score"], sb["chrf"]["p_value"]),
                    "terms": paired_accuracy(a, b, n_samples)})
    return out


def differing_examples(a_rows: Sequence[dict], b_rows: Sequence[dict], per_direction: int, seed: int = 12345,
                       kind: str = "sentence") -> list[dict]:
    """A seeded draw of ``per_direction`` records of ``kind`` per direction whose two outputs differ.

    Each example carries source, reference, both hypotheses and their sentence-level chrF. Drawn
    uniformly among the differing records, so the sample shows what changed, good and bad alike.
    """
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    by_id = {r["id"]: r for r in b_rows}
    out = []
    for direction in sorted({r["direction"] for r in a_rows if r["kind"] == kind}):
        differ = [(ra, by_id[ra["id"]]) for ra in a_rows
                  if ra["kind"] == kind and ra["direction"] == direction and ra["id"] in by_id
                  and ra["hypothesis"].strip() != by_id[ra["id"]]["hypothesis"].strip()]
        rng = random.Random(f"{seed}:{direction}")
        for ra, rb in sorted(rng.sample(differ, min(per_direction, len(differ))), key=lambda p: p[0]["id"]):
            ref = reference(ra)
            out.append({"id": ra["id"], "direction": direction, "source": ra["source"], "reference": ref,
                        "a": ra["hypothesis"], "b": rb["hypothesis"],
                        "chrf_a": chrf.sentence_score(ra["hypothesis"], [ref]).score,
                        "chrf_b": chrf.sentence_score(rb["hypothesis"], [ref]).score})
    return out


def compare_runs(a_dir: str | Path, b_dir: str | Path, n_samples: int = 1000, examples: int = 0) -> dict:
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    names = [json.loads((d / "metrics.json").read_text(encoding="utf-8")).get("system") or d.name for d in (a_dir, b_dir)]
    a_rows, b_rows = read_hypotheses(a_dir / "hypotheses.jsonl"), read_hypotheses(b_dir / "hypotheses.jsonl")
    result = {"a": names[0], "b": names[1], "groups": compare_rows(a_rows, b_rows, n_samples),
              "bootstrap_samples": n_samples}
    if examples:
        result["examples"] = differing_examples(a_rows, b_rows, examples)
    return result


def table_markdown(result: dict) -> str:
    a, b = result["a"], result["b"]

    def trio(v: tuple, scale: float = 1.0) -> str:
        pa, pb, p = v
        return f"{pa * scale:.2f} → **{pb * scale:.2f}** ({'–' if p is None else f'{p:.3f}'})"

    lines = [f"B = {b} against A = {a}; p: paired bootstrap ({result['bootstrap_samples']} resamples).", "",
             "| direction | kind | n | BLEU A → B (p) | chrF A → B (p) | term accuracy % A → B (p, decisions) |",
             "|---|---|---:|---|---|---|"]
    for g in result["groups"]:
        t = g["terms"]
        terms = "–" if t is None else f"{100 * t['a']:.1f} → **{100 * t['b']:.1f}** ({t['p_value']:.3f}, {t['n']})"
        lines.append(f"| {g['direction']} | {g['kind']} | {g['n']} | {trio(g['bleu'])} | {trio(g['chrf'])} | {terms} |")
    if result.get("examples"):
        lines += ["", "Sentences the two translate differently (a seeded draw; chrF per sentence):", ""]
        for ex in result["examples"]:
            lines += [f"- **{ex['id']}** ({ex['direction']})", f"  - source: {ex['source']}",
                      f"  - reference: {ex['reference']}",
                      f"  - {a} (chrF {ex['chrf_a']:.1f}): {ex['a']}",
                      f"  - {b} (chrF {ex['chrf_b']:.1f}): {ex['b']}"]
    return "\n".join(lines) + "\n"
