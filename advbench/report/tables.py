"""Tables generated from the results files: CSV (every number, mean and sd in their own columns), and for
reading, Markdown, LaTeX (booktabs, ready to paste) and HTML (shown in the Snakemake report), where every
``<x>_mean`` / ``<x>_std`` pair is one ``mean ± sd`` column next to the number of seeds ``n``."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from advbench.report import paper
from advbench.report.budgets import read_table as read_budgets
from advbench.report.overfitting import CO_RISE, catastrophic_overfitting
from advbench.report.records import leaderboard, read_records
from advbench.results.schemas import SCHEMAS
from advbench.results.tables import read_kind, read_many
from advbench.runtime.files import atomic_path

PERCENT_COLUMNS = ["paper", "reproduced_mean", "reproduced_std", "ci95_low", "ci95_high"]
RENAMES = {"n_seeds": "n", "n": "examples", "reproduced": "reproduced (%)", "paper": "paper (%)"}
TABLE_FORMATS = (".md", ".csv", ".tex", ".html")
_LATEX_SPECIAL = re.compile(r"([&%$#_{}])")
_NUMBER = re.compile(r"-?[0-9.]+( ± [0-9.]+)?|–")


@dataclass(frozen=True)
class Table:
    """A results table (values in %, except ``epoch`` and the saliency cosines) and its caption."""

    data: pd.DataFrame
    caption: str


def load_tables(paths: Sequence[Path]) -> dict[str, pd.DataFrame]:
    """Every results file, grouped by the kind recorded in its metadata, schema-checked and concatenated;
    every kind is present (empty when no file of it was given)."""
    by_kind: dict[str, list[Path]] = {kind: [] for kind in SCHEMAS}
    for path in paths:
        by_kind[read_kind(Path(path))].append(Path(path))
    return {kind: read_many(files, kind).to_pandas() for kind, files in by_kind.items()}


def as_percent(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = df.copy()
    out[list(columns)] = out[list(columns)] * 100
    return out


def mean_sd(df: pd.DataFrame, keys: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and sd over seeds of ``columns`` per ``keys``, with the number of seeds."""
    if df.empty:
        return pd.DataFrame(
            columns=[*keys, *(f"{c}_{s}" for c in columns for s in ("mean", "std")), "n_seeds"]
        )
    aggs = {f"{c}_{s}": (c, s) for c in columns for s in ("mean", "std")}
    return df.groupby(keys, sort=True).agg(**aggs, n_seeds=("seed", "nunique")).reset_index()


def _percent(df: pd.DataFrame, skip: Sequence[str] = ()) -> pd.DataFrame:
    """Every ``_mean`` / ``_std`` column in %, except those of ``skip``."""
    cols = [c for c in df.columns if c.endswith(("_mean", "_std")) and c.rsplit("_", 1)[0] not in skip]
    return as_percent(df, cols)


def attack_summary(attack: pd.DataFrame) -> pd.DataFrame:
    """Error and confidence on mistakes (%) per model, regime, attack method, eps and clipping: mean and sd
    over seeds."""
    keys = ["model", "regime", "attack", "eps", "clipped"]
    out = mean_sd(attack, keys, ["error", "mean_conf_wrong"])
    n = attack.groupby(keys, sort=True)["n"].first().to_numpy()
    return _percent(out.assign(n=n) if len(out) else out.assign(n=[]))


#: a fall of the mean error between two neighbouring eps larger than this (in rate units) is flagged
LEAK_FALL = 0.01
LEAK_KEYS = ["model", "regime", "attack", "clipped"]


