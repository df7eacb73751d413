"""Validation: the schema (which fills defaults), then what a schema cannot say: references between
sections, datasets, sizes; every error names its key."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path
from typing import Any

from advbench.config.runs import run_attack, run_dataset, run_id, run_model_entry
from advbench.config.schema import SCHEMA_PATH, load_schema
from advbench.config.specs import Arch, ConfigError, regime_spec
from advbench.data.registry import DATASETS, dataset_info


def check_experiment(config: dict[str, Any]) -> None:
    """Check references between config sections; raise :class:`ConfigError` naming the key."""
    _check_strict_types(config)
    _check_data_dir(config.get("data", {}).get("dir"))
    _check_datasets(config)
    _check_models(config)
    runs = _check_runs(config)
    _check_external(config)
    single = sorted(r for r, e in runs.items() if e.get("members", 1) == 1)
    for i, pair in enumerate(config.get("transfer", {}).get("pairs", [])):
        for end in ("source", "target"):
            _check_ref(pair[end], single, f"transfer.pairs[{i}].{end}")
        if pair["source"] == pair["target"]:
            raise ConfigError(f"transfer.pairs[{i}]: source and target are both {pair['source']!r}")
        _check_same_dataset(config, [pair["source"], pair["target"]], f"transfer.pairs[{i}]")
    _check_matrix(config, single)
    _check_report(config, single)
    _check_evaluations(config, runs, single)
    for name in config.get("ray", {}).get("cpu_models", []):
        if name not in config["models"]:
            known = sorted(config["models"])
            raise ConfigError(f"ray.cpu_models: {name!r} is not a model; expected one of {known}")


def _check_matrix(config: dict[str, Any], single: list[str]) -> None:
    """``transfer.matrix`` names trained single-model runs of one dataset whose models see the same
    classes: each one's examples are scored by every other."""
    matrix = config.get("transfer", {}).get("matrix", [])
    for i, run in enumerate(matrix):
        _check_ref(run, single, f"transfer.matrix[{i}]")
    _check_same_dataset(config, matrix, "transfer.matrix")
    classes = {run: run_model_entry(config, run).get("classes") for run in matrix}
    if len({str(c) for c in classes.values()}) > 1:
        raise ConfigError(
            f"transfer.matrix: its runs must classify the same classes; found {classes} (null = all)"
        )


def _check_report(config: dict[str, Any], single: list[str]) -> None:
    """The image figures show trained runs of any dataset (one figure per dataset), of known datasets."""
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
    _first_error(_strict_validator(load_schema()), config, "")


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


def _check_same_dataset(config: dict[str, Any], runs: list[str], key: str) -> None:
    datasets = {run: run_dataset(config, run) for run in runs}
    if len(set(datasets.values())) > 1:
        raise ConfigError(f"{key}: runs of different datasets cannot share examples: {datasets}")


def _check_ref(run: str, allowed: list[str], key: str) -> None:
    if run not in allowed:
        raise ConfigError(f"{key}: {run!r} is not a trained run; expected one of {allowed}")


def _check_datasets(config: dict[str, Any]) -> None:
    """Every dataset named is in the registry (one entry there adds a dataset; the schema has no list)."""
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
    n_subset = config.get("data", {}).get("n_train")
    trained = {run["model"] for run in config["runs"]}
    for name, entry in config["models"].items():
        if entry.get("arch") == "logistic" and len(entry.get("classes") or []) != 2:
            raise ConfigError(f"models.{name}.classes: arch 'logistic' needs exactly two classes")
        if name not in trained:
            continue
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


EXTERNAL_KEYS = ("factory", "weights", "torchscript", "input_shape")


def _check_external(config: dict[str, Any]) -> None:
    """A model of one's own (``arch: external``): one source of its module, files that exist (made
    absolute, since a task on another node of a cluster does not run in the workflow's folder), and runs
    under a regime of kind ``none``, the only models that may be."""
    for name, entry in config["models"].items():
        if entry.get("arch") != "external":
            extra = [k for k in EXTERNAL_KEYS if entry.get(k) is not None]
            if extra:
                raise ConfigError(f"models.{name}.{extra[0]}: only for arch 'external'")
            continue
        given = [k for k in ("factory", "torchscript") if entry.get(k)]
        if len(given) != 1:
            which = "both" if given else "neither"
            raise ConfigError(
                f"models.{name}: arch 'external' needs one of factory or torchscript, not {which}"
            )
        if entry.get("weights") and not entry.get("factory"):
            raise ConfigError(
                f"models.{name}.weights: goes with factory (a TorchScript file holds its weights)"
            )
        for key in ("weights", "torchscript"):
            if entry.get(key):
                entry[key] = _existing_file(entry[key], f"models.{name}.{key}")
        if entry.get("factory"):
            entry["factory"] = _factory(entry["factory"], f"models.{name}.factory")
    for i, run in enumerate(config["runs"]):
        external = config["models"][run["model"]]["arch"] == "external"
        untrained = config["regimes"][run["regime"]]["kind"] == "none"
        if external and run.get("members", 1) > 1:
            raise ConfigError(f"runs[{i}].members: an external model is one model, not an ensemble")
        if external != untrained:
            need = "a regime of kind 'none' (e.g. pretrained)" if external else "an arch 'external' model"
            raise ConfigError(f"runs[{i}]: {run['model']}-{run['regime']} needs {need}")


