"""Typed experiment specs and the cross-reference checks the JSON Schema cannot express.

The workflow validates ``config.yaml`` against ``workflow/schemas/config.schema.yaml`` (which also fills
defaults); :func:`check_experiment` then checks that runs and transfer pairs name things that exist.
Job specs travel from the rules to the CLI as JSON and come back here as dataclasses.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONFIG_HASH_ENV, RAY_ENV = "ADVBENCH_CONFIG_HASH", "ADVBENCH_RAY"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the key."""


@dataclass(frozen=True)
class TrainSpec:
    """SGD schedule of the paper's pylearn2 maxout recipe (FIGURES.md); every value is a config knob."""

    batch_size: int = 100
    lr: float = 0.1
    lr_decay: float = 1.000004
    lr_min: float = 1e-6
    momentum_start: float = 0.5
    momentum_end: float = 0.7
    momentum_start_epoch: int = 1
    momentum_saturate_epoch: int = 250
    max_epochs: int = 10
    patience: int = 100
    eval_batch_size: int = 2000
    select_on: str = "clean"
    monitor_eps: float = 0.25
    monitor_train: int | None = 10_000
    monitor_val: int | None = None
    retrain: bool = False
    retrain_lr: float = 0.0615
    retrain_momentum: float = 0.694
    retrain_max_epochs: int = 100
    save_every: int = 1
    n_train: int | None = None
    lr_linear_saturate_epoch: int | None = None
    lr_linear_factor: float = 0.01


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one model entry of ``config['models']``."""

    name: str
    arch: str
    dataset: str = "mnist"
    units: int = 240
    pieces: int = 5
    hidden_layers: int = 2
    init_range: float = 0.005
    max_col_norm: float | None = 1.9365
    input_keep: float = 0.8
    input_scale: float = 1.0
    hidden_keep: float = 0.5
    hidden_scale: float = 2.0
    output: str = "softmax"
    classes: tuple[int, ...] | None = None
    rbf_mu_init: float = 0.0
    rbf_beta_init: float = 0.01
    channels: tuple[int, ...] = (96, 192, 192)
    kernels: tuple[int, ...] = (8, 8, 5)
    pads: tuple[int, ...] = (4, 3, 3)
    pools: tuple[int, ...] = (4, 4, 2)
    pool_strides: tuple[int, ...] = (2, 2, 2)
    conv_pieces: int = 2
    max_kernel_norm: tuple[float, ...] | None = None
    conv_lr_scale: float = 1.0
    resize: int = 64
    train: TrainSpec = field(default_factory=TrainSpec)


@dataclass(frozen=True)
class RegimeSpec:
    """Training objective: ``clean``, the paper's FGSM objective ``alpha*J(x) + (1-alpha)*J(x_adv)``, or its
    noise controls (``noise_sign``, ``noise_uniform``); optionally plus L1 weight decay on the first layer."""

    name: str
    kind: str
    alpha: float = 0.5
    eps: float = 0.25
    clip: bool = False
    grad_in_train_mode: bool = True
    l1_first_layer: float = 0.0


def model_spec(name: str, entry: dict[str, Any]) -> ModelSpec:
    """Build a :class:`ModelSpec` from a (schema-validated) config entry."""
    fields = {k: v for k, v in entry.items() if k != "train"}
    for key in ("classes", "channels", "kernels", "pads", "pools", "pool_strides", "max_kernel_norm"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return ModelSpec(name=name, train=TrainSpec(**entry.get("train", {})), **fields)


def regime_spec(name: str, entry: dict[str, Any]) -> RegimeSpec:
    """Build a :class:`RegimeSpec` from a (schema-validated) config entry."""
    return RegimeSpec(name=name, **entry)


def spec_to_json(spec: ModelSpec | RegimeSpec) -> str:
    """Serialize a spec for the command line of a rule."""
    return json.dumps(asdict(spec), sort_keys=True)


def model_spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """Inverse of ``asdict`` on a :class:`ModelSpec` (the name travels inside)."""
    data = dict(data)
    return model_spec(data.pop("name"), data)


def regime_spec_from_dict(data: dict[str, Any]) -> RegimeSpec:
    data = dict(data)
    return regime_spec(data.pop("name"), data)


def model_spec_from_json(text: str) -> ModelSpec:
    return model_spec_from_dict(json.loads(text))


def regime_spec_from_json(text: str) -> RegimeSpec:
    return regime_spec_from_dict(json.loads(text))


def run_id(model: str, regime: str) -> str:
    """The name of a trained (model, regime) pair, as used in transfer pairs and results."""
    return f"{model}-{regime}"


def split_run_id(run: str) -> tuple[str, str]:
    model, _, regime = run.partition("-")
    return model, regime


def run_entries(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config's runs by run id."""
    return {run_id(r["model"], r["regime"]): r for r in config["runs"]}


