"""The ablation chart: one group of bars per metric, one bar per system (cf. the paper's Figure 4)."""

from __future__ import annotations

from pathlib import Path

from medcore.atomic import atomic_path

# (key in the table row, label, scale to 0-100)
PANELS = [("bleu_zh-en", "BLEU zh→en", 1.0), ("bleu_en-zh", "BLEU en→zh", 1.0), ("chrf", "chrF", 1.0),
          ("term_exact_match", "Term EM %", 100.0), ("term_in_sentences", "Term acc. %\n(sentences)", 100.0),
          ("comet", "COMET ×100", 100.0)]
COLOURS = ["#8c8c8c", "#4c72b0", "#dd8452", "#55a868", "#c44e52"]


def plot_ablation(rows: list[dict], path: str | Path, title: str = "Ablation") -> Path:
    """Grouped bar chart of the ablation table rows; metrics nobody has (e.g. COMET) are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in PANELS if any(r.get(p[0]) is not None for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(panels) + 2), 4.2), dpi=120)
    width = 0.8 / max(1, len(rows))
    for index, row in enumerate(rows):
        xs = [k + (index - (len(rows) - 1) / 2) * width for k in range(len(panels))]
        values = [(row.get(key) or 0.0) * scale for key, _, scale in panels]
        bars = ax.bar(xs, values, width * 0.95, label=row["system"], color=COLOURS[index % len(COLOURS)])
        for bar, (key, _, _) in zip(bars, panels, strict=True):
            text = "n/a" if row.get(key) is None else f"{bar.get_height():.1f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(panels)))
    ax.set_xticklabels([label for _, label, _ in panels])
    top = max([(r.get(k) or 0.0) * s for r in rows for k, _, s in panels] + [1.0])
    ax.set_ylim(0, min(105.0, top * 1.18 + 1))
    ax.set_ylabel("score (0–100)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
