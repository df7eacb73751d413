"""``advbench evaluate``: the paper's battery on a model of one's own. It writes a config overlay that adds
the model (``arch: external``, regime ``pretrained``) to the runs of ``presets/evaluate.yaml``, to its
transfer matrix (with the preset's models of the same dataset) and to its rubbish runs, checks the model on
a batch of inputs of its dataset's shape, and runs the workflow (docs/evaluate.md)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from advbench.config.loading import load_config
from advbench.config.runs import run_dataset, run_id
from advbench.config.specs import ConfigError, model_spec
from advbench.config.validation import validate_config
from advbench.data.registry import dataset_info
from advbench.models.architectures import build, n_outputs
from advbench.models.external import check_outputs

PRESET = Path("presets/evaluate.yaml")
PROFILE = "workflow/profiles/default"
REGIME = "pretrained"
OVERLAY_DIR = Path("results/evaluate")


@dataclass(frozen=True)
class Evaluation:
    """What the user gives: a name, the module (factory and weights, or TorchScript), its input shape and
    dataset; paths relative to the current folder."""

    name: str
    factory: str | None = None
    weights: Path | None = None
    torchscript: Path | None = None
    input_shape: tuple[int, ...] | None = None
    dataset: str = "mnist"

    def model_entry(self) -> dict[str, Any]:
        """The config's model entry, every path absolute (the workflow runs in its own folder)."""
        factory = self.factory
        if factory and factory.rpartition(":")[0].endswith(".py"):
            where, _, function = factory.rpartition(":")
            factory = f"{Path(where).resolve()}:{function}"
        entry: dict[str, Any] = {"arch": "external", "dataset": self.dataset, "factory": factory}
        entry["weights"] = str(self.weights.resolve()) if self.weights else None
        entry["torchscript"] = str(self.torchscript.resolve()) if self.torchscript else None
        entry["input_shape"] = list(self.input_shape) if self.input_shape else None
        return entry

    @property
    def run(self) -> str:
        return run_id(self.name, REGIME)


def overlay(evaluation: Evaluation, base: dict[str, Any]) -> dict[str, Any]:
    """The config overlay of ``evaluation`` over ``base`` (config.yaml, the preset and the user's overlays,
    merged and validated): the model, its run, and the lists it joins, whole (a later config file's list
    replaces the earlier one)."""
    run = evaluation.run
    matrix = [r for r in base["transfer"]["matrix"] if run_dataset(base, r) == evaluation.dataset]
    rubbish = base["rubbish"]
    out: dict[str, Any] = {
        "models": {evaluation.name: evaluation.model_entry()},
        "runs": [*base["runs"], {"model": evaluation.name, "regime": REGIME}],
        "transfer": {"matrix": [*matrix, run] if matrix else []},
    }
    if rubbish:
        out["rubbish"] = {"runs": [*rubbish["runs"], run]}
    return out


def prepare(evaluation: Evaluation, workdir: Path, configfiles: list[Path]) -> list[Path]:
    """Write the overlay under ``workdir`` and check the whole config and the model; return the config
    files of the run, in merge order."""
    if not (workdir / "Snakefile").is_file():
        raise ConfigError(
            f"{workdir}: no Snakefile; run advbench evaluate in the advbench checkout (--workdir)"
        )
    files = [workdir / "config.yaml", workdir / PRESET, *configfiles]
    base = validate_config(load_config(*files))
    if evaluation.name in base["models"]:
        raise ConfigError(f"--name {evaluation.name!r}: a model of that name is in the config already")
    path = workdir / OVERLAY_DIR / f"{evaluation.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(overlay(evaluation, base), sort_keys=False))
    config = validate_config(load_config(*files, path))
    check_model(config, evaluation.name)
    return [*files[1:], path]


def check_model(config: dict[str, Any], name: str) -> None:
    """Build the model and run it on a batch of random inputs of its dataset's size, before any job."""
    spec = model_spec(name, config["models"][name])
    x = torch.rand(16, dataset_info(spec.dataset).n_inputs)
    check_outputs(build(spec).eval(), x, n_outputs(spec), name)


def command(configfiles: list[Path], cores: str, extra: list[str]) -> list[str]:
    """The Snakemake command line (config files absolute: it runs in the workflow's folder)."""
    files = [str(p.resolve()) for p in configfiles]
    return ["snakemake", "--profile", PROFILE, "--cores", cores, "--configfile", *files, *extra]


def run(evaluation: Evaluation, workdir: Path, configfiles: list[Path], cores: str, extra: list[str]) -> int:
    """Prepare, then run the workflow in ``workdir``; Snakemake's exit status."""
    files = prepare(evaluation, workdir, configfiles)
    return subprocess.run(command(files, cores, extra), cwd=workdir, check=False).returncode
