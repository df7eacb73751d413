"""``advbench prepare|train|attack|transfer|experiment|records|report|figures`` (what the rules call),
``evaluate`` (a model of one's own), ``chaos``, ``bench``, ``budgets``, ``compare``, ``progress`` and
``timeline``.

Specs arrive as JSON (built from the validated config by :class:`advbench.plan.Plan`); ``--job`` carries
the job's shared settings: ``{"dataset", "subset", "attack"}``; ``--ray`` the config's ``ray`` section.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from advbench.config.loading import RAY_ENV
from advbench.config.runs import split_run_id
from advbench.config.specs import model_spec_from_json, regime_spec_from_json
from advbench.data.registry import DATASETS
from advbench.reliability import CHAOS_CONFIGS, KINDS

log = logging.getLogger("advbench")


class Command(NamedTuple):
    """A subcommand: its help line, the function adding its arguments, and the function running it (its
    return value, if any, is the exit status)."""

    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


def _job(text: str) -> dict:
    return json.loads(text)


def _dispatch_args(p: argparse.ArgumentParser, data_required: bool = True) -> None:
    p.add_argument("--data", type=Path, required=data_required, help="prepared dataset (.npz)")
    p.add_argument("--job", required=True, help="JSON: dataset, subset and attack settings")
    p.add_argument(
        "--ray",
        default=os.environ.get(RAY_ENV, "{}"),
        help="JSON: the config's ray section (default: $ADVBENCH_RAY, set by the workflow)",
    )
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--threads", type=int, default=1, help="CPUs for the embedded Ray (the rule's threads)")
    p.add_argument("--no-ray", action="store_true", help="run the seeds serially in this process")
    p.add_argument(
        "--priority", type=int, default=0, help="the job's Snakemake priority: its Ray tasks start first"
    )
    p.add_argument(
        "--log",
        dest="job_log",
        metavar="LOG",
        default=None,
        help="the job's log file, for this process and its Ray tasks",
    )


def _ray_settings(args: argparse.Namespace, models: Sequence[str] = ()):
    """The job's Ray settings; a job whose models are all in ``ray.cpu_models`` asks for no GPU."""
    from advbench.runtime.ray import RaySettings

    ray, threads = json.loads(args.ray), args.threads
    on_cpus = bool(models) and set(models) <= set(ray.get("cpu_models", []))
    return RaySettings(
        num_cpus=threads,
        num_gpus=ray.get("num_gpus"),
        num_cpus_per_task=ray.get("num_cpus_per_task", 1),
        num_gpus_per_task=0 if on_cpus else ray.get("num_gpus_per_task", 0),
        object_store_mb=ray.get("object_store_mb", 512),
        max_retries=ray.get("max_retries", 2),
        flush_denormal=ray.get("flush_denormal", True),
        stack_seeds=ray.get("stack_seeds", "auto"),
        address=ray.get("address"),
        use_ray=not args.no_ray,
        task_name=f"advbench {args.command}",  # the workers' process title: ray::advbench train
        log_file=str(Path(args.job_log).resolve()) if args.job_log else None,
        priority=args.priority,
    )


def _attack_settings(job: dict):
    from advbench.evaluation.scores import MultiStep
    from advbench.jobs.common import AttackSettings

    a = job["attack"]
    multi = a.get("multistep", {})
    return AttackSettings(
        tuple(a["eps"]),
        tuple(a["clip"]),
        a["batch_size"],
        a["label_source"],
        tuple(a.get("methods", ["fgsm"])),
        None if multi.get("eps") is None else tuple(multi["eps"]),
        MultiStep(multi.get("steps", 20), multi.get("step_size"), multi.get("restarts", 1)),
    )


def _trained(model_json: str, regime_json: str, ckpts: list[str]):
    from advbench.jobs.common import Trained

    spec, regime = model_spec_from_json(model_json), regime_spec_from_json(regime_json)
    return [Trained(spec, regime, c) for c in ckpts]


def _prepare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--source", choices=["auto", "local", "torchvision", "tfds"], default="auto")
    p.add_argument(
        "--data-dir", default=None, help="folder holding mnist/, cifar10/ (default: $ADVBENCH_DATA)"
    )
    p.add_argument(
        "--zca-fit-n", type=int, default=None, help="CIFAR-10: fit ZCA on the first n training images"
    )


