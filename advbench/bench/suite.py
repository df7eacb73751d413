"""``advbench bench``: how fast advbench is, measured in one run against the targets it must meet.

Sections (each a module): FGSM throughput against torchattacks and ART and the forward + backward floor
(:mod:`advbench.bench.fgsm`), adversarial ÷ clean training epoch beside its floor and peak memory
(:mod:`advbench.bench.train`), ``torch.compile`` against eager (:mod:`advbench.bench.torch_compile`), Ray
overhead (:mod:`advbench.bench.ray`) and a finished workflow run's wall time
(:mod:`advbench.bench.workflow`). Every timing is the median of ``reps`` repetitions after warm-up.
Writes ``bench.parquet`` (every measurement), ``bench.md`` (the table), ``summary.csv`` (one row per
target: ``metric,value,target,ok,verdict``) and ``summary.md`` (those rows as a table).

A target's ``verdict`` is ``met``, ``missed`` or ``within noise``: for a ratio timed in paired repetitions,
``met`` needs the whole 95% interval of the per-repetition ratios on the target's side and ``missed`` the
whole interval on the other; an interval that straddles the threshold is ``within noise`` (the machine
cannot tell the two apart). A value without repetitions (a difference, a wall time) is met or missed.
``ok`` is the point value against the target.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from advbench.config.specs import Arch, ModelSpec, TrainSpec
from advbench.data.inputs import to_float
from advbench.data.splits import load_splits
from advbench.models.architectures import build
from advbench.results.provenance import provenance
from advbench.runtime.files import atomic_path
from advbench.runtime.task import machine

log = logging.getLogger(__name__)
SECTIONS = ("fgsm", "train", "memory", "ray", "workflow")
MAXOUTS = ("maxout240", "maxout1600")


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how much: images per FGSM repetition, training examples per epoch."""

    models: tuple[str, ...] = ("softmax", *MAXOUTS)
    batch_sizes: tuple[int, ...] = (128, 1024)
    fgsm_images: int = 4096
    fgsm_images_large: int = 1024  # the 1600-unit maxout: 16x the work per image
    train_examples: int = 5000
    train_examples_large: int = 800
    denormal_examples: int = 50_000  # a whole epoch: denormals come and go with the data's rare pixels
    malloc_rounds: int = 2  # fresh processes per allocator setting (bench_step.malloc_rows)
    malloc_steps: int = 20  # training steps per timing; 1600 units: a quarter
    reps: int = 5
    warmup: int = 1
    threads: int = 1
    sections: tuple[str, ...] = SECTIONS

    @classmethod
    def quick(cls, sections: tuple[str, ...] = SECTIONS) -> BenchConfig:
        """Seconds, not minutes: for CI and tests (timings too short to compare with the targets)."""
        return cls(
            models=("softmax", "maxout240"), batch_sizes=(32,), fgsm_images=64, fgsm_images_large=64,
            train_examples=200, train_examples_large=200, denormal_examples=200, reps=2, malloc_rounds=1,
            malloc_steps=4,
            sections=sections,
        )  # fmt: skip

    @classmethod
    def gpu(cls, sections: tuple[str, ...] = SECTIONS) -> BenchConfig:
        """A GPU runs the CPU sizes in milliseconds, where launch overhead and clock ramp-up swamp the work:
        the whole test set per FGSM repetition, whole training epochs, twice the repetitions."""
        return cls(
            fgsm_images=10_000, fgsm_images_large=10_000, train_examples=50_000, train_examples_large=10_000,
            reps=10, sections=sections,
        )  # fmt: skip

    @classmethod
    def for_run(cls, device: str, quick: bool, sections: tuple[str, ...] = SECTIONS) -> BenchConfig:
        """The sizes ``advbench bench`` uses: ``quick`` for tests, else the device's."""
        if quick:
            return cls.quick(sections)
        return cls.gpu(sections) if device.startswith("cuda") else cls(sections=sections)


def model_spec(name: str) -> ModelSpec:
    """The benchmark's models: config.yaml's softmax regression and 240- and 1600-unit maxouts."""
    if name == "softmax":
        return ModelSpec(name=name, arch=Arch.SOFTMAX, max_col_norm=None)
    if name in MAXOUTS:
        return ModelSpec(name=name, arch=Arch.MAXOUT, units=int(name.removeprefix("maxout")))
    raise ValueError(f"bench model {name!r} unknown; expected one of {('softmax', *MAXOUTS)}")


