"""``advbench bench``: a tiny configuration through the same code as the real run (outputs, schema,
agreement with the peers, finite ratios); the floors and the workflow-log reader on known inputs.
No timing thresholds."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from conftest import REPO

pytest.importorskip("torchattacks")
pytest.importorskip("art")

from advbench.bench import torch_compile  # noqa: E402
from advbench.bench.suite import (  # noqa: E402
    SCHEMA,
    TARGETS,
    BenchConfig,
    Target,
    default_epochs,
    default_task_seconds,
    model_spec,
    run_bench,
)
from advbench.bench.timing import paired_range, peak_memory_mib, time_interleaved  # noqa: E402
from advbench.bench.train import adversarial_floor  # noqa: E402
from advbench.bench.workflow import WorkflowRunError, workflow_rows  # noqa: E402
from advbench.cli import main  # noqa: E402
from advbench.config.loading import load_config  # noqa: E402
from advbench.models.architectures import build  # noqa: E402

LOG = """Config file(s): ['config.yaml']
Job stats:
job      count
train        2
all          1
[Sun Nov 22 16:50:27 2026]
Finished jobid: 0 (Rule: all)
3 of 3 steps (100%) done
Complete log(s): x
Elapsed time: 0:14:03.500000
"""


def fake_run(root: Path, log: str = LOG) -> Path:
    """A workflow folder as Snakemake leaves it: its config, a log and two rules' benchmark files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (root / ".snakemake" / "log").mkdir(parents=True)
    (root / ".snakemake" / "log" / "2026-11-22T165023.1.snakemake.log").write_text(log)
    for rule, name, seconds in [("train", "a", 300.5), ("train", "b", 100.0), ("attack", "a", 20.0)]:
        (root / "benchmarks" / rule / "mnist").mkdir(parents=True, exist_ok=True)
        (root / "benchmarks" / rule / "mnist" / f"{name}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:01\n")
    return root


def test_quick_bench_writes_every_output(prepared, tmp_path):
    work, out = fake_run(tmp_path / "run"), tmp_path / "bench"
    argv = ["bench", "--quick", "--data", str(prepared), "--out-dir", str(out), "--workflow-dir", str(work)]
    assert main([*argv, "--device", "cpu"]) == 0  # the CPU's rows (a GPU skips the CPU-only step rows)
    table = pq.read_table(out / "bench.parquet")
    assert table.schema.remove_metadata().equals(SCHEMA)
    rows = table.to_pandas()
    assert set(rows["section"]) == {"fgsm", "train", "memory", "ray", "workflow"}
    assert set(TARGETS) <= set(zip(rows["section"], rows["metric"], strict=True))  # every target measured
    assert set(rows.loc[rows["section"] == "fgsm", "batch_size"]) == {32}
    diffs = rows[rows["metric"].str.startswith("max_abs_diff")]
    assert len(diffs) == 4 and (diffs["value"] == 0).all()  # advbench = torchattacks = ART, both models
    ratios = rows[rows["unit"] == "x"]
    assert len(ratios) == 17 and all(math.isfinite(v) and v > 0 for v in ratios["value"])
    compiled = rows[rows["metric"].str.startswith("compile_speedup_")]  # torch.compile ran, both cases
    assert list(compiled["metric"]) == ["compile_speedup_fgsm", "compile_speedup_train_step"]
    assert list(compiled["batch_size"]) == [32, 100]
    paired = rows[rows["rep_min"].notna()]  # a ratio of medians lies within its per-repetition range
    assert set(paired["metric"]) == {
        "speedup_vs_torchattacks", "speedup_vs_art", "time_over_floor", "adversarial_over_clean_epoch",
        "compile_speedup_fgsm", "compile_speedup_train_step",
        "maxout_max_piece_major_speedup", "noise_one_pass_speedup", "flush_denormal_speedup",
        "stacked_seeds_speedup_clean", "stacked_seeds_speedup_adversarial",
    }  # fmt: skip
    assert (paired["rep_min"] <= paired["value"] * (1 + 1e-9)).all()
    assert (paired["value"] <= paired["rep_max"] * (1 + 1e-9)).all()
    summary_md = (out / "summary.md").read_text()
    assert re.search(r"\|\s*repetitions\s*\|", summary_md) and re.search(
        r"\| [0-9.e+-]+–[0-9.e+-]+ +\|", summary_md
    )
    steps = rows[rows["metric"].str.startswith("step_seconds_adversarial")]  # maxout240, two processes
    assert list(steps["model"]) == ["maxout240"] * 2 and (steps["value"] > 0).all()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["metric", "value", "target", "ok", "verdict"]
    assert set(summary["verdict"]) <= {"met", "missed", "within noise"}
    assert len(summary) == rows["target"].notna().sum() and summary["metric"].is_unique
    assert "workflow/wall_seconds/config.yaml,843.5,<= 1200,True,met" in (out / "summary.csv").read_text()
    md = (out / "bench.md").read_text()
    assert md.startswith("Machine: ") and "| speedup_vs_art " in md
    assert (out / "summary.md").read_text().count("| fgsm ") == len(summary) - 4  # train (2), ray, workflow
    save = rows[(rows["metric"] == "state_save_share_of_clean_epoch") & rows["target"].notna()]
    assert list(save["model"]) == ["maxout240"] and 0 < save["value"].iloc[0] < 1
    assert save["verdict"].iloc[0] in ("met", "missed")  # a single timing: no interval, no "within noise"
    monitoring = rows[rows["metric"].str.startswith("monitoring_seconds_")].set_index("metric")["value"]
    sizes = ("default", "paper_recipe", "headline")
    assert set(monitoring.index) == {f"monitoring_seconds_{k}" for k in sizes}
    assert (monitoring > 0).all()  # the paper recipe's scores more validation examples (quick: both capped)


