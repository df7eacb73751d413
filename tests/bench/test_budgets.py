"""``advbench budgets``: the headline pair at several stage-1 epoch caps, each a real workflow run (here on
the chaos preset's tiny data), read back into one table that the report shows."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import REPO

from advbench.bench.budgets import PAPER, Budget, paper_caps, parse_budget, run_budgets, write_outputs
from advbench.config.loading import load_config
from advbench.report.budgets import ROWS, read_table
from advbench.report.tables import make_report

pytestmark = pytest.mark.e2e

TINY = ("presets/smoke.yaml", "presets/chaos.yaml")  # the chaos preset's data, models and stage 2
PATIENCE = 2  # the paper's schedule on the tiny data: stage 1 ends by patience in a few epochs, not its cap


@pytest.fixture(scope="module")
def budgets(tmp_path_factory: pytest.TempPathFactory, mnist_dir) -> tuple:
    root = tmp_path_factory.mktemp("budgets")
    impatient = root / "impatient.yaml"
    impatient.write_text(f"models:\n  maxout:\n    train: {{patience: {PATIENCE}}}\n")
    plan = [Budget(epochs, (0,), 2, TINY) for epochs in (1, 3)]
    plan.append(Budget(PAPER, (0,), 2, (*TINY, str(impatient))))
    return root, plan, run_budgets(REPO, root, plan)


def _read(workdir, pattern: str) -> pd.DataFrame:
    (path,) = (workdir / "results" / "metrics").glob(pattern)
    return pq.read_table(path).to_pandas()


def test_each_budget_is_a_workflow_run_with_its_cap(budgets):
    root, plan, table = budgets
    assert table["stage1_epochs"].tolist() == [1, 3, "paper's schedule", "published"]
    for budget, row in zip(plan[:2], table.iloc[:2].to_dict("records"), strict=True):
        curves = _read(root / budget.name, "curves/*/model=maxout/regime=clean/curves.parquet")
        assert curves.loc[curves["stage"] == 1, "epoch"].max() == budget.epochs  # patience 100: the cap binds
        assert 1 <= row["best_epoch_clean"] <= budget.epochs
        assert row["snakemake_s"] > 0 and row["training_task_s"] > 0 and not row["resumed"]
        assert row["five_seeds_training_s"] == pytest.approx(5 * row["training_task_s"] / 2, abs=0.1)


def test_the_paper_budget_runs_the_papers_schedule(budgets):
    """paper.yaml's caps replace the headline's: stage 1 ends when patience runs out, not at a cap, and
    stage 2 runs until the objectives meet within paper.yaml's cap, not the headline's 3 epochs."""
    root, plan, table = budgets
    caps = paper_caps(REPO)
    headline = load_config(REPO / "presets/headline.yaml")["models"]["maxout"]["train"]
    paper = load_config(REPO / "presets/paper.yaml")["models"]["maxout"]["train"]
    assert caps["max_epochs"] == paper["max_epochs"] and caps["retrain_max_epochs"] > 3
    assert plan[-1].overlay(REPO)["models"]["maxout"]["train"] == caps
    assert headline["patience"] == paper["patience"]  # the schedule keeps the headline's: the paper's
    for regime in ("clean", "adversarial"):
        curves = _read(root / plan[-1].name, f"curves/*/model=maxout/regime={regime}/curves.parquet")
        stage1 = curves.loc[curves["stage"] == 1]
        best = int(stage1.loc[stage1["is_best"], "epoch"].max())
        assert stage1["epoch"].max() == best + PATIENCE < caps["max_epochs"]
        assert 1 <= (curves["stage"] == 2).sum() <= caps["retrain_max_epochs"]
    row = table.iloc[2]
    assert row["best_epoch_clean"] > 0 and row["snakemake_s"] > 0


def test_an_epoch_budget_is_a_positive_number_or_paper():
    assert parse_budget("25") == 25 and parse_budget("paper") == PAPER
    for bad in ("0", "-3", "ten", "Paper"):
        with pytest.raises(ValueError, match="neither a positive number of epochs nor 'paper'"):
            parse_budget(bad)
    refused = subprocess.run(
        [sys.executable, "-m", "advbench.cli", "budgets", "--epochs", "ten"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "'ten' is neither a positive number" in refused.stderr


def test_the_rows_are_the_runs_own_results(budgets):
    root, plan, table = budgets
    for budget, row in zip(plan, table.iloc[:-1].to_dict("records"), strict=True):
        attack = _read(root / budget.name, "attack/*/model=maxout/regime=clean/attacks.parquet")
        clean = attack[(attack["eps"] == 0.0) & ~attack["clipped"]]
        assert row["F6 naive clean"] == pytest.approx(100 * clean["error"].mean())
        fgsm = attack[(attack["eps"] == 0.25) & ~attack["clipped"]]
        assert row["F2 FGSM error"] == pytest.approx(100 * fgsm["error"].mean())
    paper = table.iloc[-1]
    assert paper["F6 naive clean"] == pytest.approx(0.94) and paper["F2 FGSM error"] == pytest.approx(89.4)
    assert pd.isna(paper["AT own FGSM"])  # F9's 17.9% is the 1600-unit model's


def test_a_finished_budget_is_read_not_rerun(budgets):
    root, plan, table = budgets
    logs = {b.name: (root / b.name / "snakemake.log").stat().st_mtime_ns for b in plan}
    again = run_budgets(REPO, root, plan)
    assert again["snakemake_s"].tolist()[:-1] == table["snakemake_s"].tolist()[:-1]
    assert {b.name: (root / b.name / "snakemake.log").stat().st_mtime_ns for b in plan} == logs


def test_the_report_shows_the_table_and_refuses_a_wrong_file(budgets, tmp_path):
    root, plan, table = budgets
    write_outputs(table, tmp_path, tmp_path / "budgets_doc.md", "this machine", "advbench budgets")
    assert "Machine: this machine." in (tmp_path / "budgets_doc.md").read_text()
    results = sorted((root / plan[0].name / "results").rglob("*.parquet"))
    make_report(results, tmp_path / "tables", budgets=tmp_path / "budgets.csv")
    shown = pd.read_csv(tmp_path / "tables" / "epoch_budgets.csv")
    assert list(ROWS.values()) <= list(shown.columns) and len(shown) == 4
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="wrong.csv has no columns"):
        read_table(wrong)


def test_the_report_rule_reads_report_budgets(budgets, tmp_path):
    root, plan, table = budgets
    write_outputs(table, tmp_path, None, "this machine", "advbench budgets")
    overlay = tmp_path / "with_budgets.yaml"
    overlay.write_text(f"report:\n  budgets: {tmp_path / 'budgets.csv'}\n")
    cmd = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/default", "--configfile"]
    cmd += ["presets/chaos.yaml", str(overlay), "--dry-run", "--printshellcmds", "--cores", "1"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert f"--budgets {tmp_path / 'budgets.csv'}" in out and "results/tables/epoch_budgets.html" in out
    overlay.write_text(f"report:\n  budgets: {tmp_path / 'missing.csv'}\n")
    refused = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert refused.returncode != 0 and "report.budgets" in refused.stdout + refused.stderr