@dataclass(frozen=True)
class Target:
    op: str  # ">=" or "<="
    value: float
    of_floor: bool = False  # the threshold is ``value`` times the row's floor
    models: tuple[str, ...] | None = None  # None: every model

    def threshold(self, row: dict) -> float:
        return self.value * row["floor"] if self.of_floor else self.value

    def met(self, row: dict) -> bool:
        v, t = row["value"], self.threshold(row)
        return math.isfinite(v) and (v >= t if self.op == ">=" else v <= t)

    def verdict(self, row: dict) -> str:
        """``met``, ``missed`` or ``within noise`` (see the module's docstring)."""
        low, high = row.get("ci_low"), row.get("ci_high")
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
            return "met" if self.met(row) else "missed"
        t = self.threshold(row)
        good, bad = (low >= t, high < t) if self.op == ">=" else (high <= t, low > t)
        return "met" if good else "missed" if bad else "within noise"


TARGETS: dict[tuple[str, str], Target] = {
    ("fgsm", "speedup_vs_torchattacks"): Target(">=", 1.0),
    ("fgsm", "speedup_vs_art"): Target(">=", 1.5),
    ("fgsm", "max_abs_diff_torchattacks"): Target("<=", 0.0),
    ("fgsm", "max_abs_diff_art"): Target("<=", 0.0),
    ("fgsm", "time_over_floor"): Target("<=", 1.05, models=MAXOUTS),
    ("train", "adversarial_over_clean_epoch"): Target("<=", 1.05, of_floor=True, models=MAXOUTS),
    ("train", "state_save_share_of_clean_epoch"): Target("<=", 0.02, models=MAXOUTS),  # save_every: 1
    ("ray", "overhead_share_of_default_task"): Target("<=", 0.05),
    ("workflow", "wall_seconds"): Target("<=", 20 * 60, models=("config.yaml",)),  # the default preset
}


def with_targets(rows: list[dict]) -> list[dict]:
    """Add ``target`` (e.g. ``>= 1.5``) and ``ok`` to the rows a target applies to."""
    out = []
    for row in rows:
        row = {
            "floor": None,
            "target": None,
            "ok": None,
            "batch_size": None,
            "rep_min": None,
            "rep_max": None,
            "ci_low": None,
            "ci_high": None,
            "verdict": None,
        } | row
        target = TARGETS.get((row["section"], row["metric"]))
        if target and (target.models is None or row["model"] in target.models):
            row |= {"target": f"{target.op} {target.threshold(row):.4g}", "ok": target.met(row)}
            row["verdict"] = target.verdict(row)
        out.append(row)
    return out


SCHEMA = pa.schema(
    [
        pa.field("section", pa.string(), False),
        pa.field("metric", pa.string(), False),
        pa.field("model", pa.string()),
        pa.field("batch_size", pa.int64()),
        pa.field("value", pa.float64(), False),
        pa.field("rep_min", pa.float64()),  # a ratio's smallest and largest per-repetition reading
        pa.field("rep_max", pa.float64()),
        pa.field("ci_low", pa.float64()),  # 95% interval of the per-repetition ratios' geometric mean
        pa.field("ci_high", pa.float64()),
        pa.field("unit", pa.string(), False),
        pa.field("floor", pa.float64()),
        pa.field("target", pa.string()),
        pa.field("ok", pa.bool_()),
        pa.field("verdict", pa.string()),
    ]
)


def _images(x: torch.Tensor, n: int, batch_size: int) -> torch.Tensor:
    """The first ``n`` images, at least one batch, in whole batches (every batch the same size)."""
    n = max(n, batch_size) // batch_size * batch_size
    return x[:n]


