"""What the prompt's term block does to a model's translations: the same records with and without it.

Give two ``tsx-eval run`` folders made with the same model and glossary, one with ``--term-block``
and one without; the plain run may cover more records (a whole test split), its rows for the block
run's records are compared::

    tsx-eval run --backend llamacpp --model M --kinds sentence --glossary default --limit 100 --out runs/tb/plain
    tsx-eval run --backend llamacpp --model M --kinds sentence --glossary default --limit 100 --out runs/tb/block --term-block
    python -m benchmarks.term_block_effect runs/tb/plain runs/tb/block

Per direction it prints BLEU and chrF with the paired-bootstrap p-value of the difference, the share
of glossary terms rendered as expected (all checked terms, and those the reference itself uses), and
how many outputs **echo the block** (contain its header or one of its "term → translation" lines)
instead of only translating. An echoed block also contains the expected translations, so the term
accuracy of echoing outputs is inflated: the accuracy on outputs that do not echo is printed too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.compare import compare_rows, term_outcomes
from medcore.prompt import load_contract


def read_run(folder: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in (folder / "hypotheses.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return metrics, rows


def echoes_block(hypothesis: str) -> bool:
    """The output repeats the term block: its header, or a line shaped like one of its entries."""
    block = load_contract().term_block
    header = block.header.rstrip(":：").strip().lower()
    arrow = block.entry.replace("{source_term}", "").replace("{target_term}", "").strip()
    return header in hypothesis.lower() or any(arrow in line for line in hypothesis.splitlines())


def term_counts(rows: list[dict], confirmed_only: bool = False) -> tuple[int, int]:
    """(rendered as expected, checked) over the rows' glossary term checks (advisory words excluded)."""
    outcomes = [ok for row in rows for ok in term_outcomes(row, confirmed_only)]
    return sum(outcomes), len(outcomes)


def _share(counts: tuple[int, int]) -> str:
    ok, total = counts
    return f"{ok / total:.3f} ({ok}/{total})" if total else "–"


def compare(plain_dir: Path, block_dir: Path, n_samples: int = 1000) -> list[dict]:
    plain_metrics, plain = read_run(plain_dir)
    block_metrics, block = read_run(block_dir)
    if not block_metrics["model"].get("term_block") or plain_metrics["model"].get("term_block"):
        raise SystemExit(f"{block_dir} must be the --term-block run and {plain_dir} the plain one")
    # The plain run may cover more (a whole test split with its terms): its rows for the block run's records.
    by_id = {r["id"]: r for r in plain}
    if any(r["id"] not in by_id for r in block):
        raise SystemExit("the plain run lacks records of the block run: use the same --test/--limit/--seed "
                         "(and --kinds sentence, or no --kinds, for the plain run)")
    groups = compare_rows(plain, block, n_samples)  # BLEU/chrF with p-values, per direction
    out = []
    for group in groups:
        b = [r for r in block if r["direction"] == group["direction"]]
        p = [by_id[r["id"]] for r in b]
        clean = [i for i, r in enumerate(b) if not echoes_block(r["hypothesis"])]
        out.append({
            "direction": group["direction"], "n": len(p), "bleu": group["bleu"], "chrf": group["chrf"],
            "terms": (term_counts(p), term_counts(b)),
            "terms_confirmed": (term_counts(p, True), term_counts(b, True)),
            "echoed": len(b) - len(clean),
            "terms_not_echoed": (term_counts([p[i] for i in clean]), term_counts([b[i] for i in clean])),
        })
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("plain", type=Path, help="tsx-eval run folder without --term-block")
    ap.add_argument("block", type=Path, help="the same run with --term-block")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)
    rows = compare(args.plain, args.block, args.bootstrap)
    model = json.loads((args.block / "metrics.json").read_text())["model"]
    print(f"model: {model.get('tuned_model') or Path(str(model.get('gguf', '?'))).name}, "
          f"adapters: {len(model.get('adapters') or [])}")
    print("| direction | n | BLEU plain → block (p) | chrF plain → block (p) | term acc. plain → block | "
          "… terms the reference uses | outputs echoing the block | term acc., outputs not echoing |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        bp, bb, bpv = r["bleu"]
        cp, cb, cpv = r["chrf"]
        print(f"| {r['direction']} | {r['n']} | {bp:.2f} → {bb:.2f} ({bpv:.3f}) | {cp:.2f} → {cb:.2f} ({cpv:.3f}) | "
              f"{_share(r['terms'][0])} → {_share(r['terms'][1])} | "
              f"{_share(r['terms_confirmed'][0])} → {_share(r['terms_confirmed'][1])} | {r['echoed']}/{r['n']} | "
              f"{_share(r['terms_not_echoed'][0])} → {_share(r['terms_not_echoed'][1])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
