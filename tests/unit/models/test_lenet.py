"""The LeNet-style CNN of PyTorch's FGSM tutorial: the tutorial's network, layer for layer."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from advbench.attacks import fgsm
from advbench.config.specs import model_spec
from advbench.models.architectures import build
from advbench.models.heads import attack_loss


class TutorialNet(nn.Module):
    """The ``Net`` of PyTorch's FGSM tutorial (pytorch/examples' MNIST model of the time), as it writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)


def _lenet_and_tutorial() -> tuple[nn.Module, TutorialNet]:
    torch.manual_seed(0)
    ours, theirs = build(model_spec("lenet", {"arch": "lenet"})), TutorialNet()
    with torch.no_grad():
        for mine, tutorial in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert mine.shape == tutorial.shape
            mine.copy_(tutorial)
    return ours, theirs


def test_lenet_is_the_tutorials_network():
    """The same parameters, in the same order, give the tutorial's log-probabilities in eval mode (advbench
    returns logits; their log-softmax is the tutorial's output)."""
    ours, theirs = _lenet_and_tutorial()
    ours.eval(), theirs.eval()
    x = torch.rand(8, 784)
    expected = theirs(x.view(-1, 1, 28, 28))
    torch.testing.assert_close(torch.log_softmax(ours(x), dim=1), expected, rtol=1e-5, atol=1e-6)
    assert sum(p.numel() for p in ours.parameters()) == 21_840


def test_lenet_keeps_torchs_initialization_and_drops_out_only_in_training():
    model = build(model_spec("lenet", {"arch": "lenet"}))
    conv = model.features[0]
    assert conv.bias.abs().sum() > 0  # torch's default init, not pylearn2's zero biases
    x = torch.rand(16, 784)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_fgsm_raises_lenets_loss():
    """FGSM's step is a first-order ascent direction on the CNN too: a small step raises the loss."""
    ours, _ = _lenet_and_tutorial()
    ours.eval()
    x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    x_adv = fgsm(ours, x, y, 0.01)
    assert (x_adv - x).abs().max() <= 0.01 + 1e-7
    with torch.no_grad():
        assert attack_loss(ours, ours(x_adv), y, "sum") > attack_loss(ours, ours(x), y, "sum")
