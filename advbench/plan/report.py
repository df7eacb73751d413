"""The report's contents for one config: which tables, charts and image figures it holds (from the
registries of :mod:`advbench.report.layout`), their report categories and labels, and the jobs of the
``panels`` and ``figures`` rules. ``report.smk`` and ``panels.smk`` declare their outputs from these.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from advbench.plan.workflow import Plan, path
from advbench.report.layout import (
    ALL_RUNS,
    BUDGETS_TABLE,
    CAT,
    CHARTS,
    IMAGE_PANELS,
    PANEL_KINDS,
    TABLE_FORMATS,
    TABLES,
)


def budgets(config: dict[str, Any]) -> list[str]:
    """The budgets.csv the report shows as a table of its own (``report.budgets``), if any."""
    return [config["report"]["budgets"]] if config["report"]["budgets"] else []


def tables(config: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every table of the report: name -> (category, runs shown)."""
    name, entry = BUDGETS_TABLE
    return {**TABLES, name: entry} if budgets(config) else dict(TABLES)


class TableFile(NamedTuple):
    """One file of a table, as the report registers it."""

    path: str
    table: str
    format: str  # the format's label in the report
    category: str
    runs: str  # the runs it shows, in words


def table_paths(config: dict[str, Any]) -> dict[str, TableFile]:
    """Output key (``<table>_<ext>``) -> every table file."""
    return {
        f"{name}_{ext}": TableFile(path("table", name=name, ext=ext), name, label, category, runs)
        for name, (category, runs) in tables(config).items()
        for ext, label in TABLE_FORMATS.items()
    }


def runs_text(runs: list[str]) -> str:
    return ", ".join(runs)


def by_dataset(plan: Plan, runs: list[str]) -> dict[str, list[str]]:
    """dataset -> its runs among ``runs``, datasets and runs in the order given."""
    out: dict[str, list[str]] = {}
    for run in runs:
        out.setdefault(plan.dataset_of(run), []).append(run)
    return out


def image_figures(plan: Plan) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (panel kind, dataset, runs shown) of every image figure: one panda figure, Fig. 3,
    rubbish-samples and saliency-maps figure per dataset of their runs, and Fig. 2 (the first logistic
    run)."""
    rep = plan.config["report"]
    sources = {
        "examples": rep["examples"],
        "weights": rep["weights"],
        "rubbish": plan.rubbish_runs(),
        "saliency": plan.saliency_runs(),
    }
    out = {}
    for panel, runs in sources.items():
        for dataset, shown in by_dataset(plan, runs).items():
            out[f"{IMAGE_PANELS[panel][0]}_{dataset}"] = (panel, dataset, shown)
    if plan.logistic_runs:
        run = plan.logistic_runs[0]
        out["logistic_weights"] = ("logistic", plan.dataset_of(run), [run])
    return out


def figures(plan: Plan) -> dict[str, tuple[str, str, str]]:
    """name -> (category, runs shown, caption stem) of every figure the config asks for."""
    cfg = plan.config
    pairs = sorted({run for pair in plan.pairs for run in pair})
    out = {"fgsm_vs_eps": (CAT["fgsm"], ALL_RUNS), "training_curves": (CAT["training"], ALL_RUNS)}
    if pairs:
        out["transfer_matrix"] = (CAT["transfer"], runs_text(pairs))
    if cfg["sweep"]:
        out["logits_vs_eps"] = (CAT["sweep"], cfg["sweep"]["run"])
    if cfg["rubbish"]:
        out["rubbish_histogram"] = (CAT["rubbish"], runs_text(plan.rubbish_runs()))
    if cfg["rotation"]:
        out["error_vs_angle"] = (CAT["rotation"], runs_text(plan.rotation_runs()))
    entries = {name: (*entry, name) for name, entry in out.items()}
    for name, (panel, _, runs) in image_figures(plan).items():
        stem, category = IMAGE_PANELS[panel]
        entries[name] = (category, runs_text(runs), stem)
    return entries


def charts(plan: Plan) -> list[str]:
    """The charts to draw, in :data:`CHARTS`' order."""
    asked = figures(plan)
    return [name for name in CHARTS if name in asked]


