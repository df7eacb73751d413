"""Charts (matplotlib, PNG + PDF) drawn from the Parquet results tables only.

Colours are the Okabe-Ito palette (colour-blind safe; its yellow is left out, too pale on white), repeated
with a new line style after seven runs so that every run stays distinguishable. eps is always on the x axis,
in the paper's pixel scale (inputs in [0, 1]). Image panels (weights, adversarial examples) are in
:mod:`advbench.report.images`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from advbench.report.paper import load_figures
from advbench.runtime.files import atomic_path  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000"]
LINESTYLES = ["-", "--", ":", "-."]
MARKERS = "osD^v<>"
EPS_LABEL = "ε (L∞ perturbation, pixel scale [0, 1])"
RUN_KEYS = ["model", "regime"]


def style(i: int) -> dict:
    """Colour, line style and marker of the ``i``-th line: unique for 28 lines."""
    n = len(OKABE_ITO)
    return {"color": OKABE_ITO[i % n], "linestyle": LINESTYLES[(i // n) % 4], "marker": MARKERS[(i // n) % 7]}


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


def run_label(model: str, regime: str) -> str:
    return f"{model} ({regime})"


def _run_bands(ax: plt.Axes, df: pd.DataFrame, x: str, metric: str) -> None:
    """One line per (model, regime): mean of ``metric`` (%) over seeds against ``x``, with a ± sd band."""
    for i, ((model, regime), run) in enumerate(df.groupby(RUN_KEYS, sort=True)):
        stats = run.groupby(x)[metric].agg(["mean", "std"]) * 100
        stats["std"] = stats["std"].fillna(0.0)  # one seed: no band
        xs, mean, sd = stats.index.to_numpy(), stats["mean"].to_numpy(), stats["std"].to_numpy()
        st = style(i)
        ax.plot(xs, mean, ms=3.5, lw=1.4, label=run_label(model, regime), **st)
        ax.fill_between(xs, mean - sd, mean + sd, color=st["color"], alpha=0.18, linewidth=0)


def _legend_outside(fig: Figure, ax: plt.Axes, title: str) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title=title, title_fontsize=8)


# The paper's comparisons, one row of panels each (a run may appear in several); runs in none of them
# share a last row. Colours restart in every row, so no two lines of a panel share one.
EPS_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "naive vs adversarially trained maxouts (§6)",
        ("maxout-clean", "maxout-adversarial", "maxout1600-clean", "maxout1600-adversarial"),
    ),
    (
        "where to perturb: the input or a hidden layer (§6)",
        ("maxout-clean", "maxout-adversarial", "maxout-adversarial_hidden1", "maxout-adversarial_hidden2"),
    ),
    (
        "noise and L1 controls (§5, §6)",
        ("maxout-clean", "maxout-noise_sign", "maxout-noise_uniform", "maxout-l1_large", "maxout-l1_small"),
    ),
    (
        "softmax regression: FGSM training, its closed-form bounds, L1 (§4, §5)",
        (
            "softmax-clean",
            "softmax-adversarial",
            "softmax-worst_case",
            "softmax-worst_case_pairwise",
            "softmax-l1_matched",
        ),
    ),
    (
        "logistic regression 3 vs 7: FGSM training and its closed form (§5)",
        ("logistic37-clean", "logistic37-adversarial", "logistic37-worst_case"),
    ),
    (
        "examples updated (FGSM training) or made once (static augmentation) (§6)",
        (
            "softmax-clean",
            "softmax-adversarial",
            "softmax-static",
            "softmax-static_2to1",
            "softmax-static_1to2",
            "maxout-clean",
            "maxout-adversarial",
            "maxout-static",
            "maxout-static_2to1",
            "maxout-static_1to2",
        ),
    ),
    ("RBF and independent sigmoid outputs (§7, App. A)", ("rbf-clean", "maxout_sigmoid-clean")),
    (
        "deep nets, naive vs adversarially trained (✕: PyTorch's FGSM tutorial, clipped)",
        ("lenet-clean", "lenet-adversarial", "googlenet-clean", "googlenet-adversarial"),
    ),
)


def paper_points(
    column: str, source: str = "paper", clipped: bool = False
) -> dict[tuple[str, str, float], float]:
    """The published values of an attack-table ``column`` by (model, regime, eps): the paper's (unclipped)
    or an external reference's (``source``; PyTorch's FGSM tutorial attacks clipped)."""
    points = {}
    for f in load_figures():
        sel = f.select or {}
        if (
            f.paper is None
            or f.source != source
            or sel.get("table") != "attack"
            or sel.get("column") != column
        ):
            continue
        if sel.get("clipped", False) == clipped and not f.bound and not f.figure:
            points[(sel["model"], sel["regime"], float(sel["eps"]))] = f.paper
    return points


def reference_points(column: str) -> dict[tuple[str, str, float], float]:
    """Every external reference's clipped values of ``column`` (drawn on the clipped lines)."""
    sources = {f.source for f in load_figures()} - {"paper"}
    return {k: v for source in sorted(sources) for k, v in paper_points(column, source, clipped=True).items()}


