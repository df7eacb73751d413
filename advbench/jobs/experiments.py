"""Jobs of the paper's other experiments: cross-model agreement (F15-F17), the logit sweep (F18), the
ensemble attack (F20), rubbish-class noise (F21-F25), §4's rotation attack, and beyond the paper the models'
sensitivity maps (SmoothGrad). One Ray task per seed, one results file per job.

Each job arrives as one JSON object: ``dataset``, ``subset``, ``runs`` (run id -> model spec, regime spec and
one checkpoint per seed, or per seed a list of member checkpoints) and the experiment's own settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from advbench.config.specs import model_spec_from_dict, regime_spec_from_dict
from advbench.data.registry import dataset_info
from advbench.evaluation import analyses
from advbench.evaluation.saliency import saliency_summary
from advbench.evaluation.scores import fgsm_scores
from advbench.jobs.common import Trained, load_model, subset_data, test_tensors, where, write_outputs
from advbench.models.architectures import Ensemble
from advbench.runtime.ray import RaySettings, run_tasks
from advbench.runtime.task import init_task, task_device
from advbench.training.loop import task_seed


def trained_runs(job: dict, index: int) -> dict[str, Trained | list[Trained]]:
    """Every run of the job at seed position ``index`` (absolute checkpoint paths)."""
    out: dict[str, Trained | list[Trained]] = {}
    for run, entry in job["runs"].items():
        spec, regime = model_spec_from_dict(entry["model"]), regime_spec_from_dict(entry["regime"])
        ckpt = entry["checkpoints"][index]
        paths = ckpt if isinstance(ckpt, list) else [ckpt]
        trained = [Trained(spec, regime, str(Path(p).resolve())) for p in paths]
        out[run] = trained if isinstance(ckpt, list) else trained[0]
    return out


def _result(rows: list[dict], device: str, **extra: list[dict]) -> dict:
    return {"rows": rows, **where(device), **extra}


def agreement_task(
    data: dict,
    runs: dict,
    source: str,
    dataset: str,
    seed: int,
    eps: float,
    batch_size: int,
    settings: RaySettings,
) -> dict:
    """F15-F17 for one seed: every model's predictions on the source's FGSM test examples."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    models = {run: load_model(t, device) for run, t in runs.items()}
    x, y = test_tensors(data, runs[source].spec, device)
    rows = analyses.agreement(models, source, x, y, eps, batch_size)
    return _result([{"dataset": dataset, "seed": seed, **r} for r in rows], device)


def sweep_task(
    data: dict,
    runs: dict,
    dataset: str,
    seed: int,
    label: int,
    eps_max: float,
    steps: int,
    settings: RaySettings,
) -> dict:
    """F18 for one seed: outputs along the FGSM direction of the first test example of class ``label``."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    ((run, trained),) = runs.items()
    x, y = test_tensors(data, trained.spec, device)
    index = int(torch.nonzero(y == label)[0])
    eps = torch.linspace(-eps_max, eps_max, steps, dtype=x.dtype, device=device)
    logits = analyses.logit_sweep(load_model(trained, device), x[index], y[index], eps)
    keys = {"dataset": dataset, "seed": seed, "run": run, "example": index, "label": label}
    rows = [
        {**keys, "eps": float(e), "class": c, "logit": float(v)}
        for e, row in zip(eps.tolist(), logits, strict=True)
        for c, v in enumerate(row.tolist())
    ]
    return _result(rows, device)


def ensemble_task(
    data: dict,
    runs: dict,
    dataset: str,
    seed: int,
    eps: Sequence[float],
    batch_size: int,
    settings: RaySettings,
) -> dict:
    """F20 for one seed: FGSM crafted on the whole ensemble vs on its first member, scored on the ensemble."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    ((run, members),) = runs.items()
    models = [load_model(t, device) for t in members]
    ensemble = Ensemble(models).eval()
    x, y = test_tensors(data, members[0].spec, device)
    rows = []
    for attacked, source in (("ensemble", ensemble), ("member", models[0])):
        scores = fgsm_scores(source, ensemble, x, y, eps, [False], batch_size)
        keys = {"dataset": dataset, "seed": seed, "run": run, "members": len(models), "attacked": attacked}
        rows += [{**keys, "attack": "fgsm", "label_source": "true", **s} for s in scores]
    return _result(rows, device)


def rubbish_inputs(dataset: str, seed: int, n: int) -> torch.Tensor:
    """The rubbish experiment's ``n`` N(0, I) inputs of ``dataset`` and ``seed`` (shared by its models)."""
    gen = torch.Generator().manual_seed(task_seed(dataset, "rubbish", seed))
    return torch.randn((n, dataset_info(dataset).n_inputs), generator=gen)