def cmd_prepare(args: argparse.Namespace) -> None:
    from advbench.data.splits import prepare

    options = {} if args.zca_fit_n is None else {"zca_fit_n": args.zca_fit_n}
    used = prepare(args.dataset, args.out, args.source, args.data_dir, **options)
    log.info("prepared %s from %s", args.out, used)


def _train_args(p: argparse.ArgumentParser) -> None:
    _dispatch_args(p)
    p.add_argument("--model", required=True, help="model spec (JSON)")
    p.add_argument("--regime", required=True, help="regime spec (JSON)")
    p.add_argument("--checkpoints", nargs="+", required=True, help="one .safetensors per seed")
    p.add_argument("--curves", type=Path, required=True, help="training curves (.parquet)")
    p.add_argument(
        "--members", type=int, default=1, help="ensemble members per seed (checkpoints seed-major)"
    )
    p.add_argument(
        "--sources", nargs="*", default=[], help="a static regime's source checkpoints, one per seed"
    )


def cmd_train(args: argparse.Namespace) -> None:
    from advbench.jobs.train import run_train

    job = _job(args.job)
    spec, regime = model_spec_from_json(args.model), regime_spec_from_json(args.regime)
    run_train(
        args.data,
        spec,
        regime,
        args.seeds,
        args.checkpoints,
        args.curves,
        job["dataset"],
        job.get("subset", {}),
        _ray_settings(args, [spec.name]),
        members=args.members,
        sources=args.sources,
    )


def _experiment_args(p: argparse.ArgumentParser) -> None:
    _dispatch_args(p, data_required=False)  # rubbish needs no data
    p.add_argument("name", choices=["agreement", "sweep", "ensemble", "rubbish", "rotation", "saliency"])
    p.add_argument("--out", nargs="+", required=True, help="KIND=PATH for each results file")


def cmd_experiment(args: argparse.Namespace) -> None:
    from advbench.jobs.experiments import run_experiment

    outs = dict(item.split("=", 1) for item in args.out)
    outs = {kind: Path(path) for kind, path in outs.items()}
    job = _job(args.job)
    models = [split_run_id(run)[0] for run in job["runs"]]
    run_experiment(args.name, job, args.data, args.seeds, outs, _ray_settings(args, models))


def _run_fgsm(args: argparse.Namespace, sources: list, targets: list) -> None:
    from advbench.jobs.attack import run_fgsm

    job = _job(args.job)
    models = [t.spec.name for t in (*sources, *targets)]
    settings = (_attack_settings(job), _ray_settings(args, models))
    run_fgsm(
        args.data, sources, targets, args.seeds, args.out, job["dataset"], job.get("subset", {}), *settings
    )


def _attack_args(p: argparse.ArgumentParser) -> None:
    _dispatch_args(p)
    p.add_argument("--model", required=True)
    p.add_argument("--regime", required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)


def cmd_attack(args: argparse.Namespace) -> None:
    trained = _trained(args.model, args.regime, args.checkpoints)
    _run_fgsm(args, trained, trained)


def _transfer_args(p: argparse.ArgumentParser) -> None:
    _dispatch_args(p)
    for end in ("source", "target"):
        p.add_argument(f"--{end}-model", required=True)
        p.add_argument(f"--{end}-regime", required=True)
        p.add_argument(f"--{end}-checkpoints", nargs="+", required=True)
    p.add_argument("--out", type=Path, required=True)


def cmd_transfer(args: argparse.Namespace) -> None:
    sources = _trained(args.source_model, args.source_regime, args.source_checkpoints)
    targets = _trained(args.target_model, args.target_regime, args.target_checkpoints)
    _run_fgsm(args, sources, targets)


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", type=Path, nargs="+", required=True, help="results files of any kind")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument(
        "--run-notes",
        default="{}",
        help="JSON: run id -> how it was trained where that is not the paper's schedule (row notes)",
    )
    p.add_argument("--budgets", type=Path, default=None, help="a budgets.csv of `advbench budgets`")
    p.add_argument(
        "--records",
        type=Path,
        nargs="*",
        default=[],
        help="model records (files or folders): the leaderboard",
    )


