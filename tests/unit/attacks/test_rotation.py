"""§4's rotation attack: the differentiable rotation, the gradient's direction, and its scores."""

from __future__ import annotations

import math

import pytest
import torch

from advbench.attacks import rotate, rotate_by_sign, rotation_direction
from advbench.config.specs import model_spec
from advbench.evaluation.analyses import rotation
from advbench.models.architectures import build
from advbench.models.heads import attack_loss

MNIST = (1, 28, 28)


def test_rotation_by_zero_and_a_full_turn_is_the_identity_and_a_quarter_turn_is_rot90():
    x = torch.rand(3, 784)
    assert torch.equal(rotate(x, torch.zeros(3), MNIST), x)
    torch.testing.assert_close(rotate(x, torch.full((3,), 2 * math.pi), MNIST), x, atol=1e-5, rtol=0)
    quarter = rotate(x, torch.full((3,), math.pi / 2), MNIST).view(3, 28, 28)
    turned = {k: torch.rot90(x.view(3, 28, 28), k, dims=(1, 2)) for k in (1, -1)}
    assert any(torch.allclose(quarter, t, atol=1e-5) for t in turned.values())


def test_colour_images_rotate_every_channel_alike():
    x = torch.rand(2, 3, 32, 32)
    angle = torch.tensor([0.3, -0.2])
    out = rotate(x.flatten(1), angle, (3, 32, 32)).view(2, 3, 32, 32)
    for c in range(3):
        one = rotate(x[:, c].flatten(1), angle, (1, 32, 32)).view(2, 32, 32)
        torch.testing.assert_close(out[:, c], one)


def test_the_rotation_is_differentiable_in_the_angle():
    """Away from 0 (where the bilinear weights have a kink on the pixel grid) autograd's derivative
    matches the central finite difference of the rotated image."""
    x = torch.rand(2, 784, dtype=torch.float64)
    angle = torch.tensor([0.1, -0.07], dtype=torch.float64, requires_grad=True)
    probe = torch.randn(2, 784, dtype=torch.float64)
    (grad,) = torch.autograd.grad((rotate(x, angle, MNIST) * probe).sum(), angle)
    h = 1e-6
    with torch.no_grad():
        up = (rotate(x, angle + h, MNIST) * probe).sum(dim=1)
        down = (rotate(x, angle - h, MNIST) * probe).sum(dim=1)
    torch.testing.assert_close(grad, (up - down) / (2 * h), rtol=1e-4, atol=1e-6)


def _model_and_digits():
    torch.manual_seed(0)
    model = build(model_spec("s", {"arch": "softmax", "init_range": 0.05})).eval()
    x = torch.rand(200, 784)
    return model, x, torch.randint(0, 10, (200,))


def test_the_gradients_direction_raises_the_loss_more_than_the_opposite_one():
    """On noise images (the hardest case for bilinear interpolation: no smoothness at all), a 1-degree
    rotation in the chosen direction beats the opposite one almost always, and more often than with
    autograd's one-sided derivative at exactly 0 (``side=0``)."""
    model, x, y = _model_and_digits()

    def wins(direction: torch.Tensor) -> float:
        small = math.radians(1.0)
        with torch.no_grad():
            toward = attack_loss(model, model(rotate(x, direction * small, MNIST)), y, "none")
            away = attack_loss(model, model(rotate(x, -direction * small, MNIST)), y, "none")
        return float((toward > away).float().mean())

    direction = rotation_direction(model, x, y, MNIST)
    assert set(direction.unique().tolist()) <= {-1.0, 0.0, 1.0} and (direction != 0).all()
    assert wins(direction) > 0.95
    assert wins(direction) > wins(rotation_direction(model, x, y, MNIST, side=0.0)) + 0.1


def test_rotation_scores_start_at_the_clean_error_and_match_fgsm_in_l2():
    model, x, y = _model_and_digits()
    rows = rotation(model, x, y, MNIST, [0.0, 10.0], 64, torch.Generator().manual_seed(0))
    zero, ten = rows
    with torch.no_grad():
        clean = float((model(x).argmax(dim=1) != y).float().mean())
    assert zero["angle"] == 0.0 and zero["n"] == ten["n"] == 200
    assert zero["error"] == zero["random_error"] == zero["fgsm_error"] == pytest.approx(clean)
    assert zero["mean_l2"] == 0.0 and zero["fgsm_mean_eps"] == 0.0
    # a linear model's input gradient is nonzero in every pixel: FGSM's L2 size is eps * sqrt(784)
    assert ten["fgsm_mean_eps"] * math.sqrt(784) == pytest.approx(ten["mean_l2"], rel=1e-5)
    assert ten["mean_l2"] > 0 and ten["error"] >= ten["random_error"] - 0.05


@pytest.mark.parametrize("shape", [MNIST, (3, 32, 32)])
def test_rotating_by_sign_equals_rotating_each_image_by_its_own_angle(shape):
    """The two shared rotations give each image the bits its own angle gives it: the arithmetic is per
    image, whatever the batch; a sign of 0 leaves the image as it is."""
    n = 50
    x = torch.rand(n, math.prod(shape))
    sign = torch.tensor([1.0, -1.0, 0.0] * (n // 3) + [1.0] * (n % 3))
    radians = math.radians(10.0)
    each = torch.cat([rotate(x[i : i + 1], sign[i : i + 1] * radians, shape) for i in range(n)])
    assert torch.equal(rotate_by_sign(x, sign, radians, shape), each)
    assert torch.equal(rotate_by_sign(x, sign, radians, shape)[sign == 0], x[sign == 0])