def label_leaking(attack: pd.DataFrame) -> pd.DataFrame:
    """The label-leaking signature (Kurakin et al. 2017): a model whose FGSM error *falls* as eps grows.
    Per model, regime and clipping, the neighbouring pair of eps where the mean error over seeds falls the
    most (%), flagged when it falls by more than :data:`LEAK_FALL`."""
    columns = [*LEAK_KEYS, "eps_from", "eps_to", "error_from", "error_to", "largest_fall", "label_leaking"]
    means = attack.groupby([*LEAK_KEYS, "eps"], sort=True)["error"].mean().reset_index()
    rows = []
    for keys, group in means.groupby(LEAK_KEYS, sort=True):
        eps, error = group["eps"].to_numpy(), group["error"].to_numpy()
        if len(eps) < 2:
            continue
        falls = error[:-1] - error[1:]
        k = int(falls.argmax())
        rows.append(
            dict(zip(LEAK_KEYS, keys, strict=True))
            | {"eps_from": eps[k], "eps_to": eps[k + 1], "error_from": 100 * error[k]}
            | {"error_to": 100 * error[k + 1], "largest_fall": 100 * falls[k]}
            | {"label_leaking": bool(falls[k] > LEAK_FALL)}
        )
    return pd.DataFrame(rows, columns=columns)


#: the trust checks' margins (rate units): PGD may fall this far below FGSM before it is flagged, the
#: masking signature is PGD this far above FGSM, a share of examples with a zero gradient this large
PGD_SLACK, MASKING_GAP, ZERO_GRAD_SHARE = 0.01, 0.10, 0.01
#: an eps this large lets a multi-step attack reach nearly any image: its error must pass one half (above
#: chance for any number of classes would be a stronger bar than a model could be held to by the table)
LARGE_EPS, LARGE_EPS_ERROR = 0.5, 0.5
TRUST_COLUMNS = [
    "model", "regime", "eps", "clipped", "fgsm_error", "pgd_error", "bim_error", "random_sign_error",
    "fgsm_pred_error",
    "best_transfer_error", "zero_grad_share", "nonfinite_grad_share", "large_eps", "large_eps_error", "flags",
]  # fmt: skip


def _cell_means(table: pd.DataFrame, keys: list[str]) -> pd.Series:
    return table.groupby([*keys, "attack", "eps", "clipped"], sort=True)["error"].mean()


def _check_cell(errors: pd.Series, run: tuple[str, str]) -> tuple[float, bool] | None:
    """The eps and clipping the trust checks read: .25 unclipped (the paper's) where FGSM and a multi-step
    method (if one ran) both ran there, else their largest common eps (unclipped first); None without
    FGSM."""
    have = errors.loc[run]
    methods = set(have.index.get_level_values("attack"))
    if "fgsm" not in methods:
        return None
    common = set(have.loc["fgsm"].index)
    for multi in [m for m in ("pgd", "bim") if m in methods][:1]:
        common &= set(have.loc[multi].index)
    if (0.25, False) in common:
        return 0.25, False
    return max(common, key=lambda cell: (cell[0], not cell[1])) if common else None


def trust_checks(attack: pd.DataFrame, transfer: pd.DataFrame) -> pd.DataFrame:
    """Per model, the checks that an FGSM error is a trustworthy robustness number (Carlini et al. 2019;
    Athalye et al. 2018), read at one eps (:func:`_check_cell`), means over seeds (%). Flags: PGD below
    FGSM (a broken attack), PGD far above FGSM (FGSM's number masks the model's weakness), a random sign
    doing as well as FGSM (a gradient that points nowhere), FGSM on the model's predictions beating FGSM on
    the true labels (Kurakin et al.'s label leaking), examples with zero or non-finite input gradients,
    another model's examples beating the model's own, an error that falls as eps grows."""
    if attack.empty:
        return pd.DataFrame(columns=TRUST_COLUMNS)
    errors = _cell_means(attack, ["model", "regime"])
    leaking = label_leaking(attack)
    flagged = leaking[leaking["label_leaking"]]
    leaky = set(zip(flagged["model"], flagged["regime"], strict=True))
    fgsm = attack[attack["attack"] == "fgsm"]
    grads = fgsm.groupby(["model", "regime"])[["n_zero_grad", "n_nonfinite_grad", "n"]].sum(min_count=1)
    large, transfers = _large_eps(attack), _best_transfer(transfer)
    rows = []
    for run in dict.fromkeys(zip(attack["model"], attack["regime"], strict=True)):
        cell = _check_cell(errors, run)
        eps, clipped = cell if cell else (float("nan"), False)
        methods = ("fgsm", "pgd", "bim", "random_sign", "fgsm_pred")
        err = {m: _at(errors, (*run, m, eps, clipped)) for m in methods}
        best_transfer = _at(transfers, (*run, eps, clipped))
        zero = nonfinite = float("nan")
        if run in grads.index and pd.notna(grads.loc[run, "n_zero_grad"]):
            zero = grads.loc[run, "n_zero_grad"] / grads.loc[run, "n"]
            nonfinite = grads.loc[run, "n_nonfinite_grad"] / grads.loc[run, "n"]
        large_eps, large_error = large.get(run, (float("nan"), float("nan")))
        flags = _flags(err, best_transfer, zero, nonfinite, run in leaky)
        if pd.notna(large_error) and large_error < LARGE_EPS_ERROR:
            flags.append(f"accuracy above one half at eps {large_eps:g}")
        rows.append(
            {"model": run[0], "regime": run[1], "eps": eps, "clipped": clipped}
            | {f"{m}_error": 100 * v for m, v in err.items()}
            | {"best_transfer_error": 100 * best_transfer, "zero_grad_share": 100 * zero}
            | {"nonfinite_grad_share": 100 * nonfinite, "large_eps": large_eps}
            | {"large_eps_error": 100 * large_error, "flags": "; ".join(flags)}
        )
    return pd.DataFrame(rows, columns=TRUST_COLUMNS)


