"""Helpers of report.smk: which tables and figures the config asks for, their report categories and labels,
and the figures job (see advbench/render.py)."""

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
    "transfer_summary": (CAT["transfer"], "transfer pairs"),
    "agreement_summary": (CAT["agreement"], "agreement source and observers"),
    "ensemble_summary": (CAT["ensemble"], "ensemble run"),
    "rubbish_summary": (CAT["rubbish"], "rubbish runs"),
    "rubbish_classes": (CAT["rubbish"], "rubbish runs"),
}
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


def rubbish_image_runs():
    """The rubbish runs whose noise samples are drawn: those of the workflow's dataset (the image panels
    show one dataset's inputs; every rubbish run is in the tables and the histogram)."""
    return [r for r in config["rubbish"]["runs"] if dataset_of(r) == DATASET]


def figure_entries():
    """name -> (category, runs shown) of every figure the config asks for."""
    rep = config["report"]
    pairs = sorted({run for pair in PAIRS for run in pair})
    out = {
        "fgsm_vs_eps": (CAT["fgsm"], ALL_RUNS),
        "adversarial_examples": (CAT["fgsm"], runs_text(rep["examples"])),
        "training_curves": (CAT["training"], ALL_RUNS),
        "first_layer_weights": (CAT["training"], runs_text(rep["weights"])),
        "transfer_matrix": (CAT["transfer"], runs_text(pairs)),
    }
    if LOGISTIC_RUNS:
        out["logistic_weights"] = (CAT["linear"], LOGISTIC_RUNS[0])
    if config["sweep"]:
        out["logits_vs_eps"] = (CAT["sweep"], config["sweep"]["run"])
    if config["rubbish"]:
        out["rubbish_histogram"] = (
            CAT["rubbish"],
            runs_text(config["rubbish"]["runs"]),
        )
        out["rubbish_samples"] = (CAT["rubbish"], runs_text(rubbish_image_runs()))
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
    for name, (category, runs) in FIGURES.items():
        out[name] = report(
            f"results/figures/{name}.png",
            caption=f"../report/{name}.rst",
            category=category,
            subcategory="figures",
            labels={"figure": name, "runs": runs},
        )
        out[f"{name}_pdf"] = f"results/figures/{name}.pdf"
    return out


def figure_entry(run):
    """A run's specs and its first seed's checkpoint, for the image figures."""
    model, regime = split_run_id(run)
    return {
        "run": run,
        "model": json.loads(model_json(model, regime)),
        "regime": json.loads(regime_json(regime)),
        "checkpoint": run_checkpoints(dataset_of(run), run)[0],
    }


def report_figure_runs():
    rep = config["report"]
    runs = rep["weights"] + rep["examples"] + LOGISTIC_RUNS[:1]
    if config["rubbish"]:
        runs += rubbish_image_runs()
    return list(dict.fromkeys(runs))


def report_figure_job():
    """The figures job: the charts to draw and the runs of every image figure (see advbench/render.py)."""
    rep = config["report"]
    job = {k: rep[k] for k in ("example_eps", "n_examples", "transfer_eps")}
    job |= {"dataset": DATASET, "charts": CHARTS}
    job |= {k: [figure_entry(r) for r in rep[k]] for k in ("weights", "examples")}
    if LOGISTIC_RUNS:
        job["logistic"] = figure_entry(LOGISTIC_RUNS[0])
    if config["rubbish"]:
        job["rubbish"] = [figure_entry(r) for r in rubbish_image_runs()]
        job |= {"rubbish_n": config["rubbish"]["n"], "rubbish_seed": SEEDS[0]}
        job["rubbish_threshold"] = config["rubbish"]["threshold"]
    return json.dumps(job, sort_keys=True)
