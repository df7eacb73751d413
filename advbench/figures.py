"""Figures (matplotlib, PNG + PDF) generated from the Parquet results and checkpoints only.

Colours are the Okabe-Ito palette (colour-blind safe); eps is always on the x axis, in the paper's pixel
scale (inputs in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from advbench.results import atomic_path  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
EPS_LABEL = "ε (L∞ perturbation, pixel scale [0, 1])"


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically; close the figure."""
    paths = []
    for suffix in (".png", ".pdf"):
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def _run_bands(ax: plt.Axes, df: pd.DataFrame, x: str, metric: str) -> None:
    """One line per (model, regime): mean of ``metric`` (%) over seeds against ``x``, with a ± sd band."""
    for i, ((model, regime), run) in enumerate(df.groupby(["model", "regime"], sort=True)):
        stats = run.groupby(x)[metric].agg(["mean", "std"]).fillna(0.0) * 100
        xs, mean, sd = stats.index.to_numpy(), stats["mean"].to_numpy(), stats["std"].to_numpy()
        color = OKABE_ITO[i % len(OKABE_ITO)]
        ax.plot(xs, mean, marker="o", ms=3, color=color, label=f"{model} ({regime})")
        ax.fill_between(xs, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)


def eps_curves(attack: pd.DataFrame) -> Figure:
    """FGSM error and confidence on mistakes vs eps, per model and regime, mean ± sd over seeds."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True, constrained_layout=True)
    metrics = [("error", "FGSM error (%)"), ("mean_conf_wrong", "mean confidence on mistakes (%)")]
    for col, clipped in enumerate((False, True)):
        sub = attack[attack["clipped"] == clipped]
        for row, (metric, ylabel) in enumerate(metrics):
            ax = axes[row, col]
            _run_bands(ax, sub, "eps", metric)
            ax.set_ylabel(ylabel)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title("clipped to [0, 1]" if clipped else "unclipped (paper)")
            if row == 1:
                ax.set_xlabel(EPS_LABEL)
    axes[0, 0].legend(loc="lower right", fontsize=8)
    return fig


def transfer_matrix(
    attack: pd.DataFrame, transfer: pd.DataFrame, eps: float, clipped: bool = False
) -> pd.DataFrame:
    """Mean error (%) of each target on each source's FGSM examples; the diagonal is white-box."""
    own = attack.assign(source=attack["model"] + "-" + attack["regime"])
    own = own.assign(target=own["source"])
    cross = transfer.assign(
        source=transfer["source_model"] + "-" + transfer["source_regime"],
        target=transfer["target_model"] + "-" + transfer["target_regime"],
    )
    both = pd.concat([own, cross], ignore_index=True)
    both = both[(np.isclose(both["eps"], eps)) & (both["clipped"] == clipped)]
    return both.pivot_table(index="source", columns="target", values="error", aggfunc="mean") * 100


def transfer_heatmap(matrix: pd.DataFrame, eps: float) -> Figure:
    """Heatmap of :func:`transfer_matrix`, annotated with the percentages."""
    fig, ax = plt.subplots(figsize=(1.6 * len(matrix.columns) + 2.5, 1.2 * len(matrix) + 1.5))
    image = ax.imshow(matrix.to_numpy(), cmap="cividis", vmin=0, vmax=100)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("target model (scored)")
    ax.set_ylabel("source model (crafts FGSM examples)")
    ax.set_title(f"FGSM error (%) at ε = {eps:g}, unclipped; diagonal = own examples")
    for (i, j), value in np.ndenumerate(matrix.to_numpy()):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="white" if value < 60 else "black")
    fig.colorbar(image, ax=ax, label="error (%)")
    return fig


def training_curves(curves: pd.DataFrame) -> Figure:
    """Clean and FGSM validation error per epoch, per model and regime, mean ± sd over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    panels = [
        ("val_error", "clean validation error", "log"),
        ("val_adv_error", "FGSM validation error", "linear"),
    ]
    for ax, (metric, title, scale) in zip(axes, panels, strict=True):
        _run_bands(ax, curves, "epoch", metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{title} (%)")
        ax.set_yscale(scale)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(alpha=0.3, which="both")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    return fig


def weight_panels(weights: Sequence[tuple[str, np.ndarray]], n: int = 10) -> Figure:
    """First-layer weight vectors (rows of 784) as 28x28 images, one row of ``n`` per model (paper Fig. 3)."""
    fig, axes = plt.subplots(len(weights), n, figsize=(1.1 * n, 1.3 * len(weights) + 0.3), squeeze=False)
    for r, (label, w) in enumerate(weights):
        for c in range(n):
            ax = axes[r, c]
            image = w[c].reshape(28, 28)
            lim = np.abs(image).max() or 1.0
            ax.imshow(image, cmap="gray", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("first-layer weights (one piece per maxout unit; grey = 0)")
    return fig


def adversarial_grid(
    clean: np.ndarray,
    adversarial: np.ndarray,
    row_labels: Sequence[str],
    captions: Sequence[tuple[str, str]],
    eps: float,
) -> Figure:
    """Rows of clean image, perturbation and adversarial image, each captioned with class and confidence."""
    n = len(clean)
    fig, axes = plt.subplots(n, 3, figsize=(6.5, 2.1 * n), squeeze=False, constrained_layout=True)
    for i in range(n):
        panels = [
            (clean[i], captions[i][0], "gray", 0.0, 1.0),
            (adversarial[i] - clean[i], f"+ perturbation (±{eps:g})", "coolwarm", -eps, eps),
            (adversarial[i], captions[i][1], "gray", 0.0, 1.0),
        ]
        for ax, (img, text, cmap, lo, hi) in zip(axes[i], panels, strict=True):
            ax.imshow(img.reshape(28, 28), cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(text, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(row_labels[i], fontsize=9)
    fig.suptitle(f"FGSM examples, ε = {eps:g} (unclipped)")
    return fig