def figures_job(plan: Plan) -> str:
    """The figures job: the charts to draw and every image figure's panel and dataset
    (:mod:`advbench.report.figures`)."""
    images = {name: {"panel": panel, "dataset": ds} for name, (panel, ds, _) in image_figures(plan).items()}
    job = {"charts": charts(plan), "transfer_eps": plan.config["report"]["transfer_eps"]}
    return json.dumps(job | {"images": images}, sort_keys=True)


def records_job(plan: Plan) -> str:
    """The records job (:mod:`advbench.report.records`): each single-model run's model and regime specs,
    and each dataset's headline eps, the eps of its adversarial examples (``report.example_eps``)."""
    rep = plan.config["report"]
    runs = {r: {k: v for k, v in plan.run_json(r, []).items() if k != "checkpoints"} for r in plan.runs}
    datasets = dict.fromkeys(map(plan.dataset_of, plan.runs))
    eps = {ds: rep["example_eps_by_dataset"].get(ds, rep["example_eps"]) for ds in datasets}
    return json.dumps({"runs": runs, "eps": eps}, sort_keys=True)


def panel_paths() -> dict[str, str]:
    return {kind: path("panel", kind=kind) for kind in PANEL_KINDS}


def panel_entry(plan: Plan, run: str) -> dict[str, Any]:
    """A run's specs and its first seed's checkpoint."""
    spec = plan.run_json(run, plan.run_checkpoints(run))
    first = spec.pop("checkpoints")[0]
    return {"run": run, **spec, "checkpoint": first}


def panel_runs(plan: Plan) -> list[str]:
    """Every run an image figure shows, once."""
    rep = plan.config["report"]
    runs = rep["examples"] + rep["weights"] + plan.logistic_runs[:1] + plan.rubbish_runs()
    return list(dict.fromkeys(runs + plan.saliency_runs()))


def panel_datasets(plan: Plan) -> list[str]:
    """The datasets whose test inputs the panels read: those of the examples, the logistic run and the
    saliency runs."""
    runs = plan.config["report"]["examples"] + plan.logistic_runs[:1] + plan.saliency_runs()
    return list(dict.fromkeys(map(plan.dataset_of, runs)))


def panels_job(plan: Plan) -> str:
    """The panels job: the runs of every image figure and their settings (:mod:`advbench.jobs.panels`)."""
    rep, rubbish = plan.config["report"], plan.config["rubbish"] or {}
    saliency = plan.config["saliency"] or {}
    datasets = set(map(plan.dataset_of, panel_runs(plan)))
    job = {
        "seed": plan.seeds[0],
        "data": {ds: plan.data(ds) for ds in panel_datasets(plan)},
        "examples": [panel_entry(plan, r) for r in rep["examples"]],
        "weights": [panel_entry(plan, r) for r in rep["weights"]],
        "logistic": panel_entry(plan, plan.logistic_runs[0]) if plan.logistic_runs else None,
        "rubbish": [panel_entry(plan, r) for r in plan.rubbish_runs()],
        "example_eps": {ds: rep["example_eps_by_dataset"].get(ds, rep["example_eps"]) for ds in datasets},
        "n_examples": rep["n_examples"],
        "n_weights": 10,
        "rubbish_n": {ds: rubbish.get("n_by_dataset", {}).get(ds, rubbish.get("n", 0)) for ds in datasets},
        "rubbish_k": 8,
        "rubbish_threshold": rubbish.get("threshold", 0.5),
        "saliency": [panel_entry(plan, r) for r in plan.saliency_runs()],
        "saliency_settings": {k: saliency.get(k) for k in ("maps", "samples", "noise")},
    }
    return json.dumps(job, sort_keys=True)
