"""The paper's analyses beyond error rates: cross-model agreement (§8, F15-F17), logits along the FGSM
direction (Fig. 4, F18) and rubbish-class noise (App. A, F21-F25)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advbench.attacks import fgsm
from advbench.config.specs import model_spec
from advbench.evaluation import analyses
from advbench.models.architectures import build


def linear(seed: int) -> nn.Module:
    model = build(model_spec("softmax", {"arch": "softmax"}))
    with torch.no_grad():
        model.linear.weight.normal_(generator=torch.Generator().manual_seed(seed))
    return model.eval()


class Constant(nn.Module):
    """Outputs the same logits for every input (a model that ignores its input)."""

    def __init__(self, logits: list[float], head: str = "softmax") -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


@pytest.fixture()
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(200, 784, generator=g), torch.randint(0, 10, (200,), generator=g)


def _rows(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["reference"], r["observer"], r["condition"]): r for r in rows}


def test_agreement_counts_against_explicit_predictions(data):
    x, y = data
    models = {"a": linear(0), "b": linear(1), "copy": linear(0)}
    rows = _rows(analyses.agreement(models, "a", x, y, 0.25, batch_size=64))
    x_adv = fgsm(models["a"], x, y, 0.25)
    pred = {k: m(x_adv).argmax(dim=1) for k, m in models.items()}
    wrong_a, wrong_b = pred["a"] != y, pred["b"] != y
    row = rows[("a", "b", "reference_wrong")]
    assert row["n"] == int(wrong_a.sum()) and row["n_agree"] == int((pred["b"] == pred["a"])[wrong_a].sum())
    both = rows[("a", "b", "both_wrong")]
    assert both["n"] == int((wrong_a & wrong_b).sum())
    assert both["rate"] == pytest.approx(both["n_agree"] / both["n"])
    assert rows[("a", "copy", "reference_wrong")]["rate"] == 1.0  # an identical observer always agrees
    assert len(rows) == 3 * 2 * 2  # every ordered pair, both conditions


def test_logit_sweep_of_a_linear_model_is_linear_in_eps(data):
    x, y = data
    model = linear(2)
    eps = torch.linspace(-0.5, 0.5, 11)
    logits = analyses.logit_sweep(model, x[0], y[0], eps)
    assert logits.shape == (11, 10)
    assert torch.allclose(logits[5], model(x[:1])[0], atol=1e-5)  # eps = 0 is the clean example
    second_difference = logits[2:] - 2 * logits[1:-1] + logits[:-2]
    assert second_difference.abs().max() < 1e-4
    # moving along +sign(grad) lowers the true class's logit relative to the others
    margin = logits[:, y[0]] - logits.max(dim=1).values
    assert margin[-1] < margin[5]


def test_logit_sweep_of_the_maxout_is_piecewise_linear(data):
    x, y = data
    model = build(
        model_spec("maxout", {"arch": "maxout", "units": 16, "pieces": 3}), torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.2, generator=torch.Generator().manual_seed(1))
    eps = torch.linspace(-0.5, 0.5, 401)
    logits = analyses.logit_sweep(model.eval(), x[0], y[0], eps)
    second_difference = (logits[2:] - 2 * logits[1:-1] + logits[:-2]).abs().amax(dim=1)
    kinks = int((second_difference > 1e-3).sum())
    assert 0 < kinks < len(eps) // 4  # linear between a few kinks, not smooth everywhere


def test_rubbish_counts_confident_noise(data):
    noise = torch.randn(50, 784)
    confident = Constant([0, 0, 0, 5.0, 0, 0, 0, 0, 0, 0])  # p(3) = e^5 / (e^5 + 9) > .5
    summary, classes = analyses.rubbish(confident, noise, 0.5, batch_size=16)
    p3 = torch.softmax(confident.logits, dim=0)[3].item()
    assert summary["n_confident"] == 50 and summary["error"] == 1.0
    assert summary["mean_conf"] == pytest.approx(p3, rel=1e-6)
    assert classes[3]["n_predicted"] == 50 and classes[3]["share"] == 1.0
    assert sum(c["n_predicted"] for c in classes) == 50


def test_rubbish_with_no_confident_output_has_no_confidence(data):
    unsure = Constant([-3.0] * 10, head="sigmoid")  # every independent unit at sigmoid(-3) < .5
    summary, classes = analyses.rubbish(unsure, torch.randn(20, 784), 0.5, batch_size=8)
    assert summary["error"] == 0.0 and summary["mean_conf"] is None
    assert all(c["n_predicted"] == 0 and c["share"] is None for c in classes)
