"""The ablation chart: one group of bars per metric, one bar per system (cf. the paper's Figure 4)."""

from __future__ import annotations

from pathlib import Path

from medcore.atomic import atomic_path

# (key in the table row, label, scale to 0-100)
PANELS = [("bleu_zh-en", "BLEU zh→en", 1.0), ("bleu_en-zh", "BLEU en→zh", 1.0), ("chrf", "chrF", 1.0),
          ("term_exact_match", "Term EM %", 100.0), ("term_in_sentences", "Term acc. %\n(sentences)", 100.0),
          ("comet", "COMET ×100", 100.0)]
# When the test set has both kinds: each kind on its own (pooled BLEU is mostly the many short term
# pairs and hides what happens to sentences).
KIND_PANELS = [("bleu_sentence_zh-en", "sentences\nBLEU zh→en", 1.0), ("bleu_sentence_en-zh", "sentences\nBLEU en→zh", 1.0),
               ("chrf_sentence", "sentences\nchrF", 1.0), ("term_in_sentences", "sentences\nterm acc. %", 100.0),
               ("bleu_term_zh-en", "term pairs\nBLEU zh→en", 1.0), ("bleu_term_en-zh", "term pairs\nBLEU en→zh", 1.0),
               ("term_exact_match", "term pairs\nexact match %", 100.0), ("comet", "COMET ×100", 100.0)]
COLOURS = ["#8c8c8c", "#4c72b0", "#dd8452", "#55a868", "#c44e52"]


def chart_panels(rows: list[dict]) -> list[tuple[str, str, float]]:
    """Per-kind panels when every row has sentences and term pairs, else the pooled ones; metrics nobody
    has (e.g. COMET) are left out."""
    by_kind = all(r.get(f"bleu_{kind}_{d}") is not None for r in rows for kind in ("sentence", "term")
                  for d in ("zh-en", "en-zh"))
    return [p for p in (KIND_PANELS if by_kind else PANELS) if any(r.get(p[0]) is not None for r in rows)]


def plot_ablation(rows: list[dict], path: str | Path, title: str = "Ablation") -> Path:
    """Grouped bar chart of the ablation table rows (panels: :func:`chart_panels`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = chart_panels(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(panels) + 2), 4.4), dpi=120)
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
