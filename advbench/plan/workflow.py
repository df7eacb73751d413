"""The workflow's output paths and job specs for one validated config.

The rules in ``workflow/rules/`` declare their outputs with :data:`PATHS`' patterns (Snakemake wildcards in
braces) and ask a :class:`Plan` for the concrete paths and job specs of their inputs and params, so a path
or a job's shape is written once, here. The report's own lists (tables, figures, panels) are in
:mod:`advbench.plan.report`.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from advbench.config.runs import (
    budget_notes,
    run_attack,
    run_dataset,
    run_entries,
    run_id,
    run_model_spec,
    split_run_id,
    transfer_pairs,
)
from advbench.config.specs import regime_spec, spec_to_json
from advbench.data.registry import dataset_info
from advbench.plan.priorities import train_priorities
from advbench.report.layout import FIGURES_DIR, PANELS_DIR, RECORDS_DIR, TABLES_DIR

_RUN = "dataset={dataset}/model={model}/regime={regime}"

#: name -> path pattern of every file the workflow writes (besides logs and benchmarks)
PATHS: dict[str, str] = {
    "data": "resources/data/{dataset}.npz",
    "checkpoint": f"results/models/{_RUN}/seed={{seed}}.safetensors",
    "member": f"results/models/{_RUN}/seed={{seed}}/member={{member}}.safetensors",
    "curves": f"results/metrics/curves/{_RUN}/curves.parquet",
    "member_curves": f"results/metrics/curves/{_RUN}/members.parquet",
    "attack": f"results/metrics/attack/{_RUN}/attacks.parquet",
    "transfer": "results/metrics/transfer/dataset={dataset}/source={source}/target={target}/attacks.parquet",
    "agreement": "results/metrics/agreement/dataset={dataset}/source={source}/agreement.parquet",
    "sweep": "results/metrics/sweep/dataset={dataset}/run={run}/sweep.parquet",
    "ensemble": "results/metrics/ensemble/dataset={dataset}/run={run}/ensemble.parquet",
    "rubbish": "results/metrics/rubbish/rubbish.parquet",
    "rubbish_classes": "results/metrics/rubbish/rubbish_classes.parquet",
    "rotation": "results/metrics/rotation/dataset={dataset}/rotation.parquet",
    "saliency": "results/metrics/saliency/dataset={dataset}/saliency.parquet",
    "panel": f"{PANELS_DIR}/{{kind}}.parquet",
    "table": f"{TABLES_DIR}/{{name}}.{{ext}}",
    "figure": f"{FIGURES_DIR}/{{name}}.{{ext}}",
    "records": RECORDS_DIR,
}


def path(of: str, /, **wildcards: Any) -> str:
    """The path of kind ``of`` (a key of :data:`PATHS`) with its wildcards filled in."""
    return PATHS[of].format(**wildcards)


def ray_threads_and_slot(cluster: str | None, shared: bool, cores: int) -> tuple[int, int]:
    """A Ray job's Snakemake threads and its ``ray`` resource: a light driver (one thread, no slot) when a
    cluster or the shared embedded head schedules the work, else all local cores and the one ``ray`` slot
    (its own Ray, one such job at a time)."""
    return (1, 0) if cluster or shared else (cores, 1)


def ray_cluster(config: dict[str, Any]) -> str | None:
    """The Ray cluster the run joins: ``RAY_ADDRESS``, else ``ray.address`` (None: an embedded Ray)."""
    return os.environ.get("RAY_ADDRESS") or config["ray"]["address"]


@dataclass(frozen=True)
class Plan:
    """The workflow's paths and job specs for one validated config (``validate_config`` has filled it)."""

    config: dict[str, Any]

    # -- the experiment matrix
    @property
    def seeds(self) -> list[int]:
        return self.config["seeds"]

    @property
    def seed_args(self) -> str:
        return " ".join(map(str, self.seeds))

    @cached_property
    def entries(self) -> dict[str, dict[str, Any]]:
        return run_entries(self.config)

    @cached_property
    def runs(self) -> list[str]:
        """The single-model runs (one checkpoint per seed)."""
        return [r for r, e in self.entries.items() if e.get("members", 1) == 1]

    @cached_property
    def member_runs(self) -> dict[str, int]:
        """The ensemble runs and their members per seed."""
        return {r: e["members"] for r, e in self.entries.items() if e.get("members", 1) > 1}

    @property
    def n_members(self) -> int:
        # validation allows one ensemble run
        return max(self.member_runs.values(), default=1)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return transfer_pairs(self.config)

    @property
    def subset(self) -> dict[str, int | None]:
        return {k: self.config["data"][k] for k in ("n_train", "n_val", "n_test")}

    @cached_property
    def train_priority(self) -> dict[str, int]:
        """Snakemake priority of each run's training job: longest first (:mod:`advbench.plan.priorities`)."""
        return train_priorities(self.config)

    def priority(self, model: str, regime: str) -> int:
        return self.train_priority[run_id(model, regime)]

    @cached_property
    def run_notes(self) -> str:
        """The report's row notes (how each run's training differs from the paper's), shell-quoted JSON."""
        return shlex.quote(json.dumps(budget_notes(self.config), sort_keys=True))

    def dataset_of(self, run: str) -> str:
        return run_dataset(self.config, run)

    @cached_property
    def logistic_runs(self) -> list[str]:
        models = self.config["models"]
        return [r for r in self.runs if models[split_run_id(r)[0]]["arch"] == "logistic"]

    def rubbish_runs(self) -> list[str]:
        return self.config["rubbish"]["runs"] if self.config["rubbish"] else []

    def rotation_runs(self) -> list[str]:
        return self.config["rotation"]["runs"] if self.config["rotation"] else []

    def saliency_runs(self, dataset: str | None = None) -> list[str]:
        """The runs whose sensitivity maps are computed (those of ``dataset``, if given)."""
        runs = self.config["saliency"]["runs"] if self.config["saliency"] else []
        return [r for r in runs if dataset is None or self.dataset_of(r) == dataset]

    # -- paths
    def data(self, dataset: str) -> str:
        return path("data", dataset=dataset)

    def prepare_options(self, dataset: str) -> str:
        """Command-line options of the dataset's own preparation (CIFAR-10: ``--zca-fit-n``)."""
        data = self.config["data"]
        options = dataset_info(dataset).prepare_options
        return " ".join(f"--{key.replace('_', '-')}={data[key]}" for key in options if data[key] is not None)

    def checkpoints(self, dataset: str, model: str, regime: str) -> list[str]:
        at = {"dataset": dataset, "model": model, "regime": regime}
        return [path("checkpoint", seed=s, **at) for s in self.seeds]

    def members(self, dataset: str, model: str, regime: str) -> list[str]:
        """Every seed's ensemble members, seed-major."""
        at = {"dataset": dataset, "model": model, "regime": regime}
        return [path("member", seed=s, member=m, **at) for s in self.seeds for m in range(self.n_members)]

    def run_members(self, run: str) -> list[str]:
        return self.members(self.dataset_of(run), *split_run_id(run))

    def run_checkpoints(self, run: str) -> list[str]:
        return self.checkpoints(self.dataset_of(run), *split_run_id(run))

    def trained_checkpoints(self) -> list[str]:
        """Every checkpoint a training task of this config writes: each run's seeds, then each ensemble
        run's seeds and members."""
        single = [c for r in self.runs for c in self.run_checkpoints(r)]
        return single + [c for r in self.member_runs for c in self.run_members(r)]

    def experiment_inputs(self, runs: list[str]) -> list[str]:
        return [c for r in runs for c in self.run_checkpoints(r)]

    def _per_run(self, name: str, runs: list[str] | dict[str, int]) -> list[str]:
        return [
            path(name, dataset=self.dataset_of(r), model=m, regime=g)
            for r, (m, g) in zip(runs, map(split_run_id, runs), strict=True)
        ]

    def attack_outputs(self) -> list[str]:
        return self._per_run("attack", self.runs)

    def run_curves_outputs(self) -> list[str]:
        """The training curves of the single-model runs."""
        return self._per_run("curves", self.runs)

    def curves_outputs(self) -> list[str]:
        return self.run_curves_outputs() + self._per_run("member_curves", self.member_runs)

    def transfer_outputs(self) -> list[str]:
        return [path("transfer", dataset=self.dataset_of(s), source=s, target=t) for s, t in self.pairs]

    def experiment_outputs(self) -> list[str]:
        """The results of the optional experiments that the config switches on (rubbish: one job for runs
        of any dataset, since noise inputs need no data; saliency: one job per dataset of its runs)."""
        cfg, out = self.config, []
        if cfg["agreement"]:
            source = cfg["agreement"]["source"]
            out.append(path("agreement", dataset=self.dataset_of(source), source=source))
        for name in ("sweep", "ensemble"):
            if cfg[name]:
                run = cfg[name]["run"]
                out.append(path(name, dataset=self.dataset_of(run), run=run))
        if cfg["rubbish"]:
            out += [PATHS["rubbish"], PATHS["rubbish_classes"]]
        if cfg["rotation"]:
            out.append(path("rotation", dataset=self.dataset_of(self.rotation_runs()[0])))
        datasets = dict.fromkeys(map(self.dataset_of, self.saliency_runs()))
        out += [path("saliency", dataset=ds) for ds in datasets]
        return out

    def all_results(self) -> list[str]:
        outputs = (self.attack_outputs, self.transfer_outputs, self.curves_outputs, self.experiment_outputs)
        return [p for of in outputs for p in of()]

    # -- job specs (JSON strings, as the rules pass them on the command line)
    def model_json(self, model: str, regime: str) -> str:
        """The model's spec with its run's train overrides."""
        return spec_to_json(run_model_spec(self.config, run_id(model, regime)))

    def regime_json(self, regime: str) -> str:
        return spec_to_json(regime_spec(regime, self.config["regimes"][regime]))

    def run_model_json(self, run: str) -> str:
        return self.model_json(*split_run_id(run))

    def run_regime_json(self, run: str) -> str:
        return self.regime_json(split_run_id(run)[1])

    def train_sources(self, dataset: str, model: str, regime: str) -> list[str]:
        """A static regime's source checkpoints (the model under its ``source_regime``), one per seed."""
        source = regime_spec(regime, self.config["regimes"][regime]).source
        return [] if source is None else self.checkpoints(dataset, model, source)

    def train_job_json(self, dataset: str) -> str:
        """What a training job depends on besides its specs (attack settings excluded: no retraining)."""
        return json.dumps({"dataset": dataset, "subset": self.subset}, sort_keys=True)

    def attack_job_json(self, dataset: str, attack: dict[str, Any]) -> str:
        return json.dumps({"dataset": dataset, "subset": self.subset, "attack": attack}, sort_keys=True)

    def run_attack_json(self, dataset: str, model: str, regime: str) -> str:
        """The attack job of a run: the ``attack`` section with the run's own overrides."""
        return self.attack_job_json(dataset, run_attack(self.config, run_id(model, regime)))

    def transfer_job_json(self, dataset: str) -> str:
        return self.attack_job_json(dataset, {**self.config["attack"], "eps": self.config["transfer"]["eps"]})

    def run_json(self, run: str, per_seed: list[Any]) -> dict[str, Any]:
        model, regime = split_run_id(run)
        return {
            "model": json.loads(self.model_json(model, regime)),
            "regime": json.loads(self.regime_json(regime)),
            "checkpoints": per_seed,
        }

    def seed_runs(self, runs: list[str]) -> dict[str, dict[str, Any]]:
        return {r: self.run_json(r, self.run_checkpoints(r)) for r in runs}

    def ensemble_runs(self) -> dict[str, dict[str, Any]]:
        run, k = self.config["ensemble"]["run"], self.n_members
        paths = self.run_members(run)
        return {run: self.run_json(run, [paths[i : i + k] for i in range(0, len(paths), k)])}

    def experiment_job_json(self, dataset: str | None, runs: dict[str, Any], **settings: Any) -> str:
        """The job of an experiment rule: its runs' specs and checkpoints, and its settings."""
        job = {"dataset": dataset, "subset": self.subset, "runs": runs, **settings}
        job["batch_size"] = self.config["attack"]["batch_size"]
        return json.dumps(job, sort_keys=True)