def eps_groups(runs: list[str]) -> list[tuple[str, list[str]]]:
    """The :data:`EPS_GROUPS` with a trained run not shown in an earlier group, then every other run."""
    groups: list[tuple[str, list[str]]] = []
    shown: set[str] = set()
    for title, members in EPS_GROUPS:
        present = [r for r in members if r in runs]
        if set(present) - shown:  # a group whose runs all have a panel already adds nothing
            groups.append((title, present))
            shown |= set(present)
    rest = [r for r in runs if r not in shown]
    return groups + ([("other models", rest)] if rest else [])


def eps_curves(attack: pd.DataFrame) -> Figure:
    """FGSM error and confidence on mistakes vs eps as small multiples: one row per comparison the paper
    draws (:data:`EPS_GROUPS`), mean ± sd over seeds unclipped (the paper; solid, with a band) and clipped
    to [0, 1] (dashed), the paper's own values marked with a star."""
    runs = sorted((attack["model"] + "-" + attack["regime"]).unique())
    groups = eps_groups(runs)
    fig, axes = plt.subplots(
        len(groups), 2, figsize=(12, 3.4 * len(groups)), squeeze=False, layout="constrained"
    )
    metrics = [("error", "FGSM error (%)"), ("mean_conf_wrong", "mean confidence on mistakes (%)")]
    run_of = attack["model"] + "-" + attack["regime"]
    marks = {metric: (paper_points(metric), reference_points(metric)) for metric, _ in metrics}
    for row, (title, members) in enumerate(groups):
        for col, (metric, ylabel) in enumerate(metrics):
            ax = axes[row, col]
            for i, run in enumerate(members):
                _eps_lines(ax, attack[run_of == run], metric, style(i), *marks[metric])
            ax.set(ylabel=ylabel, ylim=(0, 102), title=title if col == 0 else None)
            ax.set_xticks(sorted(attack["eps"].unique()))
            ax.grid(alpha=0.3)
            if row == len(groups) - 1:
                ax.set_xlabel(EPS_LABEL)
        axes[row, 1].legend(fontsize=7, loc="lower right", title="model (regime)", title_fontsize=7)
    n_seeds = attack["seed"].nunique()
    fig.suptitle(
        f"FGSM on the test set: mean over {n_seeds} seeds, band ± 1 sd; solid unclipped (the paper), "
        "dashed clipped to [0, 1]; ★ the paper's value"
    )
    return fig


