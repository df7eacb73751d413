"""Malformed configs, data files and checkpoints fed to a finished workflow: each must be refused with a
message naming the key or file, run nothing it carries, and change no result.

Config cases run the workflow's command as a dry run with the bad file merged last (validation happens
when the workflow is parsed, before any job; a dry run cannot overwrite results should a case slip
through). Data, checkpoint and training cases run the ``advbench`` command a rule would run.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from advbench.config.loading import load_config
from advbench.config.specs import model_spec, regime_spec, spec_to_json
from advbench.config.validation import validate_config
from advbench.plan import Plan, path
from advbench.reliability.chaos import Summary, Workflow, differences, result_files, tool_env

MARKER = "pwned"  # a payload that runs would create this file in the scratch folder


@dataclass(frozen=True)
class Case:
    """One bad input: the command that meets it, and what its error must say."""

    name: str
    argv: list[str]
    expect: str  # a substring of the error
    env: dict[str, str] = field(default_factory=dict)


CONFIGS: dict[str, tuple[dict, str]] = {
    "unknown model": ({"runs": [{"model": "resnet", "regime": "clean"}]}, "runs[0].model: unknown model"),
    "unknown regime": ({"runs": [{"model": "maxout", "regime": "noise"}]}, "runs[0].regime: unknown regime"),
    "unknown dataset": ({"dataset": "imagenet"}, "'imagenet' is not one of"),
    "negative eps": ({"attack": {"eps": [0.1, -0.2]}}, "-0.2 is less than the minimum of 0"),
    "non-numeric eps": ({"attack": {"eps": ["big"]}}, "'big' is not of type 'number'"),
    "NaN eps": ({"attack": {"eps": [float("nan")]}}, "attack.eps[0]: nan is not of type 'number'"),
    "alpha > 1": ({"regimes": {"adversarial": {"alpha": 1.5}}}, "1.5 is greater than the maximum of 1"),
    "alpha NaN": ({"regimes": {"adversarial": {"alpha": float("nan")}}}, "regimes.adversarial.alpha: nan"),
    "empty seeds": ({"seeds": []}, "On instance['seeds']"),
    "duplicate seeds": ({"seeds": [1, 1]}, "has non-unique elements"),
    "unknown key": ({"epochs": 3}, "'epochs' was unexpected"),
    "float epochs": (
        {"models": {"softmax": {"train": {"max_epochs": 2.0}}}},
        "models.softmax.train.max_epochs: 2.0 is not of type 'integer'",
    ),
    "path in a name": ({"models": {"../evil": {"arch": "softmax"}}}, "'../evil' does not match"),
    "shell in a name": ({"runs": [{"model": "m;touch pwned", "regime": "clean"}]}, "does not match"),
    "shell in data.dir": (
        {"data": {"dir": f"$(touch {MARKER})"}},
        "data.dir: '$(touch pwned)' is not a plain",
    ),
}


def config_cases(workflow: Workflow, scratch: Path) -> list[Case]:
    """Each bad config merged last over the workflow's own, as a dry run of its command."""
    cases = []
    for i, (name, (bad, expect)) in enumerate(CONFIGS.items()):
        path = scratch / f"bad-config-{i}.yaml"
        path.write_text(yaml.safe_dump(bad))
        merged = Workflow(workflow.workdir, (*workflow.configfiles, str(path)), workflow.cores)
        cases.append(Case(name, [*merged.command(), "-n"], expect))
    return cases


def _mnist_copy(source: Path, dest: Path, damage: Callable[[Path], None]) -> Path:
    shutil.copytree(source, dest / "mnist", dirs_exist_ok=True)
    for f in (dest / "mnist").iterdir():
        f.chmod(0o644)
    damage(dest / "mnist" / "t10k-labels-idx1-ubyte.gz")
    return dest


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:2000])


def _wrong_magic(path: Path) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[3] = 4  # 2049 -> 2052
    path.unlink()
    path.with_suffix("").write_bytes(bytes(raw))


def _one_byte_changed(path: Path) -> None:
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    path.write_bytes(gzip.compress(bytes(raw)))


def data_cases(mnist: Path, scratch: Path) -> list[Case]:
    """``advbench prepare`` on a missing directory and on damaged copies of MNIST."""
    out = str(scratch / "prepared.npz")
    cases = [
        Case(
            "missing ADVBENCH_DATA",
            ["advbench", "prepare", "--out", out],
            "MNIST directory not found",
            {"ADVBENCH_DATA": str(scratch / "nowhere")},
        )
    ]
    for name, damage, expect in (
        ("truncated IDX", _truncate, "t10k-labels-idx1-ubyte.gz: cannot decompress"),
        ("wrong IDX magic", _wrong_magic, "expected 27ae3e4e09519cfbb04c329615203637"),
        ("wrong hash", _one_byte_changed, "expected 27ae3e4e09519cfbb04c329615203637"),
    ):
        root = _mnist_copy(mnist, scratch / name.replace(" ", "-"), damage)
        cases.append(
            Case(
                name,
                ["advbench", "prepare", "--out", out, "--source", "local"],
                expect,
                {"ADVBENCH_DATA": str(root)},
            )
        )
    return cases


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _bad_checkpoints(scratch: Path, real: Path) -> dict[str, tuple[Path, str]]:
    import torch

    payload = {"net.0.weight": _Payload(scratch / MARKER)}
    (pickled := scratch / "pickle.safetensors").write_bytes(pickle.dumps(payload))
    torch.save(payload, zipped := scratch / "torchsave.safetensors")
    (cut := scratch / "truncated.safetensors").write_bytes(real.read_bytes()[:200])
    return {
        "pickle payload": (pickled, "pickle.safetensors: not a readable safetensors checkpoint"),
        "torch.save payload": (zipped, "torchsave.safetensors: not a readable safetensors checkpoint"),
        "truncated checkpoint": (cut, "truncated.safetensors: not a readable safetensors checkpoint"),
    }