def _large_eps(attack: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """Per run, the largest eps of at least :data:`LARGE_EPS` a multi-step attack ran at, and the highest
    mean error there over methods and clipping (runs where none did are absent)."""
    rows = attack[attack["attack"].isin(["pgd", "bim"]) & (attack["eps"] >= LARGE_EPS)]
    rows = rows[rows["eps"] == rows.groupby(["model", "regime"])["eps"].transform("max")]
    means = rows.groupby(["model", "regime", "eps", "attack", "clipped"])["error"].mean()
    return {(m, r): (float(e), float(v)) for (m, r, e), v in means.groupby(level=[0, 1, 2]).max().items()}


def _best_transfer(transfer: pd.DataFrame) -> pd.Series:
    """Per target run and cell, the highest mean error (over seeds) of another model's FGSM examples."""
    if transfer.empty:
        return pd.Series(dtype=float)
    fgsm = transfer[transfer["attack"] == "fgsm"]
    keys = ["target_model", "target_regime", "source_model", "source_regime", "eps", "clipped"]
    means = fgsm.groupby(keys)["error"].mean()
    return means.groupby(level=["target_model", "target_regime", "eps", "clipped"]).max()


def _at(series: pd.Series, key: tuple) -> float:
    """The mean error of one cell (NaN where it did not run); eps matched to float rounding."""
    *head, eps, clipped = key
    if pd.isna(eps) or series.empty:
        return float("nan")
    try:
        cells = series.loc[tuple(head)]
    except KeyError:
        return float("nan")
    hits = [v for (e, c), v in cells.items() if abs(e - eps) < 1e-9 and c == clipped]
    return float(max(hits)) if hits else float("nan")


def _flags(err: dict[str, float], transfer: float, zero: float, nonfinite: float, leaky: bool) -> list[str]:
    flags = []
    multi = max((err[m] for m in ("pgd", "bim") if pd.notna(err[m])), default=float("nan"))
    if pd.notna(multi) and multi < err["fgsm"] - PGD_SLACK:
        flags.append("multi-step attack below FGSM")
    if pd.notna(multi) and multi > err["fgsm"] + MASKING_GAP:
        flags.append(f"masking signature: multi-step {100 * multi:.1f}% vs FGSM {100 * err['fgsm']:.1f}%")
    if pd.notna(err["random_sign"]) and err["random_sign"] >= err["fgsm"]:
        flags.append("random sign as strong as FGSM")
    if pd.notna(err["fgsm_pred"]) and err["fgsm_pred"] > err["fgsm"] + PGD_SLACK:
        true, pred = 100 * err["fgsm"], 100 * err["fgsm_pred"]
        flags.append(f"label leaking: FGSM on true labels {true:.1f}% vs on predictions {pred:.1f}%")
    if pd.notna(transfer) and transfer > err["fgsm"] + PGD_SLACK:
        flags.append("transferred examples beat its own")
    if pd.notna(zero) and zero > ZERO_GRAD_SHARE:
        flags.append("zero input gradients")
    if pd.notna(nonfinite) and nonfinite > 0:
        flags.append("non-finite input gradients")
    if leaky:
        flags.append("error falls as eps grows")
    return flags


def training_cost(curves: pd.DataFrame) -> pd.DataFrame:
    """Training time per run, every epoch of every stage with its monitoring: tasks (seeds × members),
    epochs per task, median seconds per epoch and per task, and the run's task-seconds (their sum)."""
    keys = ["model", "regime"]
    member = curves["member"].fillna(-1) if "member" in curves else -1
    tasks = curves.assign(member=member).groupby([*keys, "seed", "member"])["seconds"].agg(["sum", "size"])
    per_run = tasks.groupby(keys)
    out = pd.DataFrame(
        {
            "tasks": per_run.size(),
            "epochs_per_task": per_run["size"].median(),
            "seconds_per_epoch": curves.groupby(keys)["seconds"].median(),
            "seconds_per_task": per_run["sum"].median(),
            "task_seconds": per_run["sum"].sum(),
        }
    )
    return out.reset_index()


@dataclass(frozen=True)
class Summary:
    """A results table's mean and sd over seeds of ``values`` per ``keys``, in % (but ``as_is``, or every
    value when ``percent`` is false), with its caption."""

    source: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    caption: str
    as_is: tuple[str, ...] = ()
    percent: bool = True

    def table(self, sources: dict[str, pd.DataFrame]) -> Table:
        data = mean_sd(sources[self.source], list(self.keys), list(self.values))
        return Table(_percent(data, skip=self.as_is) if self.percent else data, self.caption)


#: the per-experiment tables that are a mean over seeds and nothing else, in the report's order;
#: ``best_epochs`` is :func:`best_epochs` of the curves
SUMMARIES = {
    "transfer_summary": Summary(
        "transfer",
        ("source_model", "source_regime", "target_model", "target_regime", "attack", "eps", "clipped"),
        ("error", "mean_conf_wrong"),
        "Transfer: the source's adversarial examples on the target (%).",
    ),
    "agreement_summary": Summary(
        "agreement",
        ("reference", "observer", "condition", "eps"),
        ("rate",),
        "Cross-model agreement on the reference's FGSM examples (%).",
    ),
    "ensemble_summary": Summary(
        "ensemble",
        ("run", "members", "attacked", "eps"),
        ("error", "mean_conf_wrong"),
        "FGSM on an ensemble vs on one member, scored on the ensemble (%).",
    ),
    "rubbish_summary": Summary(
        "rubbish",
        ("dataset", "model", "regime", "threshold"),
        ("error", "mean_conf"),
        "Rubbish-class inputs N(0, I): error = some class with p > threshold (%).",
    ),
    "rubbish_classes": Summary(
        "rubbish_classes",
        ("dataset", "model", "regime", "class"),
        ("share",),
        "Classes of the confident rubbish predictions (%).",
    ),
    "rotation_summary": Summary(
        "rotation",
        ("dataset", "model", "regime", "angle"),
        ("error", "mean_conf_wrong", "random_error", "fgsm_error", "mean_l2", "fgsm_mean_eps"),
        "Test images rotated by an angle (degrees) toward a higher loss, in a random direction, and "
        "FGSM of the same L2 size (mean_l2; fgsm_mean_eps its L-inf size): error, confidence (%).",
        as_is=("mean_l2", "fgsm_mean_eps"),
    ),
    "saliency_summary": Summary(
        "saliency",
        ("dataset", "model", "regime", "n", "samples", "noise"),
        ("gradient_alignment", "smoothgrad_alignment", "gradient_smoothgrad_cosine"),
        "What the models look at: the mean cosine between each test input and its sensitivity map "
        "(the gradient of log p_y, and SmoothGrad's average of it over noisy copies), and between "
        "the two maps (cosines, not %); n inputs, samples noisy copies of noise x the input's range.",
        percent=False,
    ),
    "training_summary": Summary(
        "best_epochs",
        ("model", "regime"),
        ("epoch", "train_error", "val_error", "val_adv_error"),
        "Selected epoch (stage 1) and its training / validation errors (%).",
        as_is=("epoch",),
    ),
}


def best_epochs(curves: pd.DataFrame) -> pd.DataFrame:
    """Every task's selected stage-1 epoch: the last row marked best."""
    best = curves[curves["is_best"] & (curves["stage"] == 1)]
    return best.groupby(["model", "regime", "seed"]).tail(1)


def experiment_tables(tables: dict[str, pd.DataFrame]) -> dict[str, Table]:
    """The per-experiment tables (values in %): name -> table."""
    attack, curves = tables["attack"], tables["curves"]
    sources = {**tables, "best_epochs": best_epochs(curves)}
    return {
        "attack_summary": Table(
            attack_summary(attack),
            "Attacks on the test set (%): FGSM (the paper's) and the other methods of attack.methods.",
        ),
        "trust_checks": Table(
            trust_checks(attack, tables["transfer"]),
            "Can the FGSM error be trusted? Per model at one eps (%), FGSM against multi-step attacks, a "
            "random sign and other models' examples, with input gradients that are zero or not finite.",
        ),
        "label_leaking": Table(
            label_leaking(attack),
            "Label leaking: the neighbouring eps where the FGSM error (mean over seeds, %) falls most; "
            f"flagged when it falls by more than {100 * LEAK_FALL:g} points.",
        ),
        **{name: summary.table(sources) for name, summary in SUMMARIES.items()},
        "catastrophic_overfitting": Table(
            catastrophic_overfitting(curves),
            "Catastrophic overfitting (Wong et al. 2020), per run with train.monitor_pgd: the tasks whose "
            f"validation PGD error rose more than {100 * CO_RISE:g} points above its lowest while the FGSM "
            "error did not, at which epoch; lowest and final PGD error, final FGSM error (%).",
        ),
        "training_cost": Table(
            training_cost(curves),
            "Training time per run (s; every epoch with its monitoring, one task per seed and member).",
        ),
    }


def _cell(mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.2f}" if pd.isna(sd) else f"{mean:.2f} ± {sd:.2f}"


def present(df: pd.DataFrame) -> pd.DataFrame:
    """For reading: every ``<x>_mean`` / ``<x>_std`` pair as one ``<x>`` column of ``mean ± sd`` strings,
    ``n_seeds`` as ``n``, other numbers with two decimals."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        base = col.removesuffix("_mean")
        if col.endswith("_std") and f"{col.removesuffix('_std')}_mean" in df.columns:
            continue
        if col.endswith("_mean") and f"{base}_std" in df.columns:
            name = RENAMES.get(base, base)
            out[name] = [_cell(m, s) for m, s in zip(df[col], df[f"{base}_std"], strict=True)]
        elif pd.api.types.is_float_dtype(df[col]):
            out[RENAMES.get(col, col)] = [("–" if pd.isna(v) else f"{v:.2f}") for v in df[col]]
        else:
            out[RENAMES.get(col, col)] = ["" if pd.isna(v) else str(v) for v in df[col]]
    return out.reset_index(drop=True)


def latex_escape(text: str) -> str:
    r"""``text`` safe in a LaTeX table cell; ``±`` becomes ``$\pm$``."""
    text = text.replace("\\", r"\textbackslash{}").replace("~", r"\textasciitilde{}").replace("^", r"\^{}")
    return _LATEX_SPECIAL.sub(r"\\\1", text).replace("±", r"$\pm$").replace("–", "--")


def to_latex(shown: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs ``table`` (``\\toprule``/``\\midrule``/``\\bottomrule``) with every cell escaped."""
    align = "".join("r" if all(_NUMBER.fullmatch(v) for v in shown[c]) else "l" for c in shown.columns)
    head = " & ".join(latex_escape(str(c)) for c in shown.columns)
    rows = [" & ".join(latex_escape(v) for v in row) + r" \\" for row in shown.itertuples(index=False)]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(caption)}}}",
            rf"\label{{tab:{label}}}",
            rf"\begin{{tabular}}{{{align}}}",
            r"\toprule",
            head + r" \\",
            r"\midrule",
            *rows,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em;color:#111}"
    "caption{caption-side:top;text-align:left;font-weight:600;margin-bottom:.6em}"
    "table{border-collapse:collapse;font-size:14px}"
    "th,td{padding:.25em .7em;border-bottom:1px solid #ccc;text-align:right}"
    "th{border-bottom:2px solid #333}tr:nth-child(even){background:#f3f5f8}"
)