def cmd_report(args: argparse.Namespace) -> None:
    from advbench.report.tables import make_report

    table = make_report(args.results, args.out_dir, json.loads(args.run_notes), args.budgets, args.records)
    log.info("paper comparison:\n%s", table.to_string(index=False))


def _records_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attack", type=Path, nargs="+", required=True, help="attack results, one file per run")
    p.add_argument("--curves", type=Path, nargs="*", default=[], help="training curves of the same runs")
    p.add_argument("--job", required=True, help="JSON: each run's specs, each dataset's eps (records.py)")
    p.add_argument("--out-dir", type=Path, required=True)


def cmd_records(args: argparse.Namespace) -> None:
    from advbench.report.records import write_records

    written = write_records(_job(args.job), args.attack, args.curves, args.out_dir)
    log.info("wrote %d model records and cards under %s", len(written) // 2, args.out_dir)


def _figures_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--results", type=Path, nargs="+", required=True, help="results and panels files of any kind"
    )
    p.add_argument("--job", required=True, help="JSON: charts to draw, image figures (see render.py)")
    p.add_argument("--out-dir", type=Path, required=True)


def cmd_figures(args: argparse.Namespace) -> None:
    from advbench.report.figures import make_figures

    written = make_figures(args.results, _job(args.job), args.out_dir)
    log.info("wrote %d figure files under %s", len(written), args.out_dir)


def _panels_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--job", required=True, help="JSON: runs, checkpoints, datasets, eps (see panels.py)")
    p.add_argument("--out-dir", type=Path, required=True)


def cmd_panels(args: argparse.Namespace) -> None:
    from advbench.jobs.panels import make_panels

    written = make_panels(_job(args.job), args.out_dir)
    log.info("wrote %s", ", ".join(map(str, written.values())))


def _chaos_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kills", type=int, default=20, help="kills before the final, uninterrupted rerun")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments and kinds")
    p.add_argument(
        "--configfile", nargs="+", default=list(CHAOS_CONFIGS), help="presets merged over config.yaml"
    )
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="what a kill may hit")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the workflow to copy (default: here)")
    p.add_argument("--scratch", type=Path, default=None, help="work folder (default: a new temp dir)")
    p.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $ADVBENCH_DATA)")
    p.add_argument(
        "--no-bad-inputs", dest="bad_inputs", action="store_false", help="skip the bad-input battery"
    )


def cmd_chaos(args: argparse.Namespace) -> int:
    from advbench.reliability.badinputs import check_bad_inputs
    from advbench.reliability.chaos import Workflow, run_chaos

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="advbench-chaos-"))
    configs = tuple(args.configfile)
    summary = run_chaos(args.repo, scratch, args.kills, args.seed, configs, args.cores, args.kinds)
    if args.bad_inputs:
        mnist = Path(args.data_dir or os.environ.get("ADVBENCH_DATA", "")) / "mnist"
        finished = Workflow(scratch / "chaos", configs, args.cores)
        check_bad_inputs(finished, scratch / "reference", mnist, scratch / "bad", summary)
    print("\n".join(["chaos summary:", *summary.lines(), f"(work in {scratch})"]))
    return 0 if summary.ok else 1


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="prepared dataset (.npz)")
    p.add_argument("--out-dir", type=Path, default=Path("results/bench"))
    p.add_argument(
        "--workflow-dir", type=Path, default=Path("."), help="a finished run's folder (log, benchmarks/)"
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes and 2 repetitions: checks the code, not speed"
    )
    p.add_argument("--sections", nargs="+", choices=["fgsm", "train", "memory", "ray", "workflow"])
    p.add_argument(
        "--reps", type=int, default=None, help="timed repetitions per measurement (default 5; 10 on a GPU)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (a Ray task's CPUs; default 1)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def cmd_bench(args: argparse.Namespace) -> None:
    import torch

    from advbench.bench.suite import SECTIONS, BenchConfig, run_bench, write_outputs

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = BenchConfig.for_run(device, args.quick, tuple(args.sections or SECTIONS))
    cfg = replace(cfg, threads=args.threads, reps=args.reps or cfg.reps)
    rows = run_bench(cfg, args.data, args.workflow_dir, device)
    write_outputs(rows, cfg, args.out_dir, device)
    named = {
        verdict: [f"{r['section']}/{r['metric']}/{r['model']}" for r in rows if r["verdict"] == verdict]
        for verdict in ("missed", "within noise")
    }
    log.info(
        "wrote %s; targets missed: %s; within noise: %s",
        args.out_dir,
        ", ".join(named["missed"]) or "none",
        ", ".join(named["within noise"]) or "none",
    )


def _budgets_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--epochs",
        type=_budget,
        nargs="+",
        default=[3, 10, 25, 50, 100],
        help="stage-1 epoch caps; `paper`: the paper's whole schedule (presets/paper.yaml's caps)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every budget (default: 0)")
    p.add_argument("--cores", type=int, default=None, help="Snakemake's cores (default: min(CPUs, 4))")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the workflow to copy (default: here)")
    p.add_argument(
        "--workdir", type=Path, default=Path("results/budgets"), help="one run folder per budget, the table"
    )
    p.add_argument("--doc", type=Path, default=None, help="also write the table's Markdown here")


