"""Image panels: weights and inputs drawn as pictures (paper Figs. 2 and 3, the panda figure, rubbish noise).

Every function takes the image shape from the data: ``(H, W)`` is drawn in grey, ``(H, W, 3)`` or
``(3, H, W)`` in colour. Pixel values live in [0, 1]; signed images (weights, perturbations) are drawn on a
symmetric scale around a neutral mid-grey or white.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from advbench.data.registry import DATASETS  # noqa: E402

DIVERGING = "RdBu_r"  # ColorBrewer RdBu: colour-blind safe; white = 0


def class_name(dataset: str, index: int) -> str:
    """A class's name (CIFAR-10) or its digit."""
    names = DATASETS[dataset].classes if dataset in DATASETS else ()
    return names[index] if 0 <= index < len(names) else str(index)


def as_image(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A flat or shaped input as something ``imshow`` draws: (H, W) or (H, W, 3); channel-first to last."""
    img = np.asarray(x, dtype=np.float64).reshape(tuple(shape))
    if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        img = np.moveaxis(img, 0, -1)
    return img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img


def show_pixels(ax: plt.Axes, x: np.ndarray, shape: Sequence[int]) -> None:
    """An input in [0, 1] (values outside are clipped for display only)."""
    img = np.clip(as_image(x, shape), 0.0, 1.0)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    _bare(ax)


def show_signed(ax: plt.Axes, x: np.ndarray, shape: Sequence[int], lim: float | None = None) -> None:
    """A signed image (weights, a perturbation) on [-lim, lim]: diverging colours in grey, mid-grey = 0 in
    colour."""
    img = as_image(x, shape)
    lim = float(lim if lim is not None else np.abs(img).max()) or 1.0
    if img.ndim == 2:
        ax.imshow(img, cmap=DIVERGING, vmin=-lim, vmax=lim, interpolation="nearest")
    else:
        ax.imshow(np.clip(0.5 + img / (2 * lim), 0.0, 1.0), interpolation="nearest")
    _bare(ax)


def show_noise(ax: plt.Axes, x: np.ndarray, shape: Sequence[int], sd: float = 3.0) -> None:
    """A standard-normal input on a grey (or colour) scale from -``sd`` to +``sd``, mid-grey = 0."""
    img = as_image(x, shape)
    if img.ndim == 2:
        ax.imshow(img, cmap="gray", vmin=-sd, vmax=sd, interpolation="nearest")
    else:
        ax.imshow(np.clip(0.5 + img / (2 * sd), 0.0, 1.0), interpolation="nearest")
    _bare(ax)


def _bare(ax: plt.Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


@dataclass(frozen=True)
class Example:
    """One clean input, its adversarial version and the model's predictions on both."""

    clean: np.ndarray
    adversarial: np.ndarray
    label: str
    clean_pred: str
    adv_pred: str
    row: str


def adversarial_grid(
    examples: Sequence[Example], shape: Sequence[int], lim: float, title: str, perturbation: str
) -> Figure:
    """The paper's panda figure: per row a clean input, + the perturbation (drawn on [-``lim``, ``lim``],
    captioned ``perturbation``), = the adversarial input, each captioned with the predicted class and its
    probability."""
    n = len(examples)
    fig, axes = plt.subplots(n, 3, figsize=(7.2, 2.3 * n + 0.5), squeeze=False, layout="constrained")
    for i, ex in enumerate(examples):
        left, mid, right = axes[i]
        show_pixels(left, ex.clean, shape)
        left.set_title(f"clean (label {ex.label})\npredicted {ex.clean_pred}", fontsize=9)
        show_signed(mid, ex.adversarial - ex.clean, shape, lim)
        mid.set_title(perturbation, fontsize=9)
        show_pixels(right, ex.adversarial, shape)
        right.set_title(f"= adversarial\npredicted {ex.adv_pred}", fontsize=9)
        left.set_ylabel(ex.row, fontsize=9)
    fig.suptitle(title)
    return fig


def weight_panels(
    weights: Sequence[tuple[str, np.ndarray, Sequence[int]]],
    n: int = 10,
    title: str = "First-layer weights (one piece per maxout unit); red > 0, blue < 0, white = 0",
) -> Figure:
    """Paper Fig. 3: first-layer weight vectors drawn as images, one row of ``n`` per model (label, weights,
    the shape of one unit's weights), each on its own symmetric scale (white = 0)."""
    fig, axes = plt.subplots(
        len(weights),
        n,
        figsize=(1.15 * n + 1.2, 1.35 * len(weights) + 1.2),
        squeeze=False,
        layout="constrained",
    )
    for r, (label, w, shape) in enumerate(weights):
        for c in range(n):
            if c < len(w):
                show_signed(axes[r, c], w[c], shape)
            else:
                axes[r, c].axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title)
    return fig