def run_model_entry(config: dict[str, Any], run: str) -> dict[str, Any]:
    """The model entry of ``run`` with the run's own ``train`` overrides merged in."""
    entry = run_entries(config)[run]
    model = copy.deepcopy(config["models"][entry["model"]])
    model["train"] = {**model.get("train", {}), **entry.get("train", {})}
    model.setdefault("dataset", config.get("dataset", "mnist"))
    return model


def run_dataset(config: dict[str, Any], run: str) -> str:
    """The dataset a run trains and is evaluated on: its model's, else the top-level ``dataset``."""
    return run_model_entry(config, run)["dataset"]


def run_model_spec(config: dict[str, Any], run: str) -> ModelSpec:
    return model_spec(run_entries(config)[run]["model"], run_model_entry(config, run))


def run_attack(config: dict[str, Any], run: str) -> dict[str, Any]:
    """The ``attack`` section with the run's own ``attack`` overrides merged in."""
    return {**config["attack"], **run_entries(config)[run].get("attack", {})}


# The paper's maxout schedule (pylearn2 mnist_pi.yaml, FIGURES.md): early stopping after 100 epochs
# without improvement on all 50k training examples from U(+-.005), then stage 2 on all 60k until the
# objectives meet. Neither stage has a length in the paper; presets/paper.yaml caps them at
# PAPER_MAX_EPOCHS and PAPER_RETRAIN_EPOCHS, which early stopping and stage 2's stopping rule reach first.
PAPER_PATIENCE, PAPER_MAX_EPOCHS, PAPER_RETRAIN_EPOCHS, PAPER_INIT_RANGE = 100, 1000, 100, 0.005


def budget_note(spec: ModelSpec) -> str | None:
    """How a maxout run's training differs from the paper's schedule (None: it follows it), for the notes
    of the rows it reproduces; other architectures have no schedule in the paper to compare with."""
    if spec.arch != "maxout":
        return None
    t, cuts = spec.train, []
    if t.max_epochs < PAPER_MAX_EPOCHS or t.patience < PAPER_PATIENCE:
        cuts.append(f"at most {_epochs(t.max_epochs)} (paper: until {PAPER_PATIENCE} without improvement)")
    if t.n_train is not None:
        cuts.append(f"on the first {t.n_train} training examples")
    if spec.init_range != PAPER_INIT_RANGE:
        cuts.append(f"init U(+-{spec.init_range:g})")
    if not t.retrain:
        cuts.append("no stage 2")
    elif t.retrain_max_epochs < PAPER_RETRAIN_EPOCHS:
        cuts.append(f"stage 2 at most {_epochs(t.retrain_max_epochs)}")
    if not cuts:
        return None
    return "trained " + ", ".join(cuts) + ": the paper's schedule needs presets/paper.yaml"


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def budget_notes(config: dict[str, Any]) -> dict[str, str]:
    """:func:`budget_note` of every run that has one, by run id."""
    notes = {run: budget_note(run_model_spec(config, run)) for run in run_entries(config)}
    return {run: text for run, text in notes.items() if text}


def check_experiment(config: dict[str, Any]) -> None:
    """Check references between config sections; raise :class:`ConfigError` naming the key."""
    _check_strict_types(config)
    _check_data_dir(config.get("data", {}).get("dir"))
    _check_datasets(config)
    _check_models(config)
    runs = _check_runs(config)
    single = sorted(r for r, e in runs.items() if e.get("members", 1) == 1)
    for i, pair in enumerate(config.get("transfer", {}).get("pairs", [])):
        for end in ("source", "target"):
            _check_ref(pair[end], single, f"transfer.pairs[{i}].{end}")
        if pair["source"] == pair["target"]:
            raise ConfigError(f"transfer.pairs[{i}]: source and target are both {pair['source']!r}")
        _check_same_dataset(config, [pair["source"], pair["target"]], f"transfer.pairs[{i}]")
    _check_report(config, single)
    _check_evaluations(config, runs, single)
    for name in config.get("ray", {}).get("cpu_models", []):
        if name not in config["models"]:
            known = sorted(config["models"])
            raise ConfigError(f"ray.cpu_models: {name!r} is not a model; expected one of {known}")


