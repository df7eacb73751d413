"""Sensitivity maps: the gradient of log p_y against its closed form for softmax regression, SmoothGrad
against a hand-made average over the same noise, the alignment's cosine, and the job over seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advbench.config.specs import model_spec, regime_spec
from advbench.evaluation.saliency import alignment, gradient_map, saliency_summary, smoothgrad
from advbench.jobs.common import Trained
from advbench.jobs.experiments import saliency_task
from advbench.models.architectures import build
from advbench.results import checkpoints
from advbench.runtime.ray import RaySettings
from advbench.training.loop import task_seed


def softmax_regression(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(12, 4).double()


def closed_form(model: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d log softmax(Wx + b)_y / dx = W_y - sum_k p_k W_k."""
    w = model.weight.detach()
    p = torch.softmax(x @ w.T + model.bias.detach(), dim=1)
    return w[y] - p @ w


def test_the_gradient_map_is_the_closed_form_of_softmax_regression():
    model = softmax_regression()
    x, y = torch.rand(5, 12, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0])
    torch.testing.assert_close(gradient_map(model, x, y), closed_form(model, x, y))


def test_smoothgrad_averages_the_closed_form_over_the_same_noise():
    model = softmax_regression()
    x, y = torch.rand(3, 12, dtype=torch.float64), torch.tensor([1, 2, 3])
    x[0] *= 4.0  # a wider range: its noise is four times as large
    samples, noise = 7, 0.2
    got = smoothgrad(model, x, y, samples, noise, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    sigma = noise * (x.max(dim=1).values - x.min(dim=1).values)[:, None]
    draws = [torch.randn(x.shape, generator=gen).double() for _ in range(samples)]
    expected = sum(closed_form(model, x + sigma * z, y) for z in draws) / samples
    torch.testing.assert_close(got, expected)
    zero = smoothgrad(model, x, y, 3, 0.0, torch.Generator().manual_seed(5))
    torch.testing.assert_close(zero, closed_form(model, x, y))  # no noise: the gradient itself
    with pytest.raises(ValueError, match="samples must be >= 1"):
        smoothgrad(model, x, y, 0, noise, gen)


def test_the_maps_leave_model_and_input_as_they_were(small_mlp):
    small_mlp.train()
    x, y = torch.rand(4, 20), torch.tensor([0, 1, 2, 0])
    before = x.clone()
    a = smoothgrad(small_mlp, x, y, 3, 0.1, torch.Generator().manual_seed(0))
    b = smoothgrad(small_mlp, x, y, 3, 0.1, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)  # eval mode inside: dropout draws no masks
    assert small_mlp.training and all(p.requires_grad for p in small_mlp.parameters())
    assert torch.equal(x, before)


def test_alignment_is_the_cosine_with_the_input():
    x = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 3.0, 4.0], [1.0, 1.0, 1.0]])
    maps = torch.tensor([[2.0, 4.0, 0.0], [0.0, 5.0, 0.0], [0.0, -3.0, -4.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(alignment(x, maps), torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=torch.float64))
    tilted = alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    assert float(tilted) == pytest.approx(2**-0.5)


def test_the_summary_means_the_alignments_over_batches():
    model = softmax_regression().float()
    x, y = torch.rand(10, 12), torch.arange(10) % 4
    out = saliency_summary(model, x, y, 4, 0.15, 3, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    grads, smooth = [], []
    for xb, yb in zip(x.split(3), y.split(3), strict=True):  # the same batches draw the same noise
        grads.append(gradient_map(model, xb, yb))
        smooth.append(smoothgrad(model, xb, yb, 4, 0.15, gen))
    g, s = torch.cat(grads), torch.cat(smooth)
    assert out["n"] == 10 and out["samples"] == 4 and out["noise"] == 0.15
    assert out["gradient_alignment"] == pytest.approx(float(alignment(x, g).mean()))
    assert out["smoothgrad_alignment"] == pytest.approx(float(alignment(x, s).mean()))
    assert out["gradient_smoothgrad_cosine"] == pytest.approx(float(alignment(g, s).mean()))
    assert out["gradient_smoothgrad_cosine"] < 1.0  # the noise changed the maps of the nonlinear softmax


def test_the_job_scores_every_run_on_the_same_noise(tmp_path):
    """Two runs whose models are the same get the same scores (same inputs, same SmoothGrad noise); a
    seed of its own gives other noise; rows carry the run's keys."""
    spec = model_spec("maxout", {"arch": "maxout", "units": 6, "pieces": 2, "init_range": 0.05})
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    checkpoints.save(build(spec).state_dict(), path, {})
    runs = {
        f"maxout-{name}": Trained(spec, regime_spec(name, {"kind": "clean"}), str(path))
        for name in ("clean", "copy")
    }
    rng = np.random.default_rng(0)
    data = {"x_test": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), "y_test": np.arange(40) % 10}
    settings = RaySettings(use_ray=False)
    args = {"data": data, "runs": runs, "dataset": "mnist", "n": 25, "samples": 3, "noise": 0.15}
    rows = saliency_task(**args, seed=0, batch_size=10, settings=settings)["rows"]
    assert [(r["model"], r["regime"], r["n"], r["seed"]) for r in rows] == [
        ("maxout", "clean", 25, 0),
        ("maxout", "copy", 25, 0),
    ]
    scores = ("gradient_alignment", "smoothgrad_alignment", "gradient_smoothgrad_cosine")
    assert all(rows[0][k] == rows[1][k] for k in scores)
    other = saliency_task(**args, seed=1, batch_size=10, settings=settings)["rows"][0]
    assert other["gradient_alignment"] == pytest.approx(rows[0]["gradient_alignment"])  # no noise in it
    assert other["smoothgrad_alignment"] != rows[0]["smoothgrad_alignment"]
    assert task_seed("mnist", "saliency", 0) != task_seed("mnist", "saliency", 1)