def fgsm_section(cfg: BenchConfig, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    from advbench.bench.fgsm import fgsm_rows

    rows = []
    for name in cfg.models:
        n = cfg.fgsm_images_large if name == "maxout1600" else cfg.fgsm_images
        model = build(model_spec(name), torch.Generator().manual_seed(0)).to(x.device)
        for b in cfg.batch_sizes:
            xb = _images(x, n, b)
            log.info("FGSM: %s, batch %d, %d images", name, b, len(xb))
            rows += fgsm_rows(name, model, xb, y[: len(xb)], b, cfg.reps, cfg.warmup)
    return rows


def train_section(cfg: BenchConfig, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    from advbench.bench.step import flush_denormal_rows, malloc_rows, maxout_max_rows, noise_pass_rows
    from advbench.bench.torch_compile import compile_rows
    from advbench.bench.train import FULL_EPOCH, epoch_rows, monitoring_rows, stacked_rows

    rows = []
    for name in cfg.models:
        large = name == "maxout1600"
        n = cfg.train_examples_large if large else cfg.train_examples
        log.info("training epochs: %s, %d examples", name, n)
        epochs = epoch_rows(name, model_spec(name), x[:n], y[:n], cfg.reps, cfg.warmup)
        rows += epochs
        if name in MAXOUTS:  # a job's seeds one task each, or stacked (ray.stack_seeds)
            log.info("stacked seeds: %s", name)
            rows += stacked_rows(name, model_spec(name), x[:n], y[:n], max(cfg.reps // 2, 2), cfg.warmup)
        if name == "maxout240":  # the work around the steps: each epoch's monitoring
            log.info("per-epoch monitoring: %s", name)
            clean = next(r["value"] for r in epochs if r["metric"] == "epoch_seconds_clean")
            rows += monitoring_rows(
                name, model_spec(name), x, y, clean * FULL_EPOCH / n, cfg.reps, cfg.warmup
            )
        if name in MAXOUTS and x.device.type == "cpu":
            log.info("training step: %s, max over pieces, noise objective, malloc settings", name)
            rows += maxout_max_rows(name, model_spec(name), cfg.reps, cfg.warmup)
            rows += noise_pass_rows(name, model_spec(name), x, y, cfg.reps, cfg.warmup)
            if not large:
                m = cfg.denormal_examples
                rows += flush_denormal_rows(name, model_spec(name), x[:m], y[:m], cfg.reps, cfg.warmup)
            steps = max(cfg.malloc_steps // 4 if large else cfg.malloc_steps, 1)
            rows += malloc_rows(name, model_spec(name), cfg.malloc_rounds, steps, cfg.reps)
        if name == "maxout240":  # torch.compile against eager: why advbench runs eager
            log.info("torch.compile: %s, FGSM and a training step", name)
            xa = _images(x, cfg.fgsm_images, min(cfg.batch_sizes))
            attack = (xa, y[: len(xa)])
            rows += compile_rows(
                name, model_spec(name), attack, (x, y), min(cfg.batch_sizes), cfg.reps, cfg.warmup
            )
    return rows


def memory_section(cfg: BenchConfig, x: torch.Tensor, y: torch.Tensor) -> list[dict]:
    from advbench.bench.train import memory_rows

    return [r for name in cfg.models for r in memory_rows(name, model_spec(name), x, y, max(cfg.batch_sizes))]


def default_epochs(workflow_dir: Path) -> int:
    """The epochs of the default preset's 240-unit maxout (``maxout-clean`` in ``config.yaml``)."""
    from advbench.config.loading import load_config
    from advbench.config.runs import run_model_spec

    path = workflow_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the default preset sizes the Ray share; pass --workflow-dir")
    return run_model_spec(load_config(path), "maxout-clean").train.max_epochs


def default_task_seconds(rows: list[dict], cfg: BenchConfig, epochs: int, n_train: int = 50_000) -> float:
    """One default training task (the 240-unit maxout, clean, ``epochs`` over 50k examples), scaled from
    the measured clean epoch; without the per-epoch monitoring, so a lower bound. NaN when the ``train``
    section has not run before."""
    for r in rows:
        if (r["section"], r["model"], r["metric"]) == ("train", "maxout240", "epoch_seconds_clean"):
            return r["value"] * n_train / cfg.train_examples * epochs
    return math.nan


def ray_section(cfg: BenchConfig, data_path: Path, rows: list[dict], epochs: int) -> list[dict]:
    from advbench.bench.ray import ray_rows

    n = cfg.train_examples
    data = load_splits(data_path, n, min(n, 2000), 0).as_dict()
    spec = replace(model_spec("maxout240"), train=TrainSpec(max_epochs=1, monitor_train=min(n, 1000)))
    log.info("Ray: per-task overhead and 2 workers over 1, on one-epoch tasks over %d examples", n)
    return ray_rows(data, spec, cfg.reps, default_task_seconds(rows, cfg, epochs))


def unmeasured_run() -> dict:
    """The default preset's wall-time row when no finished run was found (the log says why): NaN, so its
    target is unmet."""
    unit = "s (no finished run of the default preset found)"
    return {
        "section": "workflow",
        "metric": "wall_seconds",
        "model": "config.yaml",
        "value": math.nan,
        "unit": unit,
    }


def _tensors(x: np.ndarray, y: np.ndarray, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(to_float(x)).to(device), torch.from_numpy(y).long().to(device)


def run_bench(cfg: BenchConfig, data_path: Path, workflow_dir: Path, device: str = "cpu") -> list[dict]:
    """Every section of ``cfg.sections``, in order; rows with targets attached. The process's malloc is
    tuned as in advbench's tasks (:mod:`advbench.runtime.allocator`); the peers share the process, hence it
    too."""
    from advbench.bench.workflow import WorkflowRunError, workflow_rows
    from advbench.runtime.allocator import tune_allocator

    tune_allocator()
    torch.set_flush_denormal(True)  # as in advbench's tasks (advbench.runtime.task.init_task)
    splits = load_splits(data_path)
    test, train = (
        _tensors(splits.x_test, splits.y_test, device),
        _tensors(splits.x_train, splits.y_train, device),
    )
    rows: list[dict] = []
    for name in cfg.sections:
        torch.set_num_threads(cfg.threads)
        if name == "fgsm":
            rows += fgsm_section(cfg, *test)
        elif name in ("train", "memory"):
            rows += (train_section if name == "train" else memory_section)(cfg, *train)
        elif name == "ray":
            rows += ray_section(cfg, data_path, rows, default_epochs(workflow_dir))
        elif name == "workflow":
            try:
                rows += workflow_rows(workflow_dir)
            except WorkflowRunError as err:  # the target still gets its row, unmet
                log.warning("no workflow run measured: %s", err)
                rows.append(unmeasured_run())
        else:
            raise ValueError(f"bench section {name!r} unknown; expected some of {SECTIONS}")
    torch.set_num_threads(cfg.threads)
    return with_targets(rows)


def markdown(rows: list[dict], cfg: BenchConfig, device: str) -> str:
    df = pd.DataFrame(rows, columns=SCHEMA.names)
    df["value"] = df["value"].map(lambda v: f"{v:.4g}")
    df.insert(
        df.columns.get_loc("rep_min"),
        "repetitions",
        [_range(a, b) for a, b in zip(df["rep_min"], df["rep_max"], strict=True)],
    )
    df.insert(
        df.columns.get_loc("rep_min"),
        "interval (95%)",
        [_range(a, b) for a, b in zip(df["ci_low"], df["ci_high"], strict=True)],
    )
    df = df.drop(columns=["rep_min", "rep_max", "ci_low", "ci_high"])
    df["floor"] = df["floor"].map(lambda v: "" if v is None or pd.isna(v) else f"{v:.3g}")
    df["batch_size"] = df["batch_size"].map(lambda v: "" if v is None or pd.isna(v) else str(int(v)))
    df["ok"] = df["ok"].map({True: "yes", False: "**no**"}).fillna("")
    df["verdict"] = df["verdict"].map(lambda v: f"**{v}**" if v == "missed" else v or "")
    head = (
        f"Machine: {machine()}. Device {device}, {cfg.threads} torch thread(s), "
        f"median of {cfg.reps} repetitions after {cfg.warmup} warm-up.\n\n"
    )
    return head + df.fillna("").to_markdown(index=False) + "\n"


def _range(low: float | None, high: float | None) -> str:
    """A ratio's per-repetition range for the tables, e.g. ``0.962–1.04``; empty for other rows."""
    return "" if low is None or pd.isna(low) else f"{low:.3g}–{high:.3g}"


def write_outputs(rows: list[dict], cfg: BenchConfig, out_dir: Path, device: str) -> None:
    """``bench.parquet`` and ``bench.md`` (every row), ``summary.csv`` and ``summary.md`` (the rows with a
    target, the latter for docs/performance.md) under ``out_dir``."""
    import pyarrow.parquet as pq

    meta = provenance("n/a", "bench", {}, {"machine": machine(), "device": device, "config": cfg.__dict__})
    table = pa.Table.from_pylist(
        rows, schema=SCHEMA.with_metadata({"advbench": json.dumps(meta, default=str)})
    )
    with atomic_path(out_dir / "bench.parquet") as tmp:
        pq.write_table(table, tmp)
    with atomic_path(out_dir / "bench.md") as tmp:
        tmp.write_text(markdown(rows, cfg, device))
    with atomic_path(out_dir / "summary.md") as tmp:
        tmp.write_text(markdown([r for r in rows if r["target"] is not None], cfg, device))
    summary = pd.DataFrame([summary_row(r) for r in rows if r["target"] is not None])
    with atomic_path(out_dir / "summary.csv") as tmp:
        summary.reindex(columns=["metric", "value", "target", "ok", "verdict"]).to_csv(tmp, index=False)


def summary_row(row: dict) -> dict:
    """``fgsm/speedup_vs_art/maxout240/b128``: section, metric and the keys that make the row unique."""
    parts = [row["section"], row["metric"], row["model"], row["batch_size"] and f"b{row['batch_size']}"]
    return {
        "metric": "/".join(str(p) for p in parts if p),
        **{k: row[k] for k in ("value", "target", "ok", "verdict")},
    }
