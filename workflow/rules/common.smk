"""Config validation, the experiment matrix and the paths every rule shares."""

import json
import os
import shlex

from advbench.config.loading import export_to_jobs
from advbench.config.runs import (
    budget_notes,
    run_attack,
    run_dataset,
    run_entries,
    run_id,
    run_model_spec,
    split_run_id,
)
from advbench.config.specs import ConfigError, regime_spec, spec_to_json
from advbench.config.validation import validate_config
from advbench.data.registry import dataset_info
from advbench.priorities import train_priorities
from advbench.runtime.ray import start_shared_head, stop_shared_head
from advbench.runtime.workdir import claim_workdir

# once: the packaged schema (which fills defaults), then the references between sections
try:
    validate_config(config)
except ConfigError as err:
    raise ValueError(f"config error: {err}") from None
export_to_jobs(config)

# the dataset of models that name none; a run's own dataset is dataset_of(run)
DATASET = config["dataset"]
SEEDS = config["seeds"]
RUN_ENTRIES = run_entries(config)
RUNS = [r for r, e in RUN_ENTRIES.items() if e.get("members", 1) == 1]
MEMBER_RUNS = {
    r: e["members"] for r, e in RUN_ENTRIES.items() if e.get("members", 1) > 1
}
# check_experiment allows one ensemble run
N_MEMBERS = max(MEMBER_RUNS.values(), default=1)
PAIRS = [(p["source"], p["target"]) for p in config["transfer"]["pairs"]]
SUBSET = {k: config["data"][k] for k in ("n_train", "n_val", "n_test")}
# longest training jobs first (advbench.priorities)
TRAIN_PRIORITY = train_priorities(config)
# the report's row notes: how each run's training differs from the paper's schedule
RUN_NOTES = shlex.quote(json.dumps(budget_notes(config), sort_keys=True))


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


def prepare_options(dataset):
    """Command-line options of the dataset's own preparation (CIFAR-10: --zca-fit-n)."""
    options = dataset_info(dataset).prepare_options
    return " ".join(
        f"--{key.replace('_', '-')}={config['data'][key]}"
        for key in options
        if config["data"][key] is not None
    )


def dataset_of(run):
    return run_dataset(config, run)


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


def train_job_json(dataset):
    """What a training job depends on besides its specs (attack settings excluded: no retraining)."""
    return json.dumps({"dataset": dataset, "subset": SUBSET}, sort_keys=True)


def attack_job_json(dataset, attack):
    return json.dumps(
        {"dataset": dataset, "subset": SUBSET, "attack": attack}, sort_keys=True
    )


def run_json(run, per_seed):
    model, regime = split_run_id(run)
    return {
        "model": json.loads(model_json(model, regime)),
        "regime": json.loads(regime_json(regime)),
        "checkpoints": per_seed,
    }


def experiment_job_json(name, dataset, runs, **settings):
    """The job of an experiment rule: its runs' specs and checkpoints, and its settings."""
    job = {"dataset": dataset, "subset": SUBSET, "runs": runs, **settings}
    job["batch_size"] = config["attack"]["batch_size"]
    return json.dumps(job, sort_keys=True)


def seed_runs(runs):
    return {r: run_json(r, run_checkpoints(dataset_of(r), r)) for r in runs}


def ensemble_runs():
    run = config["ensemble"]["run"]
    paths = member_paths(dataset_of(run), *split_run_id(run))
    k = N_MEMBERS
    return {run: run_json(run, [paths[i : i + k] for i in range(0, len(paths), k)])}


def experiment_inputs(runs):
    return [c for r in runs for c in run_checkpoints(dataset_of(r), r)]


def experiment_outputs():
    """The results files of the optional experiments that the config switches on (rubbish: one job for
    runs of any dataset, since noise inputs need no data)."""
    out = []
    if config["agreement"]:
        source = config["agreement"]["source"]
        out.append(
            f"results/metrics/agreement/dataset={dataset_of(source)}/source={source}/agreement.parquet"
        )
    if config["sweep"]:
        run = config["sweep"]["run"]
        out.append(
            f"results/metrics/sweep/dataset={dataset_of(run)}/run={run}/sweep.parquet"
        )
    if config["ensemble"]:
        run = config["ensemble"]["run"]
        out.append(
            f"results/metrics/ensemble/dataset={dataset_of(run)}/run={run}/ensemble.parquet"
        )
    if config["rubbish"]:
        out += [
            "results/metrics/rubbish/rubbish.parquet",
            "results/metrics/rubbish/rubbish_classes.parquet",
        ]
    return out


def attack_outputs():
    return [
        f"results/metrics/attack/dataset={dataset_of(run)}/model={m}/regime={r}/fgsm.parquet"
        for run, (m, r) in zip(RUNS, map(split_run_id, RUNS))
    ]


def transfer_outputs():
    return [
        f"results/metrics/transfer/dataset={dataset_of(s)}/source={s}/target={t}/fgsm.parquet"
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
    if (
        workflow.local_exec
    ):  # one live run per directory (the default profile turns Snakemake's lock off)
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
        f"results/metrics/curves/dataset={dataset_of(run)}/model={m}/regime={r}/curves.parquet"
        for run, (m, r) in zip(RUNS, map(split_run_id, RUNS))
    ]
    members = [
        f"results/metrics/curves/dataset={dataset_of(run)}/model={m}/regime={r}/members.parquet"
        for run, (m, r) in zip(MEMBER_RUNS, map(split_run_id, MEMBER_RUNS))
    ]
    return single + members


def all_results():
    return (
        attack_outputs() + transfer_outputs() + curves_outputs() + experiment_outputs()
    )


SEED_ARGS = " ".join(map(str, SEEDS))


def run_advbench(command):
    """``advbench <command>`` as this job's work; the command is formatted like a ``shell:`` one, from the
    calling rule's ``input``, ``output``, ``params``, ``threads`` and ``log``.

    Under the default profile (``force-use-threads``) the job runs in a thread of the Snakemake process,
    whose Ray (the shared head) then has one driver and one set of warm workers for the whole run, instead
    of a fresh driver and fresh workers, each importing torch, per job. Elsewhere (a remote executor, or a
    run without the profile) Snakemake runs it in a process of its own, which joins the cluster or starts a
    private Ray."""
    from snakemake.utils import format as rule_format

    from advbench.cli import run_job

    run_job(shlex.split(rule_format(command, stepout=2)))
