"""Helpers of report.smk and panels.smk: which tables and figures the config asks for, their report
categories and labels, and the figures job (see advbench/report/figures.py)."""

# name -> (report category, runs shown); a table is registered as HTML (shown in the report), LaTeX, CSV
# and Markdown
CAT = {
    "paper": "1. Paper vs reproduced",
    "fgsm": "2. FGSM vs ε (F1, F2, F9, F12-F14)",
    "linear": "3. Linear model, 3 vs 7 (F4, Fig. 2)",
    "training": "4. Training and weights (F5-F8, Fig. 3)",
    "transfer": "5. Transfer (F10)",
    "agreement": "6. Cross-model agreement (F15-F17)",
    "sweep": "7. Logits along the FGSM direction (F18, Fig. 4)",
    "ensemble": "8. Ensemble (F20)",
    "rubbish": "9. Rubbish class (F21-F25)",
}
ALL_RUNS = "every run"
TABLES = {
    "paper_comparison": (CAT["paper"], ALL_RUNS),
    "attack_summary": (CAT["fgsm"], ALL_RUNS),
    "training_summary": (CAT["training"], ALL_RUNS),
    "training_cost": (CAT["training"], ALL_RUNS),
    "transfer_summary": (CAT["transfer"], "transfer pairs"),
    "agreement_summary": (CAT["agreement"], "agreement source and observers"),
    "ensemble_summary": (CAT["ensemble"], "ensemble run"),
    "rubbish_summary": (CAT["rubbish"], "rubbish runs"),
    "rubbish_classes": (CAT["rubbish"], "rubbish runs"),
}
# report.budgets: a budgets.csv of `advbench budgets`, shown as a table of its own
BUDGETS = [config["report"]["budgets"]] if config["report"]["budgets"] else []
if BUDGETS:
    TABLES["epoch_budgets"] = (
        CAT["training"],
        "the 240-unit pair at several epoch budgets",
    )
TABLE_FORMATS = {
    "html": "HTML (view)",
    "tex": "LaTeX (booktabs)",
    "csv": "CSV (all numbers)",
    "md": "Markdown",
}
LOGISTIC_RUNS = [
    r for r in RUNS if config["models"][split_run_id(r)[0]]["arch"] == "logistic"
]


def runs_text(runs):
    return ", ".join(runs)


def rubbish_runs():
    return config["rubbish"]["runs"] if config["rubbish"] else []


def by_dataset(runs):
    """dataset -> its runs among ``runs``, datasets and runs in the order given."""
    out = {}
    for run in runs:
        out.setdefault(dataset_of(run), []).append(run)
    return out


# panel kind (advbench/report/figures.py) -> (figure name stem, report category); one figure per dataset
IMAGE_PANELS = {
    "examples": ("adversarial_examples", CAT["fgsm"]),
    "weights": ("first_layer_weights", CAT["training"]),
    "rubbish": ("rubbish_samples", CAT["rubbish"]),
}


def image_figures():
    """name -> (panel kind, dataset, runs shown) of every image figure: one panda figure, Fig. 3 and
    rubbish-samples figure per dataset of their runs, and Fig. 2 (the first logistic run).
    """
    rep = config["report"]
    sources = {
        "examples": rep["examples"],
        "weights": rep["weights"],
        "rubbish": rubbish_runs(),
    }
    out = {}
    for panel, runs in sources.items():
        for dataset, shown in by_dataset(runs).items():
            out[f"{IMAGE_PANELS[panel][0]}_{dataset}"] = (panel, dataset, shown)
    if LOGISTIC_RUNS:
        run = LOGISTIC_RUNS[0]
        out["logistic_weights"] = ("logistic", dataset_of(run), [run])
    return out


