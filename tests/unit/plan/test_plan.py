"""The plan: the rules' paths and job specs from one validated config, and the report's lists."""

from __future__ import annotations

import json
import re
import string

import pytest
from conftest import REPO

import advbench.plan.report as report_plan
from advbench.config.loading import load_config
from advbench.config.validation import validate_config
from advbench.plan import PATHS, Plan, path, ray_threads_and_slot
from advbench.report import layout
from advbench.report.tables import make_report


def plan_of(*presets: str) -> Plan:
    config = load_config(REPO / "config.yaml", *(REPO / "presets" / f"{p}.yaml" for p in presets))
    validate_config(config)
    return Plan(config)


@pytest.fixture(scope="module")
def smoke() -> Plan:
    return plan_of("smoke")


def wildcards(pattern: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(pattern) if name}


def test_every_pattern_uses_only_constrained_wildcards():
    common = (REPO / "workflow/rules/common.smk").read_text()
    block = common.split("wildcard_constraints:")[1].split("\n\n")[0]
    constrained = set(re.findall(r"^\s+(\w+)=", block, re.M)) | {"kind", "name", "ext"}
    for name, pattern in PATHS.items():
        assert wildcards(pattern) <= constrained, name


def test_rules_take_their_paths_from_the_plan():
    """No rule spells a wildcard path under results/ or resources/ of its own: each is a PATHS entry."""
    for rule_file in (REPO / "workflow/rules").glob("*.smk"):
        text = rule_file.read_text()
        spelled = re.findall(r'"((?:results|resources)/[^"]*\{[^"]*)"', text)
        assert spelled == [], f"{rule_file.name} spells {spelled}"


def test_path_fills_every_wildcard():
    p = path("checkpoint", dataset="mnist", model="maxout", regime="clean", seed=3)
    assert p == "results/models/dataset=mnist/model=maxout/regime=clean/seed=3.safetensors"
    with pytest.raises(KeyError):
        path("checkpoint", dataset="mnist")


def test_outputs_of_the_smoke_preset(smoke):
    cfg = smoke.config
    assert len(smoke.attack_outputs()) == len(smoke.runs)
    n_matrix = len(cfg["transfer"]["matrix"])
    assert len(smoke.transfer_outputs()) == len(cfg["transfer"]["pairs"]) + n_matrix * (n_matrix - 1)
    assert len(smoke.curves_outputs()) == len(smoke.runs) + len(smoke.member_runs)
    assert all(p.endswith(".parquet") for p in smoke.all_results())
    assert len(set(smoke.all_results())) == len(smoke.all_results())
    # a run's dataset is in its paths: the CIFAR-10 run's attack lands under dataset=cifar10
    cifar = [r for r in smoke.runs if smoke.dataset_of(r) == "cifar10"]
    assert cifar and all("dataset=cifar10" in p for p in smoke.run_checkpoints(cifar[0]))


def test_members_are_seed_major_and_chunked_per_seed(smoke):
    (run,) = smoke.member_runs
    paths = smoke.run_members(run)
    k = smoke.n_members
    assert len(paths) == len(smoke.seeds) * k
    for i, seed in enumerate(smoke.seeds):
        assert all(f"seed={seed}/member=" in p for p in paths[i * k : (i + 1) * k])
    per_seed = smoke.ensemble_runs()[run]["checkpoints"]
    assert per_seed == [paths[i : i + k] for i in range(0, len(paths), k)]


def test_switched_off_experiments_have_no_outputs(smoke):
    off = dict.fromkeys(("agreement", "sweep", "ensemble", "rubbish", "rotation", "saliency"))
    assert Plan(dict(smoke.config, **off)).experiment_outputs() == []
    assert len(smoke.experiment_outputs()) == 8  # saliency: one job for each of its runs' two datasets


def test_job_specs_are_json_with_the_runs_settings(smoke):
    run = smoke.runs[0]
    job = json.loads(smoke.run_attack_json(smoke.dataset_of(run), *run.split("-")))
    assert job["attack"]["eps"] == smoke.config["attack"]["eps"]
    assert job["subset"] == smoke.subset
    transfer = json.loads(smoke.transfer_job_json("mnist"))
    assert transfer["attack"]["eps"] == smoke.config["transfer"]["eps"]
    spec = json.loads(smoke.run_model_json(run))
    assert spec["arch"] == smoke.config["models"][run.split("-")[0]]["arch"]


def test_ray_slot_policy():
    assert ray_threads_and_slot("head:6379", False, 16) == (1, 0)
    assert ray_threads_and_slot(None, True, 16) == (1, 0)
    assert ray_threads_and_slot(None, False, 16) == (16, 1)


def test_report_writes_exactly_the_layouts_tables(tmp_path):
    make_report([], tmp_path)
    assert {p.stem for p in tmp_path.iterdir()} == set(layout.TABLES)
    assert {p.suffix for p in tmp_path.iterdir()} == {f".{ext}" for ext in layout.TABLE_FORMATS}


def test_table_paths_cover_every_format_and_the_budgets(smoke):
    paths = report_plan.table_paths(smoke.config)
    assert len(paths) == len(layout.TABLES) * len(layout.TABLE_FORMATS)
    with_budgets = dict(smoke.config, report=dict(smoke.config["report"], budgets="b.csv"))
    assert "epoch_budgets_csv" in report_plan.table_paths(with_budgets)
    assert report_plan.budgets(with_budgets) == ["b.csv"]


def test_figures_and_panels_of_the_smoke_preset(smoke):
    figures = report_plan.figures(smoke)
    assert report_plan.charts(smoke) == [n for n in layout.CHARTS if n in figures]
    # one image figure per dataset of its runs: the smoke preset has MNIST and CIFAR-10 examples
    assert {"adversarial_examples_mnist", "adversarial_examples_cifar10", "logistic_weights"} <= set(figures)
    job = json.loads(report_plan.panels_job(smoke))
    assert set(job["data"]) == set(report_plan.panel_datasets(smoke))
    first = job["examples"][0]
    assert set(first) == {"run", "model", "regime", "checkpoint"}
    assert first["checkpoint"] == smoke.run_checkpoints(first["run"])[0]
    figures_job = json.loads(report_plan.figures_job(smoke))
    assert set(figures_job["images"]) == set(report_plan.image_figures(smoke))


def test_a_config_without_transfer_asks_for_no_transfer_heatmap():
    plan = plan_of("robust_training")  # transfer pairs and matrix both empty
    assert plan.pairs == [] and "transfer_matrix" not in report_plan.figures(plan)
    assert "transfer_matrix" not in report_plan.charts(plan)
    assert "transfer_matrix" in report_plan.figures(plan_of("smoke"))
