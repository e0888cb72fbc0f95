"""Loss curves as PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

from medcore.atomic import atomic_path


def plot_loss_curves(history: list[dict], path: str | Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    val = [(h["step"], h["val_loss"]) for h in history if h.get("val_loss") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", color="#4c72b0", alpha=0.8)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", color="#dd8452")
        best_step, best = min(val, key=lambda sv: sv[1])
        ax.scatter([best_step], [best], s=160, facecolors="none", edgecolors="#c44e52", linewidths=2,
                   label=f"kept: step {best_step} ({best:.3f})", zorder=5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("token cross-entropy (answer tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