def figure_entries():
    """name -> (category, runs shown, caption stem) of every figure the config asks for."""
    pairs = sorted({run for pair in PAIRS for run in pair})
    out = {
        "fgsm_vs_eps": (CAT["fgsm"], ALL_RUNS),
        "training_curves": (CAT["training"], ALL_RUNS),
        "transfer_matrix": (CAT["transfer"], runs_text(pairs)),
    }
    if config["sweep"]:
        out["logits_vs_eps"] = (CAT["sweep"], config["sweep"]["run"])
    if config["rubbish"]:
        out["rubbish_histogram"] = (CAT["rubbish"], runs_text(rubbish_runs()))
    out = {name: (*entry, name) for name, entry in out.items()}
    for name, (panel, _, runs) in image_figures().items():
        stem, category = IMAGE_PANELS.get(panel, ("logistic_weights", CAT["linear"]))
        out[name] = (category, runs_text(runs), stem)
    return out


FIGURES = figure_entries()
CHARTS = [
    n
    for n in (
        "fgsm_vs_eps",
        "transfer_matrix",
        "training_curves",
        "logits_vs_eps",
        "rubbish_histogram",
    )
    if n in FIGURES
]


def table_outputs():
    return {
        f"{name}_{ext}": report(
            f"results/tables/{name}.{ext}",
            caption=f"../report/{name}.rst",
            category=category,
            subcategory="tables",
            labels={"table": name, "format": label, "runs": runs},
        )
        for name, (category, runs) in TABLES.items()
        for ext, label in TABLE_FORMATS.items()
    }


def figure_outputs():
    out = {}
    for name, (category, runs, stem) in FIGURES.items():
        out[name] = report(
            f"results/figures/{name}.png",
            caption=f"../report/{stem}.rst",
            category=category,
            subcategory="figures",
            labels={"figure": name, "runs": runs},
        )
        out[f"{name}_pdf"] = f"results/figures/{name}.pdf"
    return out


def figures_job():
    """The figures job: the charts to draw and every image figure's panel and dataset (advbench/report/figures.py)."""
    images = {
        name: {"panel": panel, "dataset": dataset}
        for name, (panel, dataset, _) in image_figures().items()
    }
    job = {"charts": CHARTS, "transfer_eps": config["report"]["transfer_eps"]}
    return json.dumps(job | {"images": images}, sort_keys=True)


PANEL_TABLES = {
    kind: f"results/panels/{kind}.parquet"
    for kind in ("examples", "weights", "rubbish")
}


def panel_entry(run):
    """A run's specs and its first seed's checkpoint."""
    model, regime = split_run_id(run)
    return {
        "run": run,
        "model": json.loads(model_json(model, regime)),
        "regime": json.loads(regime_json(regime)),
        "checkpoint": run_checkpoints(dataset_of(run), run)[0],
    }


def panel_runs():
    """Every run an image figure shows, once."""
    rep = config["report"]
    runs = rep["examples"] + rep["weights"] + LOGISTIC_RUNS[:1] + rubbish_runs()
    return list(dict.fromkeys(runs))


def panel_datasets():
    """The datasets whose test inputs the panels attack: those of the examples and the logistic run."""
    runs = config["report"]["examples"] + LOGISTIC_RUNS[:1]
    return list(dict.fromkeys(map(dataset_of, runs)))


def panels_job():
    """The panels job: the runs of every image figure and their settings (advbench/jobs/panels.py)."""
    rep, rubbish = config["report"], config["rubbish"] or {}
    datasets = set(map(dataset_of, panel_runs()))
    job = {
        "seed": SEEDS[0],
        "data": {ds: data_path(ds) for ds in panel_datasets()},
        "examples": [panel_entry(r) for r in rep["examples"]],
        "weights": [panel_entry(r) for r in rep["weights"]],
        "logistic": panel_entry(LOGISTIC_RUNS[0]) if LOGISTIC_RUNS else None,
        "rubbish": [panel_entry(r) for r in rubbish_runs()],
        "example_eps": {
            ds: rep["example_eps_by_dataset"].get(ds, rep["example_eps"])
            for ds in datasets
        },
        "n_examples": rep["n_examples"],
        "n_weights": 10,
        "rubbish_n": {
            ds: rubbish.get("n_by_dataset", {}).get(ds, rubbish.get("n", 0))
            for ds in datasets
        },
        "rubbish_k": 8,
        "rubbish_threshold": rubbish.get("threshold", 0.5),
    }
    return json.dumps(job, sort_keys=True)
