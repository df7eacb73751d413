"""One end-to-end Snakemake run of the smoke preset, in a temporary copy of the workflow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_snakemake

from advbench.config.loading import load_config
from advbench.config.specs import model_spec
from advbench.config.validation import validate_config
from advbench.models.architectures import build
from advbench.plan import Plan
from advbench.report.paper import COLUMNS
from advbench.results.checkpoints import load_into
from advbench.results.tables import read_many, read_meta, read_table

pytestmark = pytest.mark.e2e
MNIST_FIGURES = {
    f"F{i}" for i in (1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25)
}


def test_paper_table_rows_and_values(smoke_run):
    table = pd.read_csv(smoke_run / "results/tables/paper_comparison.csv")
    assert list(table.columns) == COLUMNS
    # every figure of the paper has a row; S4-S6: §4's rotations, §5's linear objectives, §6's hidden-layer
    # perturbation; DN: deep nets adversarially trained, with PyTorch's FGSM tutorial as a reference
    assert set(table["id"]) == {f"F{i}" for i in range(1, 27)} | {"S4", "S5", "S6", "DN"}
    rotation = table[table["id"] == "S4"]
    assert len(rotation) == 6 and (rotation["n_seeds"] == 2).all()
    assert rotation["verdict"].isin(["direction holds", "differs", "shown in figure"]).all()
    deep = table[table["id"] == "DN"]
    assert len(deep) == 15 and (deep["n_seeds"] == 2).all(), deep
    tutorial = deep[deep["note"].str.startswith("reference value from PyTorch FGSM tutorial")]
    assert len(tutorial) == 7 and tutorial["paper"].notna().all()
    sections = table[table["id"].isin(["S5", "S6"])]
    # static augmentation's ratio sweep (2 : 1, 1 : 2) is the paper preset's; its 1 : 1 runs in smoke
    ratios = sections["experiment"].str.contains("augmentation (?:2 : 1|1 : 2)")
    assert len(sections) == 22 and ratios.sum() == 4 and (sections.loc[ratios, "verdict"] == "not run").all()
    ran = sections[~ratios]
    assert (ran["n_seeds"] == 2).all() and ran["experiment"].str.contains("static augmentation").sum() == 4
    assert sections["paper"].isna().all() and ran["verdict"].isin(["direction holds", "differs"]).all()
    leaking = pd.read_csv(smoke_run / "results/tables/label_leaking.csv")
    assert {"softmax-static", "maxout-static"} <= set(leaking["model"] + "-" + leaking["regime"])
    assert leaking["label_leaking"].dtype == bool and (leaking["eps_from"] < leaking["eps_to"]).all()
    mnist = table[table["id"].isin(MNIST_FIGURES) & ~table["experiment"].str.contains("CIFAR")]
    assert (mnist["n_seeds"] == 2).all(), mnist[mnist["n_seeds"] != 2]
    assert set(mnist["verdict"]) <= {"matches", "direction holds", "differs", "shown in figure", "undefined"}
    f19 = table[table["id"] == "F19"]  # the tiny MP-DBM, clean and FGSM through its mean-field inference
    assert len(f19) == 2 and "mp_dbm-clean: trained" in f19["note"].iloc[0], f19
    f1 = table[(table["id"] == "F1") & (table["metric"] == "error")].iloc[0]
    assert f1["reproduced_mean"] > 50.0  # FGSM at eps=.25 breaks the naive softmax (values in %)
    assert f1["paper"] == pytest.approx(99.9)
    f9 = table[table["experiment"].str.contains("1600-unit maxout \\(F8's model\\)")].iloc[0]
    assert f9["id"] == "F9" and "maxout1600-adversarial: trained at most 1 epoch (" in f9["note"]
    assert f9["note"].endswith("needs presets/paper.yaml") and f9["ci95_low"] <= f9["reproduced_mean"]
    md = (smoke_run / "results/tables/paper_comparison.md").read_text()
    assert md.splitlines()[0].replace(" ", "") == "|" + "|".join(COLUMNS) + "|"
    assert "\\toprule" in (smoke_run / "results/tables/paper_comparison.tex").read_text()


def test_attack_results_are_sane(smoke_run):
    path = smoke_run / "results/metrics/attack/dataset=mnist/model=softmax/regime=clean/attacks.parquet"
    every = read_table(path, "attack").to_pandas()
    # seeds x clipping x (eps for the single-step methods, multistep.eps for bim and pgd)
    assert every.groupby("attack").size().to_dict() == {
        "fgsm": 12, "fgsm_ll": 12, "fgsm_pred": 12, "random_sign": 12, "bim": 8, "pgd": 8
    }  # fmt: skip
    assert (every["n"] == 1000).all() and (every["max_perturbation"] <= every["eps"] + 1e-6).all()
    attack = every[every["attack"] == "fgsm"]
    mean = attack[~attack["clipped"]].groupby("eps")["error"].mean()
    assert mean.loc[0.0] < 0.3 and mean.is_monotonic_increasing and mean.loc[0.25] > 0.5
    at = every[np.isclose(every["eps"], 0.25) & every["clipped"]].groupby("attack")["error"].mean()
    assert at["pgd"] >= at["fgsm"] - 0.01 and at["random_sign"] < at["fgsm"]  # the weakest, the strongest
    assert (attack["n_zero_grad"] == 0).all()  # counted with FGSM's gradients only (true or predicted labels)
    assert every.loc[~every["attack"].isin(["fgsm", "fgsm_pred"]), "n_zero_grad"].isna().all()
    assert (every.loc[every["attack"] == "fgsm_pred", "n_zero_grad"] == 0).all()
    maxout = read_table(Path(str(path).replace("softmax", "maxout")), "attack").to_pandas()
    maxout = maxout[maxout["attack"] == "fgsm"]
    maxout_mean = maxout[~maxout["clipped"]].groupby("eps")["error"].mean()
    assert maxout_mean.loc[0.0] < 0.5 < maxout_mean.loc[0.25]  # it learned, and FGSM breaks it
    trust = pd.read_csv(smoke_run / "results/tables/trust_checks.csv")
    runs = trust["model"] + "-" + trust["regime"]
    attacked = runs.isin(["softmax-clean", "maxout-clean", "maxout-adversarial"])
    checked = trust[attacked]  # the smoke preset's runs with every method; the others FGSM alone
    assert len(checked) == 3 and checked["pgd_error"].notna().all() and (checked["large_eps"] == 1.0).all()
    assert trust.loc[~attacked, "pgd_error"].isna().all()
    assert (checked["large_eps_error"] > 50).all(), checked  # at eps 1 PGD reaches nearly any image
    meta = read_meta(path)
    assert meta["rule"] == "attack" and meta["config_hash"] != "unknown" and meta["node_ids"]
    assert meta["ray_address"] == "embedded (shared by the workflow run)"


MATRIX = ["softmax-clean", "rbf-clean", "maxout-clean"]


def test_transfer_and_curves_and_checkpoints(smoke_run):
    tr = read_many(sorted((smoke_run / "results/metrics/transfer").rglob("*.parquet")), "transfer")
    ends = [
        tr.column(c).to_pylist() for c in ("source_model", "source_regime", "target_model", "target_regime")
    ]
    pairs = {(f"{a}-{b}", f"{c}-{d}") for a, b, c, d in zip(*ends, strict=True)}
    assert pairs == {
        ("maxout-clean", "maxout-adversarial"),
        ("maxout-adversarial", "maxout-clean"),
        ("maxout-clean", "maxout1600-adversarial"),  # F10 on F8's model, the naive side read as 240 units
        ("maxout1600-adversarial", "maxout-clean"),
        ("maxout1600-clean", "maxout1600-adversarial"),  # and read as 1600 units
        ("maxout1600-adversarial", "maxout1600-clean"),
        ("softmax-clean", "softmax-static"),  # the static models on the fixed kind of examples
        ("maxout-clean", "maxout-static"),
        *{(s, t) for s in MATRIX for t in MATRIX if s != t},  # transfer.matrix: every one against every one
    }
    curves_path = (
        smoke_run / "results/metrics/curves/dataset=mnist/model=maxout/regime=adversarial/curves.parquet"
    )
    curves = read_table(curves_path, "curves").to_pandas()
    config = validate_config(load_config(smoke_run / "config.yaml", smoke_run / "presets/smoke.yaml"))
    epochs = config["models"]["maxout"]["train"]["max_epochs"]
    assert sorted(curves["seed"].unique()) == [0, 1]
    stage1, stage2 = curves[curves["stage"] == 1], curves[curves["stage"] == 2]
    assert (stage1.groupby("seed")["epoch"].max() == epochs).all()
    assert stage2.groupby("seed")["epoch"].min().tolist() == [epochs + 1, epochs + 1]  # retrained on 60k
    spec = model_spec("maxout", config["models"]["maxout"])
    ckpt = smoke_run / "results/models/dataset=mnist/model=maxout/regime=adversarial/seed=1.safetensors"
    model = load_into(build(spec), ckpt)
    assert model(torch.rand(2, 784)).shape == (2, 10)
    cost = pd.read_csv(smoke_run / "results/tables/training_cost.csv").set_index(["model", "regime"])
    row = cost.loc[("maxout", "adversarial")]
    assert row["tasks"] == 2 and row["epochs_per_task"] == len(curves) / 2
    assert row["task_seconds"] == pytest.approx(curves["seconds"].sum(), rel=1e-6)


def test_fast_and_pgd_training_are_watched_for_catastrophic_overfitting(smoke_run):
    """The smoke's fgsm_rs and pgd_trained runs carry the per-epoch PGD error; the paper's runs do not."""
    curves = read_many(sorted((smoke_run / "results/metrics/curves").rglob("*.parquet")), "curves")
    curves = curves.to_pandas()
    monitored = curves[curves["val_pgd_error"].notna()]
    assert set(monitored["regime"]) == {"fgsm_rs", "pgd_trained"} and (monitored["model"] == "maxout").all()
    assert monitored["val_pgd_error"].between(0, 1).all()
    table = pd.read_csv(smoke_run / "results/tables/catastrophic_overfitting.csv")
    assert sorted(table["regime"]) == ["fgsm_rs", "pgd_trained"] and (table["tasks"] == 2).all()
    assert (table["epochs"] == 2).all() and table["overfit_tasks"].between(0, 2).all()


def test_every_trained_run_has_a_record_and_a_card_and_the_leaderboard_ranks_them(smoke_run):
    config = validate_config(load_config(smoke_run / "config.yaml", smoke_run / "presets/smoke.yaml"))
    plan = Plan(config)
    files = sorted((smoke_run / "results/records").glob("*/*.json"))
    records = {p.stem: json.loads(p.read_text()) for p in files}
    assert sorted(records) == sorted(plan.runs)
    assert all(p.parent.name == plan.dataset_of(p.stem) and p.with_suffix(".md").is_file() for p in files)
    softmax = records["softmax-clean"]
    assert softmax["seeds"] == [0, 1] and softmax["eps"] == 0.25 and softmax["clipped"] is True
    path = smoke_run / "results/metrics/attack/dataset=mnist/model=softmax/regime=clean/attacks.parquet"
    rows = read_table(path, "attack").to_pandas()
    at = rows[np.isclose(rows["eps"], 0.25) & rows["clipped"]].groupby("attack")["error"].mean()
    assert softmax["robust_acc"] == pytest.approx(100 * (1 - at.max()), abs=1e-3)
    assert softmax["robust_attack"] == at.idxmax()  # the strongest of the six methods
    assert softmax["provenance"]["attack"]["rule"] == "attack"
    (machine,) = softmax["provenance"]["attack"]["machines"]  # every task ran on this one machine
    assert " cores, " in machine
    assert machine in (smoke_run / "results/records/mnist/softmax-clean.md").read_text()  # its model card
    board = pd.read_csv(smoke_run / "results/tables/leaderboard.csv")
    assert sorted(board["name"]) == sorted(plan.runs)
    for dataset, ranked in board.groupby("dataset"):
        assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
        assert ranked["robust_acc_mean"].dropna().is_monotonic_decreasing
        unranked = {n for n, r in records.items() if r["dataset"] == dataset and r["robust_acc"] is None}
        assert set(ranked.loc[ranked["robust_acc_mean"].isna(), "name"]) == unranked


def test_rerun_has_nothing_to_do(smoke_run):
    proc = run_snakemake(smoke_run, "--cores", "2", "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


FIGURES = [
    "fgsm_vs_eps",
    "transfer_matrix",
    "training_curves",
    "first_layer_weights_mnist",
    "first_layer_weights_cifar10",
    "adversarial_examples_mnist",
    "adversarial_examples_cifar10",  # the smoke preset's tiny conv maxout
    "logistic_weights",
    "logits_vs_eps",
    "rubbish_histogram",
    "rubbish_samples_mnist",
    "rubbish_samples_cifar10",
    "error_vs_angle",
    "saliency_maps_mnist",
    "saliency_maps_cifar10",
]


def test_figures_are_real_images(smoke_run):
    from PIL import Image

    for name in FIGURES:
        with Image.open(smoke_run / "results/figures" / f"{name}.png") as image:
            image.verify()
            assert min(image.size) > 300, name
        assert (smoke_run / "results/figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")


def test_html_report_embeds_every_figure(smoke_run):
    import base64

    proc = run_snakemake(smoke_run, "--report", "results/report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (smoke_run / "results/report.html").read_text()
    for name in FIGURES:
        png = (smoke_run / "results/figures" / f"{name}.png").read_bytes()
        assert base64.b64encode(png)[:4000].decode() in html, name
    assert "paper_comparison.md" in html and "Paper vs reproduced" in html


def _metrics(run: Path, kind: str) -> pd.DataFrame:
    files = sorted((run / "results/metrics" / kind).rglob("*.parquet"))
    return pd.concat([read_table(f, kind).to_pandas() for f in files if f.stem == kind])


def test_experiment_results_cover_every_seed(smoke_run):
    config = validate_config(load_config(smoke_run / "config.yaml", smoke_run / "presets/smoke.yaml"))
    rubbish = _metrics(smoke_run, "rubbish")
    assert len(rubbish) == 2 * len(config["rubbish"]["runs"])  # seeds x models
    assert (rubbish["n"] == 1000).all() and set(rubbish["dataset"]) == {"mnist", "cifar10"}
    assert (rubbish.loc[rubbish["model"] == "rbf", "error"] == 0).all()  # F24: the RBF is never confident
    agreement = _metrics(smoke_run, "agreement")
    assert set(agreement["seed"]) == {0, 1} and (agreement["n_agree"] <= agreement["n"]).all()
    ensemble = _metrics(smoke_run, "ensemble")
    assert set(ensemble["attacked"]) == {"ensemble", "member"} and (ensemble["members"] == 3).all()
    sweep = _metrics(smoke_run, "sweep")
    assert len(sweep) == 2 * 21 * 10 and set(sweep["label"]) == {4}  # seeds x eps steps x classes
    rotation = _metrics(smoke_run, "rotation")
    angles = config["rotation"]["angles"]
    assert len(rotation) == 2 * len(config["rotation"]["runs"]) * len(angles)  # seeds x models x angles
    start = rotation[rotation["angle"] == 0]
    assert (start["error"] == start["random_error"]).all() and (start["mean_l2"] == 0).all()
    assert (rotation.loc[rotation["angle"] > 0, "mean_l2"] > 0).all()
    saliency = _metrics(smoke_run, "saliency")
    runs = config["saliency"]["runs"]
    assert len(saliency) == 2 * len(runs) and set(saliency["dataset"]) == {"mnist", "cifar10"}
    assert (saliency["n"] == 100).all() and (saliency["samples"] == 4).all()
    cosines = saliency[["gradient_alignment", "smoothgrad_alignment", "gradient_smoothgrad_cosine"]]
    assert cosines.abs().le(1).all().all() and (saliency["gradient_smoothgrad_cosine"] < 1).all()
    table = pd.read_csv(smoke_run / "results/tables/saliency_summary.csv")
    assert len(table) == len(runs) and (table["n_seeds"] == 2).all()
