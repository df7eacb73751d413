"""Seeds trained as one stacked model: the same computation as one task per seed where no dropout draws
differ, the same training within the seeds' noise where they do, resumable, and chosen per device."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from test_train_state import Killed, StopAfter, _tensors  # the resume tests' synthetic data and kills

from advbench.config.specs import model_spec, regime_spec
from advbench.data.splits import load_splits
from advbench.jobs.train import run_train, stacks, train_tensors
from advbench.models.architectures import build
from advbench.results.tables import read_table
from advbench.runtime.ray import RaySettings
from advbench.training.loop import Run, Sgd, Tensors, train_model
from advbench.training.stacked import StackedMaxout, live_stack, stackable, train_stacked
from advbench.training.state import DiskStore, fingerprint, read_document, spec_dicts

SEEDS = [11, 12, 13]
TRAIN = {"max_epochs": 4, "batch_size": 50, "retrain": True, "retrain_max_epochs": 3}
NO_DROPOUT = {"input_keep": 1.0, "input_scale": 1.0, "hidden_keep": 1.0, "hidden_scale": 1.0}


def _spec(dropout: bool = True, **train):
    entry = {"arch": "maxout", "units": 16, "pieces": 2, "init_range": 0.1, "train": TRAIN | train}
    return model_spec("maxout", entry if dropout else entry | NO_DROPOUT)


def _rows(curves: list[dict]) -> list[tuple]:
    return [(r["stage"], r["epoch"], r["is_best"]) for r in curves]


def test_the_stack_computes_every_models_outputs():
    spec = _spec()
    models = [build(spec, torch.Generator().manual_seed(s)).eval() for s in SEEDS]
    stacked = StackedMaxout(models).eval()
    x = torch.rand(len(SEEDS), 20, 784)
    out = stacked(x)
    assert out.shape == (len(SEEDS), 20, 10)
    for i, model in enumerate(models):
        torch.testing.assert_close(out[i], model(x[i]), rtol=1e-5, atol=1e-6)
        assert stacked.state_dict_of(i).keys() == model.state_dict().keys()


REGIMES = {
    "clean": {"kind": "clean"},
    "fgsm": {"kind": "fgsm", "alpha": 0.5, "eps": 0.25, "grad_in_train_mode": True},
    "fgsm_eval_grad": {"kind": "fgsm", "alpha": 0.5, "eps": 0.1, "clip": True, "grad_in_train_mode": False},
}


@pytest.mark.parametrize("regime_name", list(REGIMES))
@pytest.mark.parametrize("patience", [100, 1])  # 1: seeds end stage 1 at epochs of their own
def test_without_dropout_the_stack_trains_each_seed_as_its_own_task_does(regime_name, patience):
    spec, data = _spec(dropout=False, patience=patience), _tensors()
    regime = regime_spec(regime_name, REGIMES[regime_name])
    stacked = train_stacked(spec, regime, data, SEEDS, [""] * len(SEEDS), [None] * len(SEEDS))
    for seed, (state, curves) in zip(SEEDS, stacked, strict=True):
        alone, alone_curves = train_model(spec, regime, data, seed)
        assert _rows(curves) == _rows(alone_curves)
        for k in alone:  # the same arithmetic in batched matrix multiplies: equal to rounding
            torch.testing.assert_close(state[k], alone[k], rtol=1e-4, atol=1e-5)
        for row, ref in zip(curves, alone_curves, strict=True):
            assert row["val_error"] == pytest.approx(ref["val_error"], abs=0.01)


def test_a_seed_whose_stage_is_over_leaves_the_stack_and_is_not_computed():
    spec, data, cpu = _spec(), _tensors(), torch.device("cpu")
    regime = regime_spec("clean", REGIMES["clean"])
    runs = []
    for seed in SEEDS:
        gen = torch.Generator().manual_seed(seed)
        model = build(spec, gen)
        runs.append(Run(spec, regime, data, gen, "", model, Sgd(model, spec)))
    stack = live_stack(None, runs, [False] * 3, cpu)
    assert live_stack(stack, runs, [False] * 3, cpu) is stack  # the same seeds: the same stack
    smaller = live_stack(stack, runs, [False, True, False], cpu)
    assert smaller.seeds == [0, 2] and all(p.shape[0] == 2 for p in smaller.model.stack)
    done_weights = {k: v.clone() for k, v in runs[1].model.state_dict().items()}
    done_gen = runs[1].gen.get_state()
    before = runs[2].model.state_dict()["net.1.linear.weight"].clone()
    smaller.epoch(data.x_train, data.y_train, regime, spec.train.lr, 0.5)
    smaller.unstack()
    for k, v in runs[1].model.state_dict().items():
        assert torch.equal(v, done_weights[k])
    assert torch.equal(runs[1].gen.get_state(), done_gen)  # it drew no minibatch order either
    assert not torch.equal(runs[2].model.state_dict()["net.1.linear.weight"], before)


def test_with_dropout_stacked_seeds_train_as_well_as_separate_ones_within_the_seeds_noise(prepared):
    spec = replace(_spec(max_epochs=8, retrain=False, batch_size=100), units=64, init_range=0.05)
    data = train_tensors(load_splits(prepared, n_train=3000, n_val=1000).as_dict(), spec, "cpu")
    regime = regime_spec("adversarial", REGIMES["fgsm"])
    seeds = [21, 22, 23, 24, 25]
    stacked = [c[-1]["val_error"] for _, c in train_stacked(spec, regime, data, seeds, [""] * 5, [None] * 5)]
    alone = [train_model(spec, regime, data, s)[1][-1]["val_error"] for s in seeds]
    assert max(alone) < 0.5 and max(stacked) < 0.5  # both learn (chance: 0.9)
    noise = (statistics.variance(alone) / 5 + statistics.variance(stacked) / 5) ** 0.5
    assert abs(statistics.mean(stacked) - statistics.mean(alone)) <= 3 * noise + 0.005


def _stores(tmp_path: Path, spec, regime, data: Tensors, killer: int | None, stop_at: int) -> list[DiskStore]:
    stores = []
    for i, seed in enumerate(SEEDS):
        store = StopAfter(
            tmp_path / f"seed={seed}.state", fingerprint(*spec_dicts(spec, regime), [seed], data)
        )
        store.stop_at = stop_at if i == killer else 0
        stores.append(store)
    return stores


@pytest.mark.parametrize(
    ("killer", "stop_at", "resumed_at"),
    [(2, 2, 2), (2, 5, 5), (0, 2, None)],  # every seed saved (stage 1, stage 2); only the first: start over
)
def test_a_stacked_job_resumes_bit_for_bit_when_its_seeds_states_agree(tmp_path, killer, stop_at, resumed_at):
    spec, data, regime = _spec(), _tensors(), regime_spec("fgsm", REGIMES["fgsm"])
    tags = [""] * len(SEEDS)
    reference = train_stacked(spec, regime, data, SEEDS, tags, [None] * len(SEEDS))
    with pytest.raises(Killed):
        train_stacked(spec, regime, data, SEEDS, tags, _stores(tmp_path, spec, regime, data, killer, stop_at))
    epochs = [read_document(tmp_path / f"seed={s}.state")["epoch"] for s in SEEDS]
    if resumed_at:
        assert epochs == [resumed_at] * 3
    else:  # killed between the seeds' saves of one epoch: the states disagree, the job starts over
        assert epochs == [stop_at, stop_at - 1, stop_at - 1]
    resumed = train_stacked(spec, regime, data, SEEDS, tags, _stores(tmp_path, spec, regime, data, None, 0))
    for (state, curves), (ref_state, ref_curves) in zip(resumed, reference, strict=True):
        assert all(torch.equal(state[k], ref_state[k]) for k in ref_state)
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in curves] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in ref_curves
        ]
        assert [r["stage"] for r in curves].count(2) >= 1


def test_stacking_is_chosen_per_device_for_the_jobs_it_can_stack():
    maxout, clean = _spec(), regime_spec("clean", {"kind": "clean"})
    cpu, gpu = RaySettings(), RaySettings(num_gpus_per_task=0.25)
    assert not stacks(cpu, maxout, clean, 5) and stacks(gpu, maxout, clean, 5)  # auto: on a GPU
    assert stacks(replace(cpu, stack_seeds="always"), maxout, clean, 5)
    assert not stacks(replace(gpu, stack_seeds="never"), maxout, clean, 5)
    assert not stacks(gpu, maxout, clean, 1)  # one seed: nothing to stack
    softmax = model_spec("softmax", {"arch": "softmax", "max_col_norm": None})
    static = regime_spec("static", {"kind": "static", "source_regime": "clean"})
    l1 = regime_spec("l1", {"kind": "clean", "l1_first_layer": 0.001})
    hidden = regime_spec("h", {"kind": "fgsm", "perturb": "hidden1"})
    for spec, regime in [(softmax, clean), (maxout, static), (maxout, l1), (maxout, hidden)]:
        assert not stackable(spec, regime)
        assert not stacks(replace(gpu, stack_seeds="always"), spec, regime, 5)


def test_a_stacked_job_writes_every_seeds_checkpoint_and_curves_through_ray(prepared, tmp_path):
    spec = model_spec("maxout", {"arch": "maxout", "units": 8, "pieces": 2, "train": {"max_epochs": 2}})
    regime = regime_spec("adversarial", {"kind": "fgsm"})
    seeds = [3, 1]
    ckpts = [str(tmp_path / f"seed={s}.safetensors") for s in seeds]
    settings = RaySettings(num_cpus=2, num_gpus=0, object_store_mb=100, stack_seeds="always")
    subset = {"n_train": 300, "n_val": 100, "n_test": 100}
    run_train(prepared, spec, regime, seeds, ckpts, tmp_path / "curves.parquet", "mnist", subset, settings)
    rows = read_table(tmp_path / "curves.parquet", "curves").to_pylist()
    assert [(r["seed"], r["epoch"]) for r in rows] == [(3, 1), (3, 2), (1, 1), (1, 2)]
    assert all(Path(c).exists() and not Path(c).with_suffix(".state").exists() for c in ckpts)
