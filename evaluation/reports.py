"""The ablation's table: one flat row per system, written as Markdown and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from medcore.prompt import DIRECTIONS
from medcore.records import KINDS


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
            for kind in KINDS:  # pooled BLEU is mostly term pairs; the chart shows each kind on its own
                row[f"bleu_{kind}_{direction}"] = m["by_direction"].get(direction, {}).get(kind, {}).get("bleu")
        for kind in KINDS:
            row[f"chrf_{kind}"] = m.get("by_kind", {}).get(kind, {}).get("chrf")
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