def logistic_panels(
    w: np.ndarray, clean: np.ndarray, adversarial: np.ndarray, shape: Sequence[int], title: str
) -> Figure:
    """Paper Fig. 2: (a) the logistic regression's weights, (b) sign(w), (c) clean inputs of both classes,
    (d) their FGSM versions."""
    k = len(clean)
    fig = plt.figure(figsize=(2.0 * (k + 2), 4.6), layout="constrained")
    grid = fig.add_gridspec(2, k + 2)
    panels = [(w, "(a) weights w"), (np.sign(w), "(b) sign(w)")]
    for col, (img, text) in enumerate(panels):
        ax = fig.add_subplot(grid[:, col])
        show_signed(ax, img, shape)
        ax.set_title(text, fontsize=9)
    for j in range(k):
        top, bottom = fig.add_subplot(grid[0, j + 2]), fig.add_subplot(grid[1, j + 2])
        show_pixels(top, clean[j], shape)
        show_pixels(bottom, adversarial[j], shape)
        top.set_title("(c) clean" if j == 0 else "", fontsize=9)
        bottom.set_title("(d) adversarial" if j == 0 else "", fontsize=9)
    fig.suptitle(title)
    return fig


def rubbish_samples(
    noise: np.ndarray,
    predictions: Sequence[Sequence[tuple[str, float]]],
    row_labels: Sequence[str],
    shape: Sequence[int],
    threshold: float,
) -> Figure:
    """App. A: the same N(0, I) samples under each model's prediction: one row per model,
    ``predictions[r][c]`` the predicted class and its probability, in bold above ``threshold``."""
    rows, cols = len(predictions), len(noise)
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.35 * cols + 1.5, 1.6 * rows + 0.8), squeeze=False, layout="constrained"
    )
    for r in range(rows):
        for c in range(cols):
            show_noise(axes[r, c], noise[c], shape)
            name, p = predictions[r][c]
            bold = p > threshold
            axes[r, c].set_title(f"'{name}' {p:.1%}", fontsize=8, fontweight="bold" if bold else "normal")
        axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(
        "Rubbish class: N(0, I) inputs (grey scale −3 to +3 sd) and each model's predicted class and its "
        f"probability;\nbold: p > {threshold:g}, counted as a rubbish error"
    )
    return fig


def saliency_panels(
    inputs: np.ndarray,
    input_labels: Sequence[str],
    maps: Sequence[tuple[str, np.ndarray]],
    shape: Sequence[int],
    pixels: bool,
    title: str,
) -> Figure:
    """Sensitivity maps: the first row the inputs (with their labels; ``pixels``: drawn as pixels in
    [0, 1], else on a signed scale), then one row per (label, maps) of ``maps``, each map on its own
    symmetric scale (red raises p_y, blue lowers it, white = 0)."""
    cols = len(inputs)
    fig, axes = plt.subplots(
        len(maps) + 1,
        cols,
        figsize=(1.35 * cols + 1.8, 1.4 * (len(maps) + 1) + 0.9),
        squeeze=False,
        layout="constrained",
    )
    for c in range(cols):
        (show_pixels if pixels else show_signed)(axes[0, c], inputs[c], shape)
        axes[0, c].set_title(input_labels[c], fontsize=8)
        for r, (_, images) in enumerate(maps, start=1):
            show_signed(axes[r, c], images[c], shape)
    axes[0, 0].set_ylabel("input", rotation=0, ha="right", va="center", fontsize=9)
    for r, (label, _) in enumerate(maps, start=1):
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title)
    return fig
