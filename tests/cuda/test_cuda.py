"""The CUDA path: training and attack jobs through Ray on a GPU, and FGSM on CUDA against the CPU.

Skipped where torch sees no CUDA device (this project's CI machine); run on a GPU machine with
``pytest -m cuda``. Seeds are reproducible per device type, not across types: dropout masks come from
CUDA's random-number generator on a GPU and from the CPU's elsewhere, so a GPU run is compared with itself
(bitwise) and with the CPU only where no randomness enters (FGSM on a fixed model).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from advbench.attacks import fgsm, input_gradient
from advbench.config.specs import ModelSpec, model_spec, regime_spec
from advbench.data.inputs import to_float
from advbench.data.splits import load_splits
from advbench.jobs.attack import run_fgsm
from advbench.jobs.common import AttackSettings, Trained
from advbench.jobs.train import run_train
from advbench.models.architectures import build
from advbench.results.tables import read_meta, read_table
from advbench.runtime.ray import RaySettings

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

SPEC = model_spec(
    "maxout", {"arch": "maxout", "units": 240, "pieces": 5, "init_range": 0.05, "train": {"max_epochs": 2}}
)
SUBSET = {"n_train": 5000, "n_val": 200, "n_test": 500}  # 100 SGD steps: enough to leave chance (.9)


def _gpu_settings() -> RaySettings:
    return RaySettings(num_cpus=2, num_gpus=1, num_gpus_per_task=0.5, object_store_mb=100)


def _train(prepared: Path, out: Path, spec: ModelSpec = SPEC, subset: dict = SUBSET) -> list[Trained]:
    regime = regime_spec("adversarial", {"kind": "fgsm"})
    ckpts = [str(out / f"seed={s}.safetensors") for s in (0, 1)]
    run_train(prepared, spec, regime, [0, 1], ckpts, out / "curves.parquet", "mnist", subset, _gpu_settings())
    return [Trained(spec, regime, c) for c in ckpts]


def _assert_same_weights(first: list[Trained], second: list[Trained]) -> None:
    for a, b in zip(first, second, strict=True):
        sa, sb = load_file(a.checkpoint), load_file(b.checkpoint)
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), "same seed, same GPU: bitwise the same weights"


def test_training_on_the_gpu_is_reproducible_and_learns(prepared, tmp_path):
    first = _train(prepared, tmp_path / "a")
    second = _train(prepared, tmp_path / "b")
    assert read_meta(tmp_path / "a" / "curves.parquet")["devices"] == ["cuda"]
    _assert_same_weights(first, second)
    curves = read_table(tmp_path / "a" / "curves.parquet", "curves").to_pylist()
    finals = [r for r in curves if r["epoch"] == max(c["epoch"] for c in curves)]
    assert len(finals) == 2 and all(r["val_error"] < 0.6 for r in finals), curves


def test_an_attack_job_on_the_gpu_scores_like_the_cpu(prepared, tmp_path):
    trained = _train(prepared, tmp_path / "train")
    attack = AttackSettings(eps=(0.0, 0.1, 0.25), clips=(False, True), batch_size=200)
    errors = {}
    for device, settings in (("cuda", _gpu_settings()), ("cpu", RaySettings(num_cpus=2, num_gpus=0))):
        out = tmp_path / f"{device}.parquet"
        run_fgsm(prepared, trained, trained, [0, 1], out, "mnist", SUBSET, attack, settings)
        rows = read_table(out, "attack").to_pylist()
        errors[device] = {(r["seed"], r["eps"], r["clipped"]): r["n_wrong"] for r in rows}
        assert read_meta(out)["devices"] == [device]
    assert errors["cuda"].keys() == errors["cpu"].keys()
    for key, n_wrong in errors["cpu"].items():  # a few signs of near-zero gradients may differ
        assert abs(errors["cuda"][key] - n_wrong) <= 2, (key, errors)


def test_fgsm_on_cuda_matches_the_cpu_wherever_the_gradient_is_not_tiny(prepared):
    splits = load_splits(prepared, n_test=1000)
    x, y = torch.from_numpy(to_float(splits.x_test)), torch.from_numpy(splits.y_test).long()
    spec = model_spec("maxout", {"arch": "maxout", "units": 240, "pieces": 5, "init_range": 0.05})
    model = build(spec, torch.Generator().manual_seed(0))
    grad = input_gradient(model.eval(), x, y)
    on_cpu = fgsm(model, x, y, 0.25, clip=True)
    on_gpu = fgsm(model.cuda(), x.cuda(), y.cuda(), 0.25, clip=True).cpu()
    clear = grad.abs() > 1e-4 * grad.abs().amax(dim=1, keepdim=True)  # signs that rounding cannot flip
    assert clear.float().mean() > 0.9
    assert torch.equal(on_gpu[clear], on_cpu[clear])
    assert (on_gpu - on_cpu).abs().amax() <= 0.5  # elsewhere at most the two opposite steps


def test_googlenet_trains_and_is_attacked_on_the_gpu_under_deterministic_algorithms(prepared, tmp_path):
    """Tasks set ``torch.use_deterministic_algorithms(True)``, under which CUDA raises in the backward of
    bilinear ``interpolate`` and adaptive pooling; GoogLeNet avoids both, so it trains adversarially (input
    gradients in every step) and is attacked on a GPU, the same weights twice."""
    train = {"max_epochs": 1, "batch_size": 50, "monitor_train": 100}
    spec = model_spec("googlenet", {"arch": "googlenet", "resize": 32, "train": train})
    subset = {"n_train": 300, "n_val": 100, "n_test": 200}
    first = _train(prepared, tmp_path / "a", spec, subset)
    second = _train(prepared, tmp_path / "b", spec, subset)
    assert read_meta(tmp_path / "a" / "curves.parquet")["devices"] == ["cuda"]
    _assert_same_weights(first, second)
    attack = AttackSettings(eps=(0.0, 0.25), clips=(True,), batch_size=100)
    out = tmp_path / "attack.parquet"
    run_fgsm(prepared, first, first, [0, 1], out, "mnist", subset, attack, _gpu_settings())
    rows = read_table(out, "attack").to_pylist()
    assert read_meta(out)["devices"] == ["cuda"]
    cells = sorted((r["seed"], r["eps"], r["n"]) for r in rows)
    assert cells == [(s, e, 200) for s in (0, 1) for e in (0.0, 0.25)]  # every test example, both seeds


def test_stacked_seeds_on_the_gpu_train_as_one_task_per_seed_does_without_dropout(prepared, tmp_path):
    """``ray.stack_seeds: auto`` stacks a GPU job's seeds; without dropout (no random draws) the stacked
    weights equal one task per seed's to rounding."""
    from dataclasses import replace

    no_dropout = replace(SPEC, input_keep=1.0, input_scale=1.0, hidden_keep=1.0, hidden_scale=1.0)
    regime = regime_spec("adversarial", {"kind": "fgsm"})
    states = {}
    for mode in ("auto", "never"):
        out = tmp_path / mode
        ckpts = [str(out / f"seed={s}.safetensors") for s in (0, 1)]
        settings = replace(_gpu_settings(), stack_seeds=mode)
        run_train(
            prepared, no_dropout, regime, [0, 1], ckpts, out / "curves.parquet", "mnist", SUBSET, settings
        )
        states[mode] = [load_file(c) for c in ckpts]
    for stacked, alone in zip(states["auto"], states["never"], strict=True):
        for k in alone:
            torch.testing.assert_close(stacked[k], alone[k], rtol=1e-3, atol=1e-4)
