"""Is a system's difference real? Paired bootstrap per direction over an ablation's systems."""

from __future__ import annotations

from evaluation.aggregate import reference
from evaluation.scoring import paired_bootstrap
from medcore.prompt import DIRECTIONS, split_direction


def significance_tests(results: list[dict], n_samples: int = 1000, seed: int = 12345) -> dict:
    """Paired bootstrap per direction: every system vs base, and the last system vs the one before.

    ``results``: ``{"name", "rows"}`` per system, base first, all over the same records in the same order.
    """
    if len(results) < 2:
        return {}
    out: dict[str, dict] = {}
    for direction in DIRECTIONS:
        _, tgt_lang = split_direction(direction)
        per_system = [(r["name"], [row for row in r["rows"] if row["direction"] == direction]) for r in results]
        if not per_system[0][1]:
            continue
        refs = [reference(row) for row in per_system[0][1]]
        hyps = [(name, [row["hypothesis"] for row in rows]) for name, rows in per_system]
        out[direction] = {"vs_base": paired_bootstrap(hyps[0], hyps[1:], refs, tgt_lang, n_samples, seed)}
        if len(hyps) > 2:
            out[direction][f"{hyps[-1][0]} vs {hyps[-2][0]}"] = paired_bootstrap(
                hyps[-2], [hyps[-1]], refs, tgt_lang, n_samples, seed)
    return out
