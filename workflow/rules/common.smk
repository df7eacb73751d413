"""Config validation, the experiment matrix and the paths every rule shares (advbench.plan)."""

import os
import shlex

from advbench.config.loading import export_to_jobs
from advbench.config.specs import ConfigError
from advbench.config.validation import validate_config
import advbench.plan.report as report_plan
from advbench.plan import PATHS, Plan, ray_cluster, ray_threads_and_slot
from advbench.runtime.ray import start_shared_head, stop_shared_head
from advbench.runtime.workdir import claim_workdir

# once: the packaged schema (which fills defaults), then the references between sections
try:
    validate_config(config)
except ConfigError as err:
    raise ValueError(f"config error: {err}") from None
export_to_jobs(config)
PLAN = Plan(config)

# the dataset of models that name none; a run's own dataset is PLAN.dataset_of(run)
DATASET = config["dataset"]
SEEDS = PLAN.seeds
SEED_ARGS = PLAN.seed_args
N_MEMBERS = PLAN.n_members


wildcard_constraints:
    dataset="[a-z][a-z0-9]*",
    model="[a-z][a-z0-9_]*",
    regime="[a-z][a-z0-9_]*",
    source="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",
    target="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",
    seed="[0-9]+",
    member="[0-9]+",
    run="[a-z][a-z0-9_]*-[a-z][a-z0-9_]*",


# Ray: a local run starts one embedded Ray for all its jobs (onstart below) unless RAY_ADDRESS or
# ray.address names a cluster; either way a job is only a light driver (one thread) and Ray schedules its
# tasks. Snakemake reads this file before it picks its executor (workflow.local_exec is always true here), so
# whether the run is local is decided in onstart. Under a remote executor each job starts its own Ray on the
# CPUs that the profile's set-threads gives the rule (workflow/profiles/slurm).
CLUSTER = ray_cluster(config)
RAY_THREADS, RAY_SLOT = ray_threads_and_slot(
    CLUSTER, config["ray"]["shared"], workflow.cores
)


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


# the report's outputs, each registered in `snakemake --report` (report.smk)
BUDGETS = report_plan.budgets(config)


def table_outputs():
    return {
        key: report(
            f.path,
            caption=f"../report/{f.table}.rst",
            category=f.category,
            subcategory="tables",
            labels={"table": f.table, "format": f.format, "runs": f.runs},
        )
        for key, f in report_plan.table_paths(config).items()
    }


def figure_outputs():
    out = {}
    for name, (category, runs, stem) in report_plan.figures(PLAN).items():
        out[name] = report(
            PATHS["figure"].format(name=name, ext="png"),
            caption=f"../report/{stem}.rst",
            category=category,
            subcategory="figures",
            labels={"figure": name, "runs": runs},
        )
        out[f"{name}_pdf"] = PATHS["figure"].format(name=name, ext="pdf")
    return out