def checkpoint_cases(workdir: Path, config: dict, scratch: Path) -> list[Case]:
    """``advbench attack`` of maxout-clean given pickles, a truncated file and a softmax checkpoint."""
    plan = Plan(config)
    checkpoint = {
        arch: workdir / plan.checkpoints("mnist", arch, "clean")[0] for arch in ("maxout", "softmax")
    }
    job = plan.attack_job_json("mnist", config["attack"])
    spec, regime = plan.run_model_json("maxout-clean"), plan.regime_json("clean")
    bad = _bad_checkpoints(scratch, checkpoint["maxout"])
    bad["other architecture"] = (checkpoint["softmax"], "does not fit model")
    argv = ["advbench", "attack", "--data", str(workdir / plan.data("mnist")), "--job", job]
    argv += [
        "--model",
        spec,
        "--regime",
        regime,
        "--seeds",
        "0",
        "--no-ray",
        "--out",
        str(scratch / "x.parquet"),
    ]
    return [Case(name, [*argv, "--checkpoints", str(path)], expect) for name, (path, expect) in bad.items()]


def training_cases(workdir: Path, config: dict, scratch: Path) -> list[Case]:
    """A learning rate that makes the weights overflow: the task must fail naming model and epoch."""
    entry = {**config["models"]["softmax"], "train": {**config["models"]["softmax"]["train"], "lr": 1e38}}
    argv = ["advbench", "train", "--data", str(workdir / path("data", dataset="mnist")), "--no-ray"]
    argv += [
        "--job",
        json.dumps({"dataset": "mnist", "subset": {"n_train": 200, "n_val": 100, "n_test": 100}}),
    ]
    argv += ["--model", spec_to_json(model_spec("softmax", entry)), "--seeds", "0"]
    argv += ["--regime", spec_to_json(regime_spec("clean", config["regimes"]["clean"]))]
    argv += ["--checkpoints", str(scratch / "nan.safetensors"), "--curves", str(scratch / "nan.parquet")]
    return [Case("NaN loss", argv, "model 'softmax' regime 'clean': non-finite loss in epoch 1")]


def results_cases(workdir: Path, scratch: Path) -> list[Case]:
    """A truncated results file given to the report."""
    real = workdir / path("attack", dataset="mnist", model="maxout", regime="clean")
    (cut := scratch / "cut.parquet").write_bytes(real.read_bytes()[:300])
    argv = ["advbench", "report", "--results", str(cut), "--out-dir", str(scratch / "tables")]
    return [Case("truncated results file", argv, "cut.parquet: not a readable Parquet results file")]


def run_case(case: Case, cwd: Path, scratch: Path) -> tuple[bool, str]:
    """Whether ``case`` was refused as it should be, and the output line saying why (or the tail)."""
    env = {**tool_env(), **case.env}
    proc = subprocess.run(case.argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    said = next((line.strip() for line in out.splitlines() if case.expect in line), out[-300:].strip())
    ran_payload = (scratch / MARKER).exists() or (cwd / MARKER).exists()
    return proc.returncode != 0 and case.expect in out and not ran_payload, said


def all_cases(workflow: Workflow, mnist: Path, scratch: Path) -> list[Case]:
    config = validate_config(
        load_config(*(workflow.workdir / f for f in ("config.yaml", *workflow.configfiles)))
    )
    workdir = workflow.workdir
    return (
        config_cases(workflow, scratch)
        + data_cases(mnist, scratch)
        + checkpoint_cases(workdir, config, scratch)
        + training_cases(workdir, config, scratch)
        + results_cases(workdir, scratch)
    )


def check_bad_inputs(
    workflow: Workflow,
    reference: Path,
    mnist: Path,
    scratch: Path,
    summary: Summary,
    names: set[str] | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Run every case (or those ``names``) against the finished ``workflow``; its results must not change."""
    scratch.mkdir(parents=True, exist_ok=True)
    before = _mtimes(workflow.workdir)
    for case in all_cases(workflow, mnist, scratch):
        if names is None or case.name in names:
            rejected, said = run_case(case, workflow.workdir, scratch)
            summary.bad_inputs.append((case.name, rejected, said))
            say(f"bad input {case.name!r}: {'rejected' if rejected else 'NOT REJECTED'}: {said}")
    if _mtimes(workflow.workdir) != before:
        summary.problems.append("a bad input rewrote a finished result")
    summary.problems += differences(reference, workflow.workdir)


def _mtimes(workdir: Path) -> dict[Path, int]:
    return {p: (workdir / p).stat().st_mtime_ns for p in result_files(workdir)}
