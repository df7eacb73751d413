"""FGSM against its peers: advbench, torchattacks' ``FGSM`` and ART's ``FastGradientMethod`` attack the same
model on the same images with the same batch size; throughput, agreement of their adversarial examples,
and the physical floor (one forward + backward w.r.t. the input, nothing else).

All three clip to [0, 1] (torchattacks always does), with true labels and eps = .25.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advbench.attacks import attack_mode, fgsm
from advbench.bench.timing import median, paired_range, time_interleaved

EPS = 0.25
Attack = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
IMPLS = ("advbench", "torchattacks", "art")


def batched(attack: Attack, batch_size: int) -> Attack:
    """Apply ``attack`` to consecutive batches and concatenate the results."""

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [attack(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        )

    return run


def forward_backward(model: nn.Module) -> Attack:
    """The floor: one forward and one backward of the summed loss w.r.t. the input, in attack mode."""

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with attack_mode(model), torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
        return grad

    return run


def peer_attacks(model: nn.Module, n_classes: int, batch_size: int, device: str) -> dict[str, Attack]:
    """The three implementations of FGSM, each called the way its users call it."""
    import torchattacks
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    logging.getLogger("art").setLevel(logging.WARNING)  # ART logs every batch's success rate
    ta = torchattacks.FGSM(model, eps=EPS)
    classifier = PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=(model_inputs(model),),
        nb_classes=n_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if device.startswith("cuda") else "cpu",
    )
    art = FastGradientMethod(classifier, norm=np.inf, eps=EPS, batch_size=batch_size)

    def art_run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # ART works on NumPy arrays
        return torch.from_numpy(art.generate(x.cpu().numpy(), y=y.cpu().numpy())).to(x.device)

    return {
        "advbench": batched(lambda xb, yb: fgsm(model, xb, yb, EPS, clip=True), batch_size),
        "torchattacks": batched(ta, batch_size),
        "art": art_run,
    }


def model_inputs(model: nn.Module) -> int:
    return next(m for m in model.modules() if isinstance(m, nn.Linear)).in_features


def fgsm_rows(
    name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, reps: int, warmup: int
) -> list[dict]:
    """Throughput of each implementation, advbench's speed-up over each peer, the floor ratio and the
    largest difference between advbench's adversarial examples and each peer's."""
    model.eval()
    device = str(x.device)
    n_classes = int(model(x[:1]).shape[1])
    attacks = peer_attacks(model, n_classes, batch_size, device)
    floor = batched(forward_backward(model), batch_size)
    fns = {impl: (lambda a=attack: a(x, y)) for impl, attack in attacks.items()}
    times = time_interleaved(fns | {"floor": lambda: floor(x, y)}, reps, warmup, device)
    seconds = {k: median(v) for k, v in times.items()}
    keys = {"section": "fgsm", "model": name, "batch_size": batch_size}
    rows = [
        {**keys, "metric": f"throughput_{impl}", "value": len(x) / seconds[impl], "unit": "images/s"}
        for impl in IMPLS
    ]
    rows.append(
        {**keys, "metric": "throughput_floor", "value": len(x) / seconds["floor"], "unit": "images/s"}
    )
    rows += [
        {**keys, "metric": f"speedup_vs_{peer}", "value": seconds[peer] / seconds["advbench"], "unit": "x"}
        | paired_range(times[peer], times["advbench"])
        for peer in IMPLS[1:]
    ]
    rows.append(
        {**keys, "metric": "time_over_floor", "value": seconds["advbench"] / seconds["floor"], "unit": "x"}
        | paired_range(times["advbench"], times["floor"])
    )
    ours = attacks["advbench"](x, y)
    for peer in IMPLS[1:]:
        diff = float((ours - attacks[peer](x, y)).abs().max())
        rows.append({**keys, "metric": f"max_abs_diff_{peer}", "value": diff, "unit": "pixel"})
    return rows
