"""The report's registries: its categories, the tables ``advbench report`` writes and their formats, the
charts ``advbench figures`` draws and the tables each needs, and the image panels. The rules
(through :mod:`advbench.plan.report`) and the report's writers read these lists, so each is kept once.
"""

from __future__ import annotations

#: where ``advbench report``, ``figures`` and ``panels`` write, relative to the run's folder
TABLES_DIR, FIGURES_DIR, PANELS_DIR = "results/tables", "results/figures", "results/panels"
#: where ``advbench records`` writes one JSON record and one model card per trained run
RECORDS_DIR = "results/records"

#: report categories, in the report's order
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
    "rotation": "10. Rotation attack (section 4)",
}
ALL_RUNS = "every run"

#: table name -> (report category, runs shown); ``advbench report`` writes each of them
TABLES: dict[str, tuple[str, str]] = {
    "paper_comparison": (CAT["paper"], ALL_RUNS),
    "attack_summary": (CAT["fgsm"], ALL_RUNS),
    "label_leaking": (CAT["fgsm"], ALL_RUNS),
    "trust_checks": (CAT["fgsm"], ALL_RUNS),
    "leaderboard": (CAT["fgsm"], ALL_RUNS),
    "training_summary": (CAT["training"], ALL_RUNS),
    "training_cost": (CAT["training"], ALL_RUNS),
    "saliency_summary": (CAT["training"], "saliency runs"),
    "catastrophic_overfitting": (CAT["training"], "runs with train.monitor_pgd"),
    "transfer_summary": (CAT["transfer"], "transfer pairs"),
    "agreement_summary": (CAT["agreement"], "agreement source and observers"),
    "ensemble_summary": (CAT["ensemble"], "ensemble run"),
    "rubbish_summary": (CAT["rubbish"], "rubbish runs"),
    "rubbish_classes": (CAT["rubbish"], "rubbish runs"),
    "rotation_summary": (CAT["rotation"], "rotation runs"),
}
#: the table of ``report.budgets`` (a budgets.csv of ``advbench budgets``), when the config names one
BUDGETS_TABLE = ("epoch_budgets", (CAT["training"], "the 240-unit pair at several epoch budgets"))
#: every table is written in each format: extension -> the report's label
TABLE_FORMATS = {
    "html": "HTML (view)",
    "tex": "LaTeX (booktabs)",
    "csv": "CSV (all numbers)",
    "md": "Markdown",
}

#: chart name -> the results tables it needs (the chart is skipped with a log line when one is empty)
CHARTS: dict[str, tuple[str, ...]] = {
    "fgsm_vs_eps": ("attack",),
    "transfer_matrix": ("attack", "transfer"),
    "training_curves": ("curves",),
    "logits_vs_eps": ("sweep",),
    "rubbish_histogram": ("rubbish", "rubbish_classes"),
    "error_vs_angle": ("rotation",),
}
#: the panel tables of ``advbench panels``: results/panels/<kind>.parquet
PANEL_KINDS = ("examples", "weights", "rubbish", "saliency")
#: image panel kind -> (figure name stem, report category); one figure per dataset of its runs
IMAGE_PANELS = {
    "examples": ("adversarial_examples", CAT["fgsm"]),
    "weights": ("first_layer_weights", CAT["training"]),
    "saliency": ("saliency_maps", CAT["training"]),
    "rubbish": ("rubbish_samples", CAT["rubbish"]),
    "logistic": ("logistic_weights", CAT["linear"]),
}