def test_adversarial_floor_counts_multiply_adds():
    maxout = build(model_spec("maxout240"))
    macs = [784 * 1200, 240 * 1200, 240 * 10]
    assert adversarial_floor(maxout) == pytest.approx(2 + macs[0] / (2 * sum(macs) + macs[1] + macs[2]))
    assert adversarial_floor(maxout) == pytest.approx(2.34, abs=0.005)
    assert adversarial_floor(build(model_spec("maxout1600"))) == pytest.approx(2.12, abs=0.005)
    assert adversarial_floor(build(model_spec("softmax"))) == pytest.approx(2.5)


def test_peak_memory_sees_a_temporary_tensor():
    assert peak_memory_mib(lambda: torch.ones(1024, 1024).sum()) >= 4.0  # 4 MiB of float32, freed at once


def test_workflow_rows_read_log_and_benchmarks(tmp_path):
    rows = {r["metric"]: r for r in workflow_rows(fake_run(tmp_path))}
    assert (
        rows["wall_seconds"]["value"] == pytest.approx(843.5)
        and rows["wall_seconds"]["model"] == "config.yaml"
    )
    assert rows["rule_train_job_seconds"]["value"] == pytest.approx(400.5)
    assert rows["rule_attack_job_seconds"]["unit"] == "s (1 jobs)"


def test_unfinished_run_is_refused(tmp_path, prepared):
    fake_run(tmp_path, LOG.replace("Elapsed time: 0:14:03.500000\n", ""))
    with pytest.raises(WorkflowRunError, match="finished run of rule 'all'"):
        workflow_rows(tmp_path)
    (row,) = run_bench(BenchConfig.quick(("workflow",)), prepared, tmp_path)  # its target: reported, unmet
    assert row["metric"] == "wall_seconds" and math.isnan(row["value"]) and row["ok"] is False
    assert row["verdict"] == "missed"


class _Uncompilable(torch.nn.Module):
    """What a compiled model does where torch.compile cannot build its code (no C++ compiler, say)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("InductorError: no working C++ compiler")


def test_a_failing_compile_leaves_nan_rows_not_a_crash(monkeypatch):
    monkeypatch.setattr(torch_compile.torch, "compile", _Uncompilable)
    x, y = torch.rand(8, 784), torch.randint(0, 10, (8,))
    rows = torch_compile.compile_rows("maxout240", model_spec("maxout240"), (x, y), (x, y), 4, 1, 1)
    assert [r["metric"] for r in rows] == ["compile_speedup_fgsm", "compile_speedup_train_step"]
    assert all(math.isnan(r["value"]) for r in rows)


def test_paired_range_is_the_spread_of_per_repetition_ratios():
    ranged = paired_range([3.0, 1.0, 2.0], [1.0, 2.0, 1.0])
    assert (ranged["rep_min"], ranged["rep_max"]) == (0.5, 3.0)
    logs = [math.log(3.0), math.log(0.5), math.log(2.0)]  # 95% t-interval of the mean log ratio
    half = 4.302653 * statistics.stdev(logs) / 3**0.5
    assert ranged["ci_low"] == pytest.approx(math.exp(statistics.fmean(logs) - half))
    assert ranged["ci_high"] == pytest.approx(math.exp(statistics.fmean(logs) + half))
    with pytest.raises(ValueError):  # unpaired repetitions are a bug, not a shorter range
        paired_range([1.0, 2.0], [1.0])


def test_interleaved_timing_rotates_the_order_of_turns():
    calls: list[str] = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = time_interleaved(fns, reps=3, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_the_ray_share_is_of_the_default_presets_training_task(tmp_path):
    """The default task's epochs are read from the workflow's config.yaml, not kept in the benchmark."""
    assert (
        default_epochs(REPO) == load_config(REPO / "config.yaml")["models"]["maxout"]["train"]["max_epochs"]
    )
    text = (REPO / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(re.sub(r"max_epochs: \d+( +# DEVIATION)", r"max_epochs: 7\1", text))
    assert default_epochs(tmp_path) == 7
    rows = [{"section": "train", "model": "maxout240", "metric": "epoch_seconds_clean", "value": 0.5}]
    cfg = BenchConfig()
    assert default_task_seconds(rows, cfg, 7) == pytest.approx(0.5 * 50_000 / cfg.train_examples * 7)
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        default_epochs(tmp_path / "elsewhere")


def test_a_gpu_gets_sizes_past_launch_overhead_and_quick_stays_quick():
    cpu, gpu = BenchConfig.for_run("cpu", False), BenchConfig.for_run("cuda", False)
    assert cpu == BenchConfig()
    assert gpu.fgsm_images_large == gpu.fgsm_images == 10_000  # the whole MNIST test set, every model
    assert gpu.train_examples > cpu.train_examples and gpu.reps > cpu.reps
    assert BenchConfig.for_run("cuda", True, ("fgsm",)) == BenchConfig.quick(("fgsm",))


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [(1.02, 1.10, "met"), (0.90, 0.98, "missed"), (0.95, 1.05, "within noise"), (None, None, "met")],
)
def test_a_parity_target_is_met_missed_or_within_noise_by_its_interval(low, high, verdict):
    row = {"value": 1.01, "floor": None, "ci_low": low, "ci_high": high}
    assert Target(">=", 1.0).verdict(row) == verdict
    mirrored = {"value": 1 / 1.01, "floor": None, "ci_low": high and 1 / high, "ci_high": low and 1 / low}
    assert Target("<=", 1.0).verdict(mirrored) == verdict