def _budget(text: str) -> int | str:
    from advbench.bench.budgets import parse_budget

    try:
        return parse_budget(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def cmd_budgets(args: argparse.Namespace) -> None:
    from advbench.bench.budgets import Budget, default_cores, run_budgets, write_outputs
    from advbench.runtime.task import machine

    cores = args.cores or default_cores()
    budgets = [Budget(epochs, tuple(args.seeds), cores) for epochs in args.epochs]
    table = run_budgets(args.repo.resolve(), args.workdir.resolve(), budgets)
    command = "advbench budgets --epochs " + " ".join(map(str, args.epochs))
    command += " --seeds " + " ".join(map(str, args.seeds))
    write_outputs(table, args.workdir, args.doc, machine(), command)
    print(table.to_markdown(index=False, floatfmt=".2f"))


def _ab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="commit A (the baseline), e.g. a tag, a hash or HEAD~3")
    p.add_argument("b", nargs="?", default="HEAD", help="commit B (default: HEAD)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the 240-unit maxout per run")
    p.add_argument("--repeats", type=int, default=3, help="repetitions, each running A and B once")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--regimes", nargs="+", default=["clean", "adversarial"], help="config regimes")
    p.add_argument("--cores", type=int, default=1, help="Snakemake's cores (1: each job timed alone)")
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the git checkout (default: here)")
    p.add_argument("--workdir", type=Path, default=Path("results/ab"), help="worktrees and the tables")
    p.add_argument("--doc", type=Path, default=None, help="also write the table's Markdown here")


def cmd_ab(args: argparse.Namespace) -> int:
    from advbench.bench.ab import AbError, AbSpec, markdown, run_ab, summarize, write_outputs
    from advbench.runtime.task import machine

    revs = (args.a, args.b)
    spec = AbSpec(args.epochs, tuple(args.seeds), tuple(args.regimes), args.cores)
    try:
        runs = run_ab(args.repo.resolve(), revs, spec, args.workdir.resolve() / "trees", args.repeats)
    except AbError as err:
        log.error("advbench ab: %s", err)
        return 2
    summary = summarize(runs)
    command = f"advbench ab {args.a} {args.b} --epochs {args.epochs} --repeats {args.repeats}"
    text = markdown(summary, revs, spec, machine(), command)
    write_outputs(runs, summary, args.workdir, text, args.doc)
    print(text)
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="the model's name in the tables (lowercase, a-z0-9_)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--factory", help="module:function or path/to/file.py:function returning the Module")
    source.add_argument("--torchscript", type=Path, help="a TorchScript file (torch.jit.save) instead")
    p.add_argument(
        "--weights", type=Path, default=None, help="safetensors state dict of the factory's Module"
    )
    p.add_argument("--input-shape", type=int, nargs="+", default=None, help="one input's shape, e.g. 1 28 28")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    p.add_argument("--configfile", type=Path, nargs="*", default=[], help="overlays after the preset's")
    p.add_argument("--cores", default="all", help="Snakemake's --cores (default: all)")
    p.add_argument("--workdir", type=Path, default=Path("."), help="the advbench checkout (default: .)")
    p.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="after --: more Snakemake options")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from advbench.config.specs import ConfigError
    from advbench.models.external import ExternalModelError
    from advbench.plan.evaluate import Evaluation, run

    shape = tuple(args.input_shape) if args.input_shape else None
    evaluation = Evaluation(args.name, args.factory, args.weights, args.torchscript, shape, args.dataset)
    extra = args.snakemake_args[1:] if args.snakemake_args[:1] == ["--"] else args.snakemake_args
    try:
        return run(evaluation, args.workdir, args.configfile, args.cores, extra)
    except (ConfigError, ExternalModelError) as err:
        log.error("advbench evaluate: %s", err)
        return 2


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", type=Path, help="a run's folder (or its results/tables/paper_comparison.csv)")
    p.add_argument("b", type=Path, help="the run to compare with it")