def to_html(shown: pd.DataFrame, caption: str) -> str:
    """A standalone HTML page of the table (the report shows it in a frame)."""
    table = shown.to_html(index=False, border=0, escape=True)
    table = table.replace('<table class="dataframe">', f"<table><caption>{html.escape(caption)}</caption>", 1)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(caption)}</title>'
        f"<style>{HTML_STYLE}</style></head><body>{table}</body></html>\n"
    )


def write_all(df: pd.DataFrame, stem: Path, caption: str, md_raw: bool = False) -> list[Path]:
    """Write ``df`` as ``stem.csv`` (all numbers) and, as :func:`present` shows it, ``stem.md``, ``stem.tex``
    and ``stem.html``; each atomically. ``md_raw`` keeps the Markdown in the CSV's columns."""
    shown = present(df)
    raw = df.assign(**{c: shown[c].to_numpy() for c in df.select_dtypes("boolean").columns})  # NA as ""
    texts = {
        ".md": (raw.to_markdown(index=False, floatfmt=".2f") if md_raw else shown.to_markdown(index=False))
        + "\n",
        ".csv": df.to_csv(index=False),
        ".tex": to_latex(shown, caption, stem.name),
        ".html": to_html(shown, caption),
    }
    paths = []
    for suffix, text in texts.items():
        path = stem.with_suffix(suffix)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        paths.append(path)
    return paths


