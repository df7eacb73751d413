"""What makes training and evaluation cheaper without changing a result: shared clean passes in
``fgsm_scores``, the noise controls' one stacked pass, glibc malloc thresholds, longest-first scheduling."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from advbench.attacks import attack_mode, fgsm
from advbench.config.loading import load_config
from advbench.config.specs import model_spec, regime_spec
from advbench.evaluation.scores import fgsm_scores
from advbench.models.architectures import build
from advbench.models.heads import probabilities, train_loss
from advbench.plan.priorities import train_cost, train_priorities
from advbench.training.loop import noise, objective

EPS, CLIPS = [0.0, 0.1, 0.25], [False, True]


def _direct(source, target, x, y) -> list[dict]:
    """Every cell computed on its own: FGSM on ``source``, one forward of ``target`` per cell."""
    rows = []
    for e in EPS:
        for c in CLIPS:
            x_adv = fgsm(source, x, y, e, clip=c)
            with attack_mode(target), torch.inference_mode():
                probs = probabilities(target, target(x_adv))
            conf, pred = probs.max(dim=1)
            rows.append(
                {"eps": e, "clipped": c, "n_wrong": int((pred != y).sum()), "conf": float(conf.sum())}
            )
    return rows


def _count_forwards(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("transfer", [False, True])
def test_fgsm_scores_share_the_clean_pass_and_change_no_result(small_mlp, transfer):
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(96, 20, generator=g), torch.randint(0, 3, (96,), generator=g)
    target = small_mlp
    if transfer:
        torch.manual_seed(5)
        target = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    expected = _direct(small_mlp, target, x, y)
    calls = _count_forwards(target)
    rows = fgsm_scores(small_mlp, target, x, y, EPS, CLIPS, batch_size=32)
    for row, want in zip(rows, expected, strict=True):
        assert (row["eps"], row["clipped"], row["n_wrong"]) == (want["eps"], want["clipped"], want["n_wrong"])
        assert row["mean_conf"] * 96 == pytest.approx(want["conf"], rel=1e-6)
    # per batch and target: one clean pass (the gradient's own when the target is the source) and the four
    # perturbed cells; computed cell by cell it would be six passes, plus the gradient's
    assert calls[0] == 3 * 5


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_tuned_malloc_serves_large_tensors_from_the_heap():
    """A live 64 MiB tensor: mapped by itself with glibc's defaults, from the heap when tuned."""
    fields = [
        "arena",
        "ordblks",
        "smblks",
        "hblks",
        "hblkhd",
        "usmblks",
        "fsmblks",
        "uordblks",
        "fordblks",
        "keepcost",
    ]
    probe = (
        "import ctypes, sys, torch\n"
        "from advbench.runtime.allocator import tune_allocator\n"
        f"class Info(ctypes.Structure): _fields_ = [(n, ctypes.c_size_t) for n in {fields!r}]\n"
        "libc = ctypes.CDLL('libc.so.6'); libc.mallinfo2.restype = Info\n"
        "if sys.argv[1] == 'tuned': assert tune_allocator() and tune_allocator()\n"
        "t = torch.empty(16 * 2**20); t.fill_(1.0)\n"
        "print(libc.mallinfo2().hblkhd >= 64 * 2**20)\n"
    )
    mapped = {
        mode: subprocess.run(
            [sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True, cwd=REPO
        ).stdout.split()[-1]
        for mode in ("default", "tuned")
    }
    assert mapped == {"default": "True", "tuned": "False"}


def test_longest_training_jobs_get_the_highest_priority():
    config = load_config(REPO / "config.yaml")
    short = {"max_epochs": 2, "n_train": 10_000}  # the 1600-unit maxouts and an ensemble on a small budget
    config["runs"] += [
        {"model": "maxout1600", "regime": "clean", "train": short},
        {"model": "maxout1600", "regime": "adversarial", "train": short},
        {"model": "maxout_member", "regime": "clean", "members": 12, "train": short},
    ]
    priority = train_priorities(config)
    assert max(priority, key=priority.get) == "maxout1600-adversarial"
    assert priority["maxout1600-clean"] > priority["maxout-clean"] > priority["softmax-clean"] == 1
    assert priority["maxout-adversarial"] > priority["maxout-clean"]  # two passes per step
    members = train_cost(config, "maxout_member-clean") / train_cost(config, "maxout-clean")
    epochs = config["models"]["maxout"]["train"]["max_epochs"]
    assert members == pytest.approx(12 * 2 * 10_000 / (epochs * 50_000))  # 12 members, 2 epochs on 10k
    paper = load_config(REPO / "config.yaml", REPO / "presets/paper.yaml")
    paper_priority = train_priorities(paper)
    assert max(paper_priority, key=paper_priority.get).startswith(("conv_maxout", "googlenet"))


def _two_pass_noise_gradient(model, x, y, regime, seed):
    """The noise mixture's parameter gradient from two separate passes, with the same noise."""
    torch.manual_seed(seed)
    x_noisy = x + noise(x, regime)
    clean, noisy = (train_loss(model, model(inputs), y, "none") for inputs in (x, x_noisy))
    mixed = regime.alpha * clean + (1 - regime.alpha) * noisy
    return torch.autograd.grad(mixed.mean(), list(model.parameters())), mixed.detach()


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_noise_objective_in_one_pass_equals_two_passes(head, batch_norm):
    """Stacking the clean and noisy batches changes no gradient (dropout off so both runs are
    deterministic); with batch norm the objective keeps two passes, since stacking would change it."""
    regime = regime_spec("noise", {"kind": "noise_sign", "alpha": 0.3, "eps": 0.25})
    entry = {"arch": "maxout", "units": 16, "pieces": 3, "output": head}
    entry |= {"input_keep": 1.0, "hidden_keep": 1.0}
    model = build(model_spec("m", entry), torch.Generator().manual_seed(0)).train()
    if batch_norm:
        model = torch.nn.Sequential(torch.nn.BatchNorm1d(784), model)
        model.head = head  # heads.head_of reads the outermost module
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(20, 784, generator=g), torch.randint(0, 10, (20,), generator=g)
    torch.manual_seed(11)
    values = objective(model, x, y, regime)
    got = [p.grad.clone() for p in model.parameters()]
    expected, expected_values = _two_pass_noise_gradient(model, x, y, regime, seed=11)
    assert torch.allclose(values, expected_values, atol=1e-6)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_lenet_macs_count_its_layers():
    """The priority estimate of the tutorial's CNN is its multiply-add count, layer by layer on a real
    forward pass, not the large image nets' constant."""
    import torch

    from advbench.config.specs import model_spec
    from advbench.models.architectures import build
    from advbench.plan.priorities import IMAGE_MODEL_MACS, forward_macs

    spec = model_spec("lenet", {"arch": "lenet"})
    model, x, counted = build(spec), torch.zeros(1, 1, 28, 28), 0
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, torch.nn.Conv2d):
            counted += x.numel() * layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
    counted += sum(m.in_features * m.out_features for m in model.classifier if isinstance(m, torch.nn.Linear))
    assert forward_macs(spec) == counted == 480_500 and counted < IMAGE_MODEL_MACS