def cmd_compare(args: argparse.Namespace) -> None:
    from advbench.report.compare import compare, load, summary

    table = compare(load(args.a), load(args.b))
    print(table.to_markdown(index=False, floatfmt=".3g"))
    print(summary(table))


def _progress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "workdir",
        type=Path,
        nargs="?",
        default=Path("."),
        help="a workflow's folder, or a run's (snakemake --directory), from its checkout (default: .)",
    )
    p.add_argument(
        "--configfile",
        type=Path,
        nargs="+",
        default=[],
        help="the run's presets, as given to snakemake: also list the tasks not started or written",
    )


def cmd_progress(args: argparse.Namespace) -> int:
    from advbench.training.state import progress_summary, progress_table

    planned: list[str] = []
    if args.configfile:
        from advbench.config.specs import ConfigError

        try:
            planned = _planned_checkpoints(args.workdir, args.configfile)
        except (ConfigError, OSError) as err:
            log.error("advbench progress: %s", err)
            return 2
    table = progress_table(args.workdir, planned)
    if table.empty:
        print(f"{args.workdir}: no training task has a saved state (none running, or every job finished)")
        return 0
    shown = table.astype(object).where(table.notna(), None)  # tasks without a state: blanks, not nan
    print(shown.to_markdown(index=False, floatfmt=".4g", missingval=""))
    print("\n" + progress_summary(table))
    return 0


def _timeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "workdir",
        type=Path,
        nargs="?",
        default=None,
        help="a workflow's folder, with its jobs' logs (default: that of --snakemake-log, else .)",
    )
    p.add_argument(
        "--snakemake-log", type=Path, help="a Snakemake log (default: the workdir's newest finished run)"
    )


def cmd_timeline(args: argparse.Namespace) -> int:
    from advbench.bench.workflow import (
        WorkflowRunError,
        finished_run,
        job_timeline,
        provided_cores,
        timeline_summary,
    )

    try:
        path = args.snakemake_log or finished_run(args.workdir or Path("."))[0]
        timeline = job_timeline(path, args.workdir)
    except (WorkflowRunError, OSError) as err:
        log.error("advbench timeline: %s", err)
        return 2
    if timeline.empty:
        log.error("advbench timeline: %s: no finished job in this log", path)
        return 2
    print(f"{path}\n")
    shown = timeline.astype({"task_s": object}).where(timeline.notna(), None)  # blank: no tasks
    print(shown.to_markdown(index=False, floatfmt=".0f", missingval=""))
    print("\n" + timeline_summary(timeline, provided_cores(path)))
    return 0


def _planned_checkpoints(workdir: Path, configfiles: list[Path]) -> list[str]:
    """The checkpoints the workflow run in ``workdir`` trains with these ``--configfile`` overlays, read
    where snakemake read them: in ``workdir`` when it holds the workflow's ``config.yaml``, else in the
    current folder (the checkout that ran ``snakemake --directory <workdir>``)."""
    from advbench.config.loading import load_config
    from advbench.config.validation import validate_config
    from advbench.plan import Plan

    root = next((d for d in (workdir, Path.cwd()) if (d / "config.yaml").exists()), None)
    if root is None:
        raise OSError(
            f"{workdir}: no config.yaml here or in {Path.cwd()}: run this from the workflow's checkout"
        )
    paths = [root / "config.yaml", *(root / f for f in configfiles)]
    return Plan(validate_config(load_config(*paths))).trained_checkpoints()