def _check_report(config: dict[str, Any], single: list[str]) -> None:
    """The image figures show trained runs of any dataset (one figure per dataset), of known datasets."""
    from advbench.data import DATASETS

    report = config.get("report", {})
    for key in ("weights", "examples"):
        for i, run in enumerate(report.get(key, [])):
            _check_ref(run, single, f"report.{key}[{i}]")
    for i, run in enumerate(report.get("weights", [])):
        arch = run_model_entry(config, run)["arch"]
        if arch in NO_WEIGHT_IMAGES:
            raise ConfigError(
                f"report.weights[{i}]: {run!r} (arch {arch}) has no first layer of weights to draw; "
                "expected a run of a softmax, logistic, maxout or conv model"
            )
    budgets = report.get("budgets")
    if budgets is not None and not Path(budgets).is_file():
        raise ConfigError(
            f"report.budgets: {budgets} does not exist; expected a budgets.csv written by `advbench budgets`"
        )
    for name in report.get("example_eps_by_dataset", {}):
        if name not in DATASETS:
            raise ConfigError(
                f"report.example_eps_by_dataset: unknown dataset {name!r}; expected one of {sorted(DATASETS)}"
            )


def _strict_validator(schema: dict[str, Any]) -> Any:
    """A JSON Schema validator whose numbers are finite (JSON Schema lets NaN pass ``minimum``/``maximum``)
    and whose integers are ints (not ``2.0``, which would reach ``range`` as a float)."""
    import jsonschema

    def is_number(_: Any, value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    def is_integer(_: Any, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine_many({"number": is_number, "integer": is_integer})
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def _first_error(validator: Any, instance: Any, prefix: str) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        where = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in error.absolute_path)
        raise ConfigError(f"{(prefix + where).lstrip('.') or 'config'}: {error.message}")


def _check_strict_types(config: dict[str, Any]) -> None:
    """Reject NaN/inf numbers and floats given for integers, naming the key."""
    _first_error(_strict_validator(_schema()), config, "")


def _check_data_dir(directory: str | None) -> None:
    """``data.dir`` reaches a shell command and a path: a plain path only."""
    if directory is None:
        return
    if not SAFE_PATH.fullmatch(directory) or ".." in Path(directory).parts:
        raise ConfigError(
            f"data.dir: {directory!r} is not a plain path; expected letters, digits and '_' '-' '.' '/' "
            "only, and no '..' component"
        )


SAFE_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
NO_WEIGHT_IMAGES = ("rbf",)  # architectures without a first weight layer (report.weights)


def _schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _check_same_dataset(config: dict[str, Any], runs: list[str], key: str) -> None:
    datasets = {run: run_dataset(config, run) for run in runs}
    if len(set(datasets.values())) > 1:
        raise ConfigError(f"{key}: runs of different datasets cannot share examples: {datasets}")


def _check_ref(run: str, allowed: list[str], key: str) -> None:
    if run not in allowed:
        raise ConfigError(f"{key}: {run!r} is not a trained run; expected one of {allowed}")


def _check_datasets(config: dict[str, Any]) -> None:
    """Every dataset named is in the registry (one entry there adds a dataset; the schema has no list)."""
    from advbench.data import DATASETS

    named = {"dataset": config["dataset"]}
    named |= {f"models.{m}.dataset": e["dataset"] for m, e in config["models"].items() if "dataset" in e}
    for key, name in named.items():
        if name not in DATASETS:
            raise ConfigError(f"{key}: unknown dataset {name!r}; expected one of {sorted(DATASETS)}")


def _check_models(config: dict[str, Any]) -> None:
    """What the schema cannot know: a logistic regression's two classes, and training sets that exist.

    ``train.n_train`` (a model's, or a run's override) above the examples there are would silently train
    on fewer than asked.
    """
    from advbench.data import dataset_info

    n_subset = config.get("data", {}).get("n_train")
    for name, entry in config["models"].items():
        if entry.get("arch") == "logistic" and len(entry.get("classes") or []) != 2:
            raise ConfigError(f"models.{name}.classes: arch 'logistic' needs exactly two classes")
        info = dataset_info(entry.get("dataset", config["dataset"]))
        available = min(info.n_train, n_subset or info.n_train)
        asked = {f"models.{name}.train.n_train": entry.get("train", {}).get("n_train")}
        asked |= {
            f"runs[{i}].train.n_train": run.get("train", {}).get("n_train")
            for i, run in enumerate(config["runs"])
            if run["model"] == name
        }
        for key, n in asked.items():
            if n is not None and n > available:
                raise ConfigError(f"{key}: {n} is more than the {available} training examples of {info.name}")


def _check_runs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    models, regimes = config["models"], config["regimes"]
    seen: dict[str, dict[str, Any]] = {}
    for i, run in enumerate(config["runs"]):
        for key, known in (("model", models), ("regime", regimes)):
            if run[key] not in known:
                raise ConfigError(
                    f"runs[{i}].{key}: unknown {key} {run[key]!r}; expected one of {sorted(known)}"
                )
        rid = run_id(run["model"], run["regime"])
        if rid in seen:
            raise ConfigError(f"runs[{i}]: duplicate run {rid!r}")
        seen[rid] = run
        _check_overrides(config, run, i)
        _check_clipping(config, rid, i)
    return seen


def _check_clipping(config: dict[str, Any], run: str, i: int) -> None:
    """Clipping to [0, 1] only means something where inputs are pixels (not CIFAR-10's whitened space)."""
    from advbench.data import dataset_info

    dataset = run_dataset(config, run)
    if dataset_info(dataset).pixel_space:
        return
    if True in run_attack(config, run)["clip"]:
        raise ConfigError(
            f"runs[{i}].attack.clip: {dataset} inputs are not pixels in [0, 1]; set clip: [false] for {run!r}"
        )
    if config["regimes"][config["runs"][i]["regime"]].get("clip"):
        raise ConfigError(f"runs[{i}].regime: {dataset} inputs are not pixels in [0, 1]; the regime clips")


def _check_overrides(config: dict[str, Any], run: dict[str, Any], i: int) -> None:
    """A run's ``train`` and ``attack`` overrides must be valid values of those sections."""
    schema = _schema()
    checks = (("train", schema["definitions"]["train"]), ("attack", schema["properties"]["attack"]))
    for key, sub in checks:
        if key in run:
            sub = {**sub, "definitions": schema["definitions"]}
            _first_error(_strict_validator(sub), run[key], f"runs[{i}].{key}")


def _check_evaluations(config: dict[str, Any], runs: dict[str, dict], single: list[str]) -> None:
    """The optional experiment sections name trained runs of the right kind."""
    agreement = config.get("agreement")
    if agreement:
        for j, run in enumerate([agreement["source"], *agreement["observers"]]):
            _check_ref(run, single, "agreement.source" if j == 0 else f"agreement.observers[{j - 1}]")
        _check_same_dataset(config, [agreement["source"], *agreement["observers"]], "agreement")
    if config.get("sweep"):
        _check_ref(config["sweep"]["run"], single, "sweep.run")
    for i, run in enumerate((config.get("rubbish") or {}).get("runs", [])):
        _check_ref(run, single, f"rubbish.runs[{i}]")
    grouped = sorted(r for r, e in runs.items() if e.get("members", 1) > 1)
    if len(grouped) > 1:
        raise ConfigError(f"runs: at most one run may have members > 1 (an ensemble); found {grouped}")
    ensemble = config.get("ensemble")
    if ensemble:
        _check_ref(ensemble["run"], grouped, "ensemble.run (a run with members > 1)")


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """Validate against the workflow's schema (filling defaults), then check cross-references."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema_path), set_default=True)
    except WorkflowError as err:
        raise ConfigError(str(err)) from None
    check_experiment(config)
    return config


def load_config(*paths: Path) -> dict[str, Any]:
    """Load YAML files, later ones merged over earlier ones (as Snakemake merges ``--configfile``)."""
    merged: dict[str, Any] = {}
    for path in paths:
        with open(path) as fh:
            _merge(merged, yaml.safe_load(fh) or {})
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def export_to_jobs(config: dict[str, Any]) -> None:
    """Hand the config hash and the Ray settings to the jobs through their environment.

    Unlike rule params, these do not make Snakemake rerun finished jobs when they change.
    """
    os.environ[CONFIG_HASH_ENV] = config_hash(config)
    os.environ[RAY_ENV] = json.dumps(config["ray"], sort_keys=True)


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a config, recorded in every result's provenance."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
