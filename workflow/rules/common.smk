"""Config validation, the experiment matrix and the paths every rule shares."""

import json

from snakemake.utils import validate

from advbench.config import (
    ConfigError,
    check_experiment,
    export_to_jobs,
    model_spec,
    regime_spec,
    run_id,
    spec_to_json,
    split_run_id,
)

validate(config, schema="../schemas/config.schema.yaml")
try:
    check_experiment(config)
except ConfigError as err:
    raise ValueError(f"config error: {err}") from None
export_to_jobs(config)

DATASET = config["dataset"]
SEEDS = config["seeds"]
RUNS = [run_id(r["model"], r["regime"]) for r in config["runs"]]
PAIRS = [(p["source"], p["target"]) for p in config["transfer"]["pairs"]]
SUBSET = {k: config["data"][k] for k in ("n_train", "n_val", "n_test")}


wildcard_constraints:
    dataset="[a-z][a-z0-9]*",
    model="[a-z][a-z0-9_]*",
    regime="[a-z][a-z0-9_]*",
    source="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",
    target="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",
    seed="[0-9]+",


def data_path(dataset):
    return f"resources/data/{dataset}.npz"


def checkpoint_paths(dataset, model, regime):
    return expand(
        "results/models/dataset={dataset}/model={model}/regime={regime}/seed={seed}.safetensors",
        dataset=dataset,
        model=model,
        regime=regime,
        seed=SEEDS,
    )


def run_checkpoints(dataset, run):
    return checkpoint_paths(dataset, *split_run_id(run))


def model_json(model):
    return spec_to_json(model_spec(model, config["models"][model]))


def regime_json(regime):
    return spec_to_json(regime_spec(regime, config["regimes"][regime]))


def train_job_json():
    """What a training job depends on besides its specs (attack settings excluded: no retraining)."""
    return json.dumps({"dataset": DATASET, "subset": SUBSET}, sort_keys=True)


def attack_job_json(eps):
    attack = {**config["attack"], "eps": eps}
    return json.dumps(
        {"dataset": DATASET, "subset": SUBSET, "attack": attack}, sort_keys=True
    )


def attack_outputs():
    return [
        f"results/metrics/attack/dataset={DATASET}/model={m}/regime={r}/fgsm.parquet"
        for m, r in map(split_run_id, RUNS)
    ]


def transfer_outputs():
    return [
        f"results/metrics/transfer/dataset={DATASET}/source={s}/target={t}/fgsm.parquet"
        for s, t in PAIRS
    ]


# A Ray job takes every core the workflow has: each starts its own embedded Ray, and two must never overlap
# (the ``ray=1`` resource of the default profile says the same).
RAY_THREADS = workflow.cores


def curves_outputs():
    return [
        f"results/metrics/curves/dataset={DATASET}/model={m}/regime={r}/curves.parquet"
        for m, r in map(split_run_id, RUNS)
    ]


def figure_runs():
    return list(
        dict.fromkeys(config["report"]["weights"] + config["report"]["examples"])
    )


def figure_checkpoints():
    """The first seed's checkpoint of every run the figures show."""
    return [run_checkpoints(DATASET, run)[0] for run in figure_runs()]


def figure_job_json():
    def entry(run):
        model, regime = split_run_id(run)
        return {
            "run": run,
            "model": json.loads(model_json(model)),
            "regime": json.loads(regime_json(regime)),
            "checkpoint": run_checkpoints(DATASET, run)[0],
        }

    rep = config["report"]
    job = {k: rep[k] for k in ("example_eps", "n_examples", "transfer_eps")}
    job |= {
        "weights": [entry(r) for r in rep["weights"]],
        "examples": [entry(r) for r in rep["examples"]],
    }
    return json.dumps(job, sort_keys=True)


SEED_ARGS = " ".join(map(str, SEEDS))