COMMANDS: dict[str, Command] = {
    "prepare": Command(
        "read, verify and split a dataset (CIFAR-10: and fit GCN + ZCA)", _prepare_args, cmd_prepare
    ),
    "train": Command("train one (model, regime) over seeds, one Ray task per seed", _train_args, cmd_train),
    "experiment": Command(
        "agreement, sweep, ensemble, rubbish, rotation or saliency: one Ray task per seed",
        _experiment_args,
        cmd_experiment,
    ),
    "attack": Command("FGSM over the eps grid on a model's own test examples", _attack_args, cmd_attack),
    "transfer": Command(
        "FGSM examples of a source model scored on a target model", _transfer_args, cmd_transfer
    ),
    "report": Command(
        "paper-vs-reproduced and per-experiment tables from the Parquet results", _report_args, cmd_report
    ),
    "records": Command(
        "one JSON record and Hugging Face model card per trained model", _records_args, cmd_records
    ),
    "panels": Command(
        "the image figures' data (Parquet) from the first seed's checkpoints and test sets",
        _panels_args,
        cmd_panels,
    ),
    "figures": Command(
        "figures (PNG + PDF) from the Parquet results and panels only", _figures_args, cmd_figures
    ),
    "chaos": Command(
        "kill the workflow at random moments, rerun it, compare with a clean run", _chaos_args, cmd_chaos
    ),
    "bench": Command(
        "speed against torchattacks, ART and the physical floors (needs the bench extra)",
        _bench_args,
        cmd_bench,
    ),
    "budgets": Command(
        "what an epoch budget buys: the headline pair at several stage-1 caps, one workflow run each",
        _budgets_args,
        cmd_budgets,
    ),
    "ab": Command(
        "two commits' training speed and weights on this machine, taking turns (A B, B A, ...)",
        _ab_args,
        cmd_ab,
    ),
    "evaluate": Command(
        "the paper's battery on a model of your own (docs/evaluate.md)", _evaluate_args, cmd_evaluate
    ),
    "compare": Command(
        "two finished runs' paper comparisons side by side: differences in standard errors, verdicts",
        _compare_args,
        cmd_compare,
    ),
    "progress": Command(
        "every training task's epoch, best validation score and time to go, from its saved state",
        _progress_args,
        cmd_progress,
    ),
    "timeline": Command(
        "a finished run's jobs from its Snakemake log: start, end, seconds, task seconds, who ran alone",
        _timeline_args,
        cmd_timeline,
    ),
}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="advbench", description=__doc__.splitlines()[0])
    ap.add_argument("--quiet", action="store_true", help="log warnings only")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.add_args(p := sub.add_parser(name, help=command.help))
        p.set_defaults(func=command.run)
    return ap


def main(argv: list[str] | None = None) -> int:
    from advbench.runtime.logs import job_log_handler
    from advbench.runtime.task import LOG_FORMAT

    args = parser().parse_args(argv)
    if getattr(args, "job_log", None):
        logging.basicConfig(level=logging.INFO, handlers=[job_log_handler(Path(args.job_log))])
    else:
        level = logging.WARNING if args.quiet else logging.INFO
        logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    return args.func(args) or 0


def run_job(argv: list[str]) -> None:
    """A workflow job in the calling thread (a rule's ``run:`` under the default profile's threads), its log
    lines (``--log``, required) those of this thread only; errors are logged there too, then raised."""
    from advbench.runtime.logs import thread_log

    args = parser().parse_args(argv)
    if not getattr(args, "job_log", None):
        raise ValueError(f"advbench {args.command}: a job run in-process needs --log")
    with thread_log(Path(args.job_log)):
        try:
            args.func(args)
        except Exception:
            log.exception("advbench %s failed", args.command)
            raise


if __name__ == "__main__":
    sys.exit(main())