def _eps_lines(
    ax: plt.Axes, run: pd.DataFrame, metric: str, st: dict, points: dict, references: dict
) -> None:
    """One run's unclipped line with its ± sd band, its clipped line, the paper's points (★) and an external
    reference's (✕, on the clipped line)."""
    model, regime = run["model"].iloc[0], run["regime"].iloc[0]
    for clipped in (False, True):
        sub = run[run["clipped"] == clipped]
        if sub.empty:
            continue
        stats = sub.groupby("eps")[metric].agg(["mean", "std"]).fillna(0.0) * 100
        xs, mean, sd = stats.index.to_numpy(), stats["mean"].to_numpy(), stats["std"].to_numpy()
        if clipped:
            ax.plot(xs, mean, color=st["color"], linestyle="--", lw=0.9, marker=st["marker"], ms=2.5)
            continue
        ax.plot(
            xs, mean, color=st["color"], marker=st["marker"], ms=3.5, lw=1.4, label=run_label(model, regime)
        )
        ax.fill_between(xs, mean - sd, mean + sd, color=st["color"], alpha=0.18, linewidth=0)
    for (m, r, eps), value in points.items():
        if (m, r) == (model, regime):
            ax.plot([eps], [value * 100], marker="*", ms=12, color=st["color"], mec="black", mew=0.6, ls="")
    for (m, r, eps), value in references.items():
        if (m, r) == (model, regime):
            ax.plot([eps], [value * 100], marker="X", ms=8, color=st["color"], mec="black", mew=0.6, ls="")


def transfer_matrix(
    attack: pd.DataFrame, transfer: pd.DataFrame, eps: float, clipped: bool = False, stat: str = "mean"
) -> pd.DataFrame:
    """Error (%) of each target on each source's FGSM examples, over the models that take part in a
    transfer pair (``transfer.pairs`` and ``transfer.matrix``), the ``stat`` (mean or std) over seeds; the
    diagonal is each model's error on its own examples (white-box)."""
    cross = transfer.assign(
        source=transfer["source_model"] + "-" + transfer["source_regime"],
        target=transfer["target_model"] + "-" + transfer["target_regime"],
    )
    own = attack.assign(source=attack["model"] + "-" + attack["regime"])
    own = own[own["source"].isin(set(cross["source"]) | set(cross["target"]))].assign(
        target=lambda d: d["source"]
    )
    both = pd.concat([own, cross], ignore_index=True)
    both = both[(np.isclose(both["eps"], eps)) & (both["clipped"] == clipped)]
    return both.pivot_table(index="source", columns="target", values="error", aggfunc=stat) * 100


def transfer_heatmap(matrix: pd.DataFrame, eps: float, sd: pd.DataFrame | None = None) -> Figure:
    """Heatmap of :func:`transfer_matrix`, annotated with the percentages (and ± their sd over seeds)."""
    fig, ax = plt.subplots(
        figsize=(1.5 * len(matrix.columns) + 3, 1.1 * len(matrix) + 1.8), layout="constrained"
    )
    values = matrix.to_numpy()
    image = ax.imshow(values, cmap="cividis", vmin=0, vmax=100)
    ax.set_xticks(range(len(matrix.columns)), matrix.columns, rotation=30, ha="right")
    ax.set_yticks(range(len(matrix.index)), matrix.index)
    ax.set_xlabel("target model (classifies the examples)")
    ax.set_ylabel("source model (FGSM examples crafted on it)")
    ax.set_title(f"FGSM transfer error (%), ε = {eps:g}, unclipped\ndiagonal: each model on its own examples")
    spread = sd.reindex(index=matrix.index, columns=matrix.columns).to_numpy() if sd is not None else None
    for (i, j), value in np.ndenumerate(values):
        text = "n/a" if np.isnan(value) else f"{value:.1f}"
        if spread is not None and not np.isnan(value) and not np.isnan(spread[i, j]):
            text += f"\n± {spread[i, j]:.1f}"
        ax.text(j, i, text, ha="center", va="center", color="white" if value < 60 else "black")
    fig.colorbar(image, ax=ax, label="error on the source's examples (%)")
    return fig