def make_report(
    paths: Sequence[Path],
    out_dir: Path,
    run_notes: dict[str, str] | None = None,
    budgets: Path | None = None,
    records: Sequence[Path] = (),
) -> pd.DataFrame:
    """Write ``paper_comparison`` and every per-experiment table under ``out_dir``; return the comparison.
    ``run_notes``: :func:`advbench.config.runs.budget_notes`, for the rows' notes; ``budgets``: a budgets.csv
    of ``advbench budgets``, shown as ``epoch_budgets``; ``records``: the model records of ``advbench
    records`` (files or folders), ranked in ``leaderboard``."""
    tables = load_tables(paths)
    comparison = paper.comparison(tables, run_notes=run_notes)
    write_all(
        as_percent(comparison, PERCENT_COLUMNS),
        out_dir / "paper_comparison",
        "Paper vs reproduced (values in %; reproduced: mean ± sd over n seeds, with a 95% interval over "
        "seeds and the test set's sampling error; within_noise: a miss whose interval reaches the "
        "tolerance; direction: the comparison the paper draws, judged on the 95% interval of the "
        "difference over seeds).",
        md_raw=True,  # the Markdown keeps the CSV's column names (docs quote it)
    )
    for name, table in experiment_tables(tables).items():
        write_all(table.data, out_dir / name, table.caption)
    write_all(leaderboard(read_records(records)), out_dir / "leaderboard", LEADERBOARD_CAPTION)
    if budgets is not None:
        write_all(read_budgets(budgets), out_dir / "epoch_budgets", BUDGETS_CAPTION)
    return comparison


LEADERBOARD_CAPTION = (
    "Leaderboard, generated from the model records (results/records): per dataset, ranked by robust "
    "accuracy, the lowest mean accuracy of any attack at the record's eps (%; mean ± sd over n seeds, "
    "its 95% interval over seeds and the test set's sampling error)."
)
BUDGETS_CAPTION = (
    "What an epoch budget buys: the 240-unit pair on the paper's recipe with stage 1 capped at each budget, "
    "or on the paper's whole schedule (%, mean over the seeds; wall and training seconds on the machine that "
    "ran it; last line: the published values)."
)