def _existing_file(path: str, key: str) -> str:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"{key}: no file {path!r} (from {Path.cwd()})")
    return str(resolved)


def _factory(factory: str, key: str) -> str:
    """``module:function`` with a module on the Python path, or ``file.py:function`` made absolute."""
    module, _, function = factory.rpartition(":")
    if module.endswith(".py"):
        return f"{_existing_file(module, key)}:{function}"
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ConfigError(f"{key}: no module {module!r} on the Python path (or give a path to a .py file)")
    return factory


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
        _check_worst_case(config, run, i)
        _check_perturb(config, run, i)
        _check_mp_dbm(config, run, i)
    for i, run in enumerate(config["runs"]):
        _check_static(config, run, i, seen)
    return seen


def _check_mp_dbm(config: dict[str, Any], run: dict[str, Any], i: int) -> None:
    """The MP-DBM trains by its own objective (multi-prediction), which has no adversarial form here."""
    if config["models"][run["model"]]["arch"] != "mp_dbm":
        return
    kind = config["regimes"][run["regime"]]["kind"]
    if kind != "clean":
        raise ConfigError(
            f"runs[{i}]: {run['model']}-{run['regime']}: an mp_dbm trains by the multi-prediction "
            f"objective, under a regime of kind 'clean' only (regime {run['regime']!r} has kind {kind!r})"
        )


def _check_static(config: dict[str, Any], run: dict[str, Any], i: int, runs: dict[str, dict]) -> None:
    """A static regime's fixed examples come from a trained run of the same model under ``source_regime``:
    a single-model run of the config whose regime is not static itself."""
    name, regime = run["regime"], config["regimes"][run["regime"]]
    if regime["kind"] != "static":
        return
    source = run_id(run["model"], regime["source_regime"])
    if source not in runs or runs[source].get("members", 1) > 1:
        raise ConfigError(
            f"runs[{i}]: regime {name!r} (kind static) makes its fixed examples on {source!r}; expected that "
            f"run in runs (source_regime {regime['source_regime']!r} of model {run['model']!r}, no members)"
        )
    if run.get("members", 1) > 1:
        raise ConfigError(
            f"runs[{i}].members: a static run has one source model per seed; expected no members"
        )
    if config["regimes"][regime["source_regime"]]["kind"] == "static":
        raise ConfigError(
            f"regimes.{name}.source_regime: {regime['source_regime']!r} is static itself; expected a regime "
            "that trains without fixed examples"
        )


def _check_perturb(config: dict[str, Any], run: dict[str, Any], i: int) -> None:
    """A hidden layer to perturb (``perturb: hiddenK``) needs FGSM training and a maxout MLP that has it."""
    name, regime = run["regime"], config["regimes"][run["regime"]]
    if regime["perturb"] == "input":
        return
    if regime["kind"] != "fgsm" or regime["clip"]:
        raise ConfigError(
            f"regimes.{name}.perturb: {regime['perturb']!r} needs kind fgsm and clip: false "
            "(hidden activations have no [0, 1] box)"
        )
    model = config["models"][run["model"]]
    layer = regime_spec(name, regime).hidden_layer
    if model["arch"] != Arch.MAXOUT or model["hidden_layers"] < layer:
        raise ConfigError(
            f"runs[{i}]: regime {name!r} perturbs hidden layer {layer}; model {run['model']!r} "
            f"(arch {model['arch']!r}) is not a maxout MLP with {layer} hidden layers"
        )


LINEAR_ARCHS = (Arch.SOFTMAX, Arch.LOGISTIC)


def _check_worst_case(config: dict[str, Any], run: dict[str, Any], i: int) -> None:
    """The closed-form objective (``worst_case``) exists only for a model linear in its input."""
    regime = config["regimes"][run["regime"]]
    if regime["kind"] != "worst_case":
        return
    if regime["clip"]:
        raise ConfigError(
            f"regimes.{run['regime']}.clip: the closed-form objective has no clipped form; set clip: false"
        )
    arch = config["models"][run["model"]]["arch"]
    if arch not in LINEAR_ARCHS:
        raise ConfigError(
            f"runs[{i}]: regime {run['regime']!r} (kind worst_case) needs a linear model "
            f"(arch {' or '.join(LINEAR_ARCHS)}); model {run['model']!r} has arch {str(arch)!r}"
        )


def _check_clipping(config: dict[str, Any], run: str, i: int) -> None:
    """Clipping to [0, 1] only means something where inputs are pixels (not CIFAR-10's whitened space)."""
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
    schema = load_schema()
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
    rotation = (config.get("rotation") or {}).get("runs", [])
    for i, run in enumerate(rotation):
        _check_ref(run, single, f"rotation.runs[{i}]")
        dataset = run_dataset(config, run)
        if not dataset_info(dataset).pixel_space:
            raise ConfigError(
                f"rotation.runs[{i}]: {run!r} sees {dataset} in a whitened space, not as images to rotate"
            )
    if rotation:
        _check_same_dataset(config, rotation, "rotation")
    for i, run in enumerate((config.get("saliency") or {}).get("runs", [])):
        _check_ref(run, single, f"saliency.runs[{i}]")
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
