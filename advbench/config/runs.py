"""The run matrix: run ids, each run's model entry, dataset, spec and attack, and how its training differs
from the paper's schedule."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from advbench.config.specs import Arch, ModelSpec, model_spec


def run_id(model: str, regime: str) -> str:
    """The name of a trained (model, regime) pair, as used in transfer pairs and results."""
    return f"{model}-{regime}"


def split_run_id(run: str) -> tuple[str, str]:
    model, _, regime = run.partition("-")
    return model, regime


def transfer_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (source, target) transfer pair: ``transfer.pairs`` in their order, then every ordered pair of
    two different runs of ``transfer.matrix`` not among them."""
    transfer = config.get("transfer", {})
    pairs = [(p["source"], p["target"]) for p in transfer.get("pairs", [])]
    matrix = transfer.get("matrix", [])
    pairs += [(s, t) for s in matrix for t in matrix if s != t and (s, t) not in pairs]
    return pairs


# The config's optional experiments: each section is null (off) or that experiment's settings.
EXPERIMENTS = ("agreement", "sweep", "ensemble", "rubbish", "rotation", "saliency")


def runs_alone(
    runs: Sequence[str],
    seeds: Sequence[int],
    train: dict[str, Any],
    pairs: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """A config overlay, merged last, that trains ``runs`` (run ids) alone over ``seeds``: ``train`` merged
    into each of their models' ``train`` sections, transfer between ``pairs`` only, every optional
    experiment off, and the report's examples and weights drawn from these runs. The benchmarks that time
    or budget a few runs (``advbench ab``, ``advbench budgets``) train this."""
    entries = [dict(zip(("model", "regime"), split_run_id(run), strict=True)) for run in runs]
    return {
        "seeds": list(seeds),
        "models": {model: {"train": dict(train)} for model in dict.fromkeys(e["model"] for e in entries)},
        "runs": entries,
        "transfer": {"pairs": [{"source": s, "target": t} for s, t in pairs], "matrix": []},
        **dict.fromkeys(EXPERIMENTS),
        "report": {"examples": list(runs), "weights": list(runs)},
    }


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


# The MP-DBM's recipe (pylearn2 scripts/papers/mpdbm/mpdbm.yaml): 2087 and 3200 hidden units, 14 mean-field
# passes, early stopping after 100 epochs without improvement on all 50k training examples.
MPDBM_UNITS, MPDBM_ITERATIONS = (2087, 3200), 14


def budget_note(spec: ModelSpec) -> str | None:
    """How a maxout or MP-DBM run's training differs from its recipe (None: it follows it), for the notes
    of the rows it reproduces; other architectures have no schedule in the paper to compare with."""
    if spec.arch == Arch.MP_DBM:
        cuts, source = _mp_dbm_cuts(spec) + _schedule_cuts(spec, "recipe"), "the recipe"
    elif spec.arch == Arch.MAXOUT:
        cuts, source = _schedule_cuts(spec, "paper") + _maxout_cuts(spec), "the paper's schedule"
    else:
        return None
    if not cuts:
        return None
    return "trained " + ", ".join(cuts) + f": {source} needs presets/paper.yaml"


def _schedule_cuts(spec: ModelSpec, source: str) -> list[str]:
    """The epochs and the training examples, where they fall short of the paper's."""
    t, cuts = spec.train, []
    if t.max_epochs < PAPER_MAX_EPOCHS or t.patience < PAPER_PATIENCE:
        cuts.append(f"at most {_epochs(t.max_epochs)} ({source}: until {PAPER_PATIENCE} without improvement)")
    if t.n_train is not None:
        cuts.append(f"on the first {t.n_train} training examples")
    return cuts


def _maxout_cuts(spec: ModelSpec) -> list[str]:
    t, cuts = spec.train, []
    if spec.init_range != PAPER_INIT_RANGE:
        cuts.append(f"init U(+-{spec.init_range:g})")
    if not t.retrain:
        cuts.append("no stage 2")
    elif t.retrain_max_epochs < PAPER_RETRAIN_EPOCHS:
        cuts.append(f"stage 2 at most {_epochs(t.retrain_max_epochs)}")
    return cuts


def _mp_dbm_cuts(spec: ModelSpec) -> list[str]:
    cuts = []
    if tuple(spec.dbm_units) != MPDBM_UNITS:
        cuts.append(f"with {' + '.join(map(str, spec.dbm_units))} hidden units (recipe: 2087 + 3200)")
    if spec.dbm_iterations != MPDBM_ITERATIONS:
        cuts.append(f"{spec.dbm_iterations} mean-field passes (recipe: {MPDBM_ITERATIONS})")
    return cuts


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def budget_notes(config: dict[str, Any]) -> dict[str, str]:
    """:func:`budget_note` of every run that has one, by run id."""
    notes = {run: budget_note(run_model_spec(config, run)) for run in run_entries(config)}
    return {run: text for run, text in notes.items() if text}