def rubbish_task(
    data: dict,
    runs: dict,
    dataset: str | None,
    seed: int,
    n: int,
    n_by_dataset: dict[str, int],
    threshold: float,
    batch_size: int,
    settings: RaySettings,
) -> dict:
    """F21-F25 for one seed: N(0, I) inputs in each model's input space (the same noise for every model
    of a dataset and seed; ``n_by_dataset`` overrides ``n``), scored by each model. Needs no data."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    rows, classes = [], []
    for trained in runs.values():
        name = trained.spec.dataset
        model = load_model(trained, device)
        noise = rubbish_inputs(name, seed, n_by_dataset.get(name, n)).to(device)
        summary, hist = analyses.rubbish(model, noise, threshold, batch_size)
        keys = {"dataset": name, "seed": seed, "model": trained.spec.name, "regime": trained.regime.name}
        rows.append(keys | summary)
        classes += [keys | h for h in hist]
    return _result(rows, device, classes=classes)


def rotation_task(
    data: dict,
    runs: dict,
    dataset: str,
    seed: int,
    angles: Sequence[float],
    batch_size: int,
    settings: RaySettings,
) -> dict:
    """§4 for one seed: every run's test set rotated toward a higher loss, in a random direction, and FGSM
    of the same L2 size (the random directions are the same for every model of a dataset and seed)."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    rows = []
    for trained in runs.values():
        model = load_model(trained, device)
        x, y = test_tensors(data, trained.spec, device)
        gen = torch.Generator().manual_seed(task_seed(dataset, "rotation", seed))
        shape = dataset_info(trained.spec.dataset).shape
        keys = {"dataset": dataset, "seed": seed, "model": trained.spec.name, "regime": trained.regime.name}
        rows += [keys | r for r in analyses.rotation(model, x, y, shape, angles, batch_size, gen)]
    return _result(rows, device)


def saliency_inputs(data: dict, trained: Trained, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test examples a run sees (its classes only)."""
    x, y = test_tensors(data, trained.spec, device)
    return x[:n], y[:n]


def saliency_task(
    data: dict,
    runs: dict,
    dataset: str,
    seed: int,
    n: int,
    samples: int,
    noise: float,
    batch_size: int,
    settings: RaySettings,
) -> dict:
    """Sensitivity maps for one seed: every run's gradient and SmoothGrad maps of its first ``n`` test
    examples, scored by their alignment with the inputs (:mod:`advbench.evaluation.saliency`); the
    SmoothGrad noise is the same for every model of a dataset and seed."""
    init_task(settings.num_cpus_per_task, settings.flush_denormal)
    device = task_device(settings.num_gpus_per_task)
    rows = []
    for trained in runs.values():
        x, y = saliency_inputs(data, trained, n, device)
        gen = torch.Generator().manual_seed(task_seed(dataset, "saliency", seed))
        summary = saliency_summary(load_model(trained, device), x, y, samples, noise, batch_size, gen)
        keys = {"dataset": dataset, "seed": seed, "model": trained.spec.name, "regime": trained.regime.name}
        rows.append(keys | summary)
    return _result(rows, device)


# experiment -> its task function and the job keys it takes
TASKS: dict[str, tuple[Callable[..., dict], tuple[str, ...]]] = {
    "agreement": (agreement_task, ("source", "eps", "batch_size")),
    "sweep": (sweep_task, ("label", "eps_max", "steps")),
    "ensemble": (ensemble_task, ("eps", "batch_size")),
    "rubbish": (rubbish_task, ("n", "n_by_dataset", "threshold", "batch_size")),
    "rotation": (rotation_task, ("angles", "batch_size")),
    "saliency": (saliency_task, ("n", "samples", "noise", "batch_size")),
}


def run_experiment(
    name: str,
    job: dict,
    data_path: Path | None,
    seeds: Sequence[int],
    outs: dict[str, Path],
    settings: RaySettings,
) -> None:
    """One Snakemake job of experiment ``name``: a task per seed, then its results file(s) (``outs``: kind
    -> path; the rubbish job writes ``rubbish`` and ``rubbish_classes``). ``data_path``: the prepared
    dataset, or ``None`` for the rubbish job (noise inputs need no data)."""
    fn, keys = TASKS[name]
    data = subset_data(data_path, job.get("subset", {})) if data_path is not None else {}
    shared: dict = {
        "data": data,
        "dataset": job["dataset"],
        "settings": settings,
        **{k: job[k] for k in keys},
    }
    per_task = [{"seed": s, "runs": trained_runs(job, i)} for i, s in enumerate(seeds)]
    outputs = run_tasks(fn, shared, per_task, settings)
    wildcards = {"dataset": str(job["dataset"]), "runs": ",".join(job["runs"])}
    for field, (kind, out) in zip(("rows", "classes"), outs.items(), strict=False):
        write_outputs(outputs, kind, out, name, wildcards, settings, field=field)
