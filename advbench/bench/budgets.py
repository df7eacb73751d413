"""What an epoch budget buys: the headline pair (the 240-unit maxout, naive and adversarially trained, on the
paper's recipe) trained at several stage-1 epoch caps, and on the paper's whole schedule, each by the
workflow itself in a folder of its own, and the rows the headline preset reproduces (F2, F6 and the
240-unit adversarially trained model's rows) set side by side with each budget's wall time on this machine.

Every budget is an ordinary run of README's command with ``presets/headline.yaml`` and an overlay that sets
the seeds, the stage-1 cap and the runs; a budget whose folder holds a finished run is read, not rerun, and an
interrupted one resumes through Snakemake (its time is then only that of the last invocation, and says so).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from advbench.config.loading import load_config
from advbench.config.runs import runs_alone
from advbench.config.specs import TrainSpec
from advbench.reliability.chaos import copy_workflow, tool_env
from advbench.report.budgets import ROWS
from advbench.report.paper import load_figures

log = logging.getLogger(__name__)

BASE_PRESET = "presets/headline.yaml"
RUNS = ("maxout-clean", "maxout-adversarial")
RECORD = "budget.json"
PAPER = "paper"  # the budget that is no budget: the paper's schedule
PAPER_PRESET = "presets/paper.yaml"
SCHEDULE_ROW, PUBLISHED_ROW = "paper's schedule", "published"  # the table's names of the two paper lines


@dataclass(frozen=True)
class Budget:
    """One budget: the stage-1 epoch cap of the headline pair (or ``PAPER``: the paper's schedule), the
    seeds, the cores Snakemake may use, and presets merged between the headline preset and the budget's
    overlay (the tests' tiny data)."""

    epochs: int | str
    seeds: tuple[int, ...] = (0,)
    cores: int = 2
    presets: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"epochs={self.epochs}"

    def overlay(self, repo: Path) -> dict:
        """The config merged last: this budget's caps and seeds, the pair alone with its transfer."""
        pairs = [(RUNS[0], RUNS[1]), (RUNS[1], RUNS[0])]
        caps = paper_caps(repo) if self.epochs == PAPER else {"max_epochs": self.epochs}
        return runs_alone(RUNS, self.seeds, caps, pairs)

    def command(self) -> list[str]:
        configs = ["--configfile", BASE_PRESET, *self.presets, "budget.yaml"]
        return ["snakemake", "--profile", "workflow/profiles/default", *configs, "--cores", str(self.cores)]


def paper_caps(repo: Path) -> dict:
    """The paper's schedule as caps over the headline's recipe, read from ``presets/paper.yaml``: stage 1
    until ``patience`` epochs pass without improvement (the headline's 100, the paper's) within its
    ``max_epochs``, stage 2 until the objectives meet within its ``retrain_max_epochs`` (the schema's
    default where the preset sets none)."""
    train = load_config(repo / PAPER_PRESET)["models"]["maxout"]["train"]
    retrain = train.get("retrain_max_epochs", TrainSpec.retrain_max_epochs)
    return {"max_epochs": train["max_epochs"], "retrain_max_epochs": retrain}


def parse_budget(text: str) -> int | str:
    """A ``--epochs`` value: a positive stage-1 cap, or ``paper`` for the paper's schedule."""
    if text == PAPER:
        return PAPER
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"--epochs: {text!r} is neither a positive number of epochs nor {PAPER!r}")


def run_budget(repo: Path, root: Path, budget: Budget) -> dict:
    """Run (or read) one budget in ``root / budget.name``; return its record: the overlay, the wall time
    of the Snakemake invocation that finished it, and whether that invocation resumed an earlier one."""
    workdir, overlay = root / budget.name, budget.overlay(repo)
    record_path = workdir / RECORD
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record["overlay"] == overlay and record["presets"] == list(budget.presets):
            log.info("%s: finished earlier (%.0f s), read from %s", budget.name, record["seconds"], workdir)
            return record
    resumed = (workdir / "results").exists()
    copy_workflow(repo, workdir)
    (workdir / "budget.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    log.info("%s: %s in %s", budget.name, " ".join(budget.command()), workdir)
    start = time.perf_counter()
    with open(workdir / "snakemake.log", "ab") as out:
        rc = subprocess.run(budget.command(), cwd=workdir, env=tool_env(), stdout=out, stderr=out).returncode
    seconds = time.perf_counter() - start
    if rc != 0:
        raise RuntimeError(f"{budget.name}: snakemake exited {rc}; see {workdir / 'snakemake.log'}")
    record = {"overlay": overlay, "presets": list(budget.presets), "seconds": seconds}
    record["resumed"] = resumed
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def budget_row(workdir: Path, budget: Budget, record: dict) -> dict:
    """One line of the table from a finished budget's tables: its cost and the rows' means (in %)."""
    tables = workdir / "results" / "tables"
    comparison = comparison_by_key(tables / "paper_comparison.csv")
    cost = pd.read_csv(tables / "training_cost.csv").set_index(["model", "regime"])
    training = pd.read_csv(tables / "training_summary.csv").set_index(["model", "regime"])
    label = SCHEDULE_ROW if budget.epochs == PAPER else budget.epochs
    row: dict = {"stage1_epochs": label, "seeds": len(budget.seeds)}
    row["snakemake_s"] = round(record["seconds"], 1)
    row["resumed"] = bool(record["resumed"])
    row["training_task_s"] = round(float(cost["task_seconds"].sum()), 1)
    for regime in ("clean", "adversarial"):
        row[f"best_epoch_{regime}"] = float(training.loc[("maxout", regime), "epoch_mean"])
    row |= {label: float(comparison.loc[key, "reproduced_mean"]) for key, label in ROWS.items()}
    return row


def comparison_by_key(path: Path) -> pd.DataFrame:
    """A run's paper_comparison.csv (values in %) indexed by paper.yaml's keys: its rows are the figures in
    paper.yaml's order, which the ``experiment`` column confirms."""
    table = pd.read_csv(path)
    figures = load_figures()
    if table["experiment"].tolist() != [f.experiment for f in figures]:
        raise ValueError(f"{path}: its rows are not advbench/paper.yaml's figures (another version's run?)")
    return table.set_index(pd.Index([f.key for f in figures], name="key"))


def paper_row() -> dict:
    """The paper's values of the rows (the 240-unit adversarial rows have none: F9-F11 are on 1600 units)."""
    figures = {f.key: f for f in load_figures()}
    row: dict = {"stage1_epochs": PUBLISHED_ROW}
    for key, label in ROWS.items():
        value = figures[key].paper
        row[label] = None if value is None else 100 * value
    return row


def five_seed_estimate(row: dict, cores: int) -> float:
    """Training seconds of five seeds on ``cores`` cores, from one seed's task-seconds (both runs share the
    cores evenly; no scheduling gaps)."""
    return 5 * row["training_task_s"] / row["seeds"] / cores


def run_budgets(repo: Path, root: Path, budgets: list[Budget]) -> pd.DataFrame:
    """Every budget in turn (one at a time: their wall times must not share the machine); the table."""
    rows = []
    for budget in budgets:
        record = run_budget(repo, root, budget)
        row = budget_row(root / budget.name, budget, record)
        row["five_seeds_training_s"] = round(five_seed_estimate(row, budget.cores), 1)
        rows.append(row)
    table = pd.DataFrame(rows + [paper_row()])
    return table.astype({"seeds": "Int64", "resumed": "boolean"})  # the paper's line has neither


DOC_INTRO = """\
The headline preset's 240-unit maxout pair (naive and adversarially trained, on the paper's recipe: early
stopping on all 10k validation examples, then stage-2 retraining on 60k for at most 3 epochs) with stage 1
capped at each budget, one run of the workflow per budget. Values in % (mean over the seeds).
`snakemake_s` is the run's wall time; `training_task_s` the training tasks' seconds; `five_seeds_training_s`
the training time five seeds would take on the same cores (task-seconds x 5 / seeds / cores). The line
"paper's schedule" is the same pair on the paper's whole schedule (`--epochs paper`: stage 1 until 100 epochs
pass without improvement, stage 2 until the objectives meet, within presets/paper.yaml's caps). The last
line holds the published values: the paper gives F9-F11 for the 1600-unit model only, so the 240-unit rows
have none.
"""


def markdown(table: pd.DataFrame, machine: str, command: str) -> str:
    """The table as the Markdown of docs/budgets.md, with the machine and the command that made it."""
    head = (
        f"# What an epoch budget buys\n\nGenerated by `{command}` (advbench/bench/budgets.py).\n\n{DOC_INTRO}"
    )
    shown = table.astype(object).where(table.notna(), None)  # the paper's line: blanks, not NaN
    body = shown.to_markdown(index=False, floatfmt=".2f", missingval="")
    return f"{head}\nMachine: {machine}.\n\n{body}\n"


def write_outputs(table: pd.DataFrame, out_dir: Path, doc: Path | None, machine: str, command: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "budgets.csv", index=False)
    text = markdown(table, machine, command)
    (out_dir / "budgets.md").write_text(text)
    if doc is not None:
        doc.write_text(text)


def default_cores() -> int:
    return min(os.cpu_count() or 1, 2 * len(RUNS))
