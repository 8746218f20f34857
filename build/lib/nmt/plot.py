"""Attention heatmaps as PNG files (matplotlib, imported only when plotting)."""

from __future__ import annotations

from pathlib import Path


def plot_attention(
    attention: list[list[float]],
    source_tokens: list[str],
    target_tokens: list[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Draw a (target x source) attention matrix with tokens on both axes.

    ``attention`` may hold one more row than ``target_tokens`` (the EOS step); it is
    labelled ``</s>``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(target_tokens) + ["</s>"] * (len(attention) - len(target_tokens))
    width = max(4.0, 0.45 * len(source_tokens) + 2)
    height = max(3.0, 0.4 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(attention, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
