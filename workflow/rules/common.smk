"""Config validation, the experiment matrix and the paths every rule shares."""

import json
import os

from snakemake.utils import validate

from advbench.config import (
    ConfigError,
    check_experiment,
    export_to_jobs,
    regime_spec,
    run_attack,
    run_entries,
    run_id,
    run_model_spec,
    spec_to_json,
    split_run_id,
)
from advbench.dispatch import claim_workdir, start_shared_head, stop_shared_head

validate(config, schema="../schemas/config.schema.yaml")
try:
    check_experiment(config)
except ConfigError as err:
    raise ValueError(f"config error: {err}") from None
export_to_jobs(config)

DATASET = config["dataset"]
SEEDS = config["seeds"]
RUN_ENTRIES = run_entries(config)
RUNS = [r for r, e in RUN_ENTRIES.items() if e.get("members", 1) == 1]
MEMBER_RUNS = {
    r: e["members"] for r, e in RUN_ENTRIES.items() if e.get("members", 1) > 1
}
N_MEMBERS = max(
    MEMBER_RUNS.values(), default=1
)  # check_experiment allows one ensemble run
PAIRS = [(p["source"], p["target"]) for p in config["transfer"]["pairs"]]
SUBSET = {k: config["data"][k] for k in ("n_train", "n_val", "n_test")}


wildcard_constraints:
    dataset="[a-z][a-z0-9]*",
    model="[a-z][a-z0-9_]*",
    regime="[a-z][a-z0-9_]*",
    source="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",
    target="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",
    seed="[0-9]+",
    member="[0-9]+",
    run="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",


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


def member_paths(dataset, model, regime):
    """Every seed's ensemble members, seed-major."""
    return [
        f"results/models/dataset={dataset}/model={model}/regime={regime}/seed={s}/member={m}.safetensors"
        for s in SEEDS
        for m in range(N_MEMBERS)
    ]


def run_checkpoints(dataset, run):
    return checkpoint_paths(dataset, *split_run_id(run))


def model_json(model, regime):
    """The model's spec with its run's train overrides."""
    return spec_to_json(run_model_spec(config, run_id(model, regime)))


def regime_json(regime):
    return spec_to_json(regime_spec(regime, config["regimes"][regime]))


def train_job_json():
    """What a training job depends on besides its specs (attack settings excluded: no retraining)."""
    return json.dumps({"dataset": DATASET, "subset": SUBSET}, sort_keys=True)


def attack_job_json(attack):
    return json.dumps(
        {"dataset": DATASET, "subset": SUBSET, "attack": attack}, sort_keys=True
    )


def run_json(run, per_seed):
    model, regime = split_run_id(run)
    return {
        "model": json.loads(model_json(model, regime)),
        "regime": json.loads(regime_json(regime)),
        "checkpoints": per_seed,
    }


def experiment_job_json(name, runs, **settings):
    """The job of an experiment rule: its runs' specs and checkpoints, and its settings."""
    job = {"dataset": DATASET, "subset": SUBSET, "runs": runs, **settings}
    job["batch_size"] = config["attack"]["batch_size"]
    return json.dumps(job, sort_keys=True)


def seed_runs(runs):
    return {r: run_json(r, run_checkpoints(DATASET, r)) for r in runs}


def ensemble_runs():
    run = config["ensemble"]["run"]
    paths = member_paths(DATASET, *split_run_id(run))
    k = N_MEMBERS
    return {run: run_json(run, [paths[i : i + k] for i in range(0, len(paths), k)])}


def experiment_inputs(runs):
    return [c for r in runs for c in run_checkpoints(DATASET, r)]


def experiment_outputs():
    """The results files of the optional experiments that the config switches on."""
    root = f"results/metrics/{{}}/dataset={DATASET}"
    out = []
    if config["agreement"]:
        out.append(
            f"{root.format('agreement')}/source={config['agreement']['source']}/agreement.parquet"
        )
    if config["sweep"]:
        out.append(f"{root.format('sweep')}/run={config['sweep']['run']}/sweep.parquet")
    if config["ensemble"]:
        out.append(
            f"{root.format('ensemble')}/run={config['ensemble']['run']}/ensemble.parquet"
        )
    if config["rubbish"]:
        out += [
            f"{root.format('rubbish')}/rubbish.parquet",
            f"{root.format('rubbish')}/rubbish_classes.parquet",
        ]
    return out


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


# Ray: a local run starts one embedded Ray for all its jobs (onstart below) unless RAY_ADDRESS or
# ray.address names a cluster; either way a job is only a light driver (one thread) and Ray schedules its
# tasks. Snakemake reads this file before it picks its executor (workflow.local_exec is always true here), so
# whether the run is local is decided in onstart. Under a remote executor each job starts its own Ray on the
# CPUs that the profile's set-threads gives the rule (workflow/profiles/slurm).
CLUSTER = os.environ.get("RAY_ADDRESS") or config["ray"]["address"]
if CLUSTER or config["ray"]["shared"]:
    RAY_THREADS, RAY_SLOT = 1, 0
else:  # a job's own Ray: all local cores, one such job at a time (the profile's ray=1)
    RAY_THREADS, RAY_SLOT = workflow.cores, 1


def shared_ray():
    """Whether this run shares one embedded Ray: local execution, no cluster, ray.shared (known at onstart)."""
    return workflow.local_exec and not CLUSTER and config["ray"]["shared"]


onstart:
    if workflow.local_exec:  # one live run per directory (the default profile turns Snakemake's lock off)
        claim_workdir()
    if shared_ray():
        start_shared_head(workflow.cores, config["ray"]["object_store_mb"])


onsuccess:
    if shared_ray():
        stop_shared_head()


onerror:
    if shared_ray():
        stop_shared_head()


def curves_outputs():
    single = [
        f"results/metrics/curves/dataset={DATASET}/model={m}/regime={r}/curves.parquet"
        for m, r in map(split_run_id, RUNS)
    ]
    members = [
        f"results/metrics/curves/dataset={DATASET}/model={m}/regime={r}/members.parquet"
        for m, r in map(split_run_id, MEMBER_RUNS)
    ]
    return single + members


def all_results():
    return (
        attack_outputs() + transfer_outputs() + curves_outputs() + experiment_outputs()
    )


SEED_ARGS = " ".join(map(str, SEEDS))