def training_curves(curves: pd.DataFrame) -> Figure:
    """Clean and FGSM validation error per epoch, per model and regime, mean ± sd over seeds (and ensemble
    members); stage 2 (retraining on all 60k) continues the epoch count. Where the paper gives the run's
    test error (clean, and FGSM at eps .25, the curves' default eps), a dotted line in the run's colour
    marks it: a reference for what the schedule is heading to, not the same split. Runs with
    ``train.monitor_pgd`` get a third panel, their PGD validation error (catastrophic overfitting shows as
    it climbing while the FGSM error falls)."""
    panels: list[tuple[str, str, str, float | None]] = [  # metric, title, scale, eps of the paper's line
        ("val_error", "clean validation error", "log", 0.0),
        ("val_adv_error", "FGSM validation error", "linear", 0.25),
    ]
    if "val_pgd_error" in curves and curves["val_pgd_error"].notna().any():
        panels.append(("val_pgd_error", "PGD validation error", "linear", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), layout="constrained")
    points = paper_points("error")
    for ax, (metric, title, scale, eps) in zip(axes, panels, strict=True):
        _run_bands(ax, curves, "epoch", metric)
        for i, (model, regime) in enumerate(sorted(curves.groupby(RUN_KEYS).groups)):
            if eps is not None and (model, regime, eps) in points:
                value = points[(model, regime, eps)] * 100
                ax.axhline(value, color=style(i)["color"], linestyle=":", lw=1.2)
                ax.annotate(f"paper {value:g}", (1, value), xycoords=("axes fraction", "data"), fontsize=7,
                            ha="right", va="bottom", color=style(i)["color"])  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{title} (%)")
        ax.set_yscale(scale)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(alpha=0.3, which="both")
        ax.set_title(f"{title} ({'log scale' if scale == 'log' else 'ε: train.monitor_eps'})")
    _legend_outside(fig, axes[0], "model (regime); dotted: the paper's test error")
    return fig


def logit_sweep(sweep: pd.DataFrame, seed: int | None = None) -> Figure:
    """Paper Fig. 4: every class's output along the FGSM direction of one test example, against eps, with
    the predicted class in a strip below (one seed's model)."""
    seed = int(sweep["seed"].min()) if seed is None else seed
    one = sweep[sweep["seed"] == seed]
    table = one.pivot_table(index="eps", columns="class", values="logit")
    label, example, run = int(one["label"].iloc[0]), int(one["example"].iloc[0]), one["run"].iloc[0]
    fig, (ax, strip) = plt.subplots(
        2, 1, figsize=(9, 6), sharex=True, height_ratios=[5, 1], layout="constrained"
    )
    for i, cls in enumerate(table.columns):
        st = {**_class_style(i, cls == label), "lw": 2.6 if cls == label else 1.3}
        ax.plot(table.index, table[cls], label=f"class {cls}" + (" (true)" if cls == label else ""), **st)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_ylabel("output (logit) of each class")
    ax.set_title(f"{run}, seed {seed}: test example #{example} (label {label}) moved along sign(∇ₓJ)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2, loc="best")
    _prediction_strip(strip, table, label)
    strip.set_xlabel("ε along the FGSM direction (negative: against it)")
    return fig


def _class_style(i: int, true: bool) -> dict:
    """Line style of class ``i`` in the sweep; the true class in thick black."""
    st = {"color": "black", "linestyle": "-"} if true else style(i)
    return {k: st[k] for k in ("color", "linestyle")}


def _prediction_strip(ax: plt.Axes, table: pd.DataFrame, label: int) -> None:
    """The argmax class over eps, as contiguous labelled segments."""
    eps, pred = table.index.to_numpy(), table.to_numpy().argmax(axis=1)
    classes = list(table.columns)
    starts = [0, *np.flatnonzero(np.diff(pred)) + 1]
    ends = [*starts[1:], len(pred)]
    half = (eps[1] - eps[0]) / 2 if len(eps) > 1 else 0.5
    for a, b in zip(starts, ends, strict=True):
        cls = classes[pred[a]]
        color = _class_style(classes.index(cls), cls == label)["color"]
        ax.axvspan(eps[a] - half, eps[b - 1] + half, color=color, alpha=0.2 if cls == label else 0.35, lw=0)
        ax.text((eps[a] + eps[b - 1]) / 2, 0.5, str(cls), ha="center", va="center", fontsize=9)
    ax.set_yticks([])
    ax.set_ylabel("predicted", rotation=0, ha="right", va="center")


def rubbish_histogram(rubbish: pd.DataFrame, classes: pd.DataFrame) -> Figure:
    """App. A: the classes assigned with p > threshold to N(0, I) noise, share (%) per model, mean ± sd over
    seeds; the legend gives each model's rubbish error (share of noise inputs with a confident class). Models
    that never predict confidently get a legend entry and no bars."""
    fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
    error = rubbish.groupby(RUN_KEYS)["error"].agg(["mean", "std"]).fillna(0.0) * 100
    confident = classes[classes["share"].notna()]
    runs = sorted(confident.groupby(RUN_KEYS).groups)
    width = 0.8 / max(len(runs), 1)
    n_classes = int(classes["class"].max()) + 1 if len(classes) else 10
    for i, (model, regime) in enumerate(runs):
        run = confident[(confident["model"] == model) & (confident["regime"] == regime)]
        stats = run.groupby("class")["share"].agg(["mean", "std"]).reindex(range(n_classes)).fillna(0.0) * 100
        err = error.loc[(model, regime)]
        label = f"{run_label(model, regime)}: error {err['mean']:.1f} ± {err['std']:.1f}%"
        xs = np.arange(n_classes) + (i - (len(runs) - 1) / 2) * width
        ax.bar(
            xs, stats["mean"], width, yerr=stats["std"], color=style(i)["color"], label=label, ecolor="#444"
        )
    for model, regime in sorted(set(error.index) - set(runs)):
        ax.plot([], [], " ", label=f"{run_label(model, regime)}: error 0%, no bars")
    ax.set_xticks(range(n_classes))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("share of confident predictions (%)")
    threshold = float(rubbish["threshold"].iloc[0]) if len(rubbish) else 0.5
    ax.set_title(f"Rubbish class: classes given p > {threshold:g} to N(0, I) inputs (mean ± sd over seeds)")
    ax.legend(fontsize=8, title="model (regime): rubbish error", title_fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig


def rotation_curves(rotation: pd.DataFrame) -> Figure:
    """§4's rotation attack: error (%) against the angle, per run, rotated toward a higher loss (solid,
    ± sd band), in a random direction (dotted) and FGSM of the same L2 size (dashed); mean over seeds."""
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    for i, ((model, regime), run) in enumerate(rotation.groupby(RUN_KEYS, sort=True)):
        st = style(i)
        for column, linestyle, what in (
            ("error", "-", "rotation toward the loss"),
            ("random_error", ":", "random direction"),
            ("fgsm_error", "--", "FGSM, same L2"),
        ):
            stats = run.groupby("angle")[column].agg(["mean", "std"]).fillna(0.0) * 100
            xs, mean = stats.index.to_numpy(), stats["mean"].to_numpy()
            label = f"{run_label(model, regime)}: {what}"
            ax.plot(xs, mean, color=st["color"], linestyle=linestyle, marker=st["marker"], ms=3, label=label)
            if column == "error":
                sd = stats["std"].to_numpy()
                ax.fill_between(xs, mean - sd, mean + sd, color=st["color"], alpha=0.18, linewidth=0)
    ax.set(xlabel="rotation angle (degrees)", ylabel="test error (%)", ylim=(0, 102))
    n_seeds = rotation["seed"].nunique()
    ax.set_title(
        f"Rotation in the direction of the gradient (section 4): mean over {n_seeds} seeds, band ± 1 sd"
    )
    ax.grid(alpha=0.3)
    _legend_outside(fig, ax, "model (regime): examples")
    return fig
