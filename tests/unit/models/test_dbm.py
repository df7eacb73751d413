"""The MP-DBM (§9): mean-field inference and inpainting against a hand computation of pylearn2's
equations, the multi-prediction objective's gradient against finite differences, its masks, FGSM through
the unrolled inference, and a short training run on MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advbench.attacks import fgsm, input_gradient
from advbench.config.specs import model_spec, regime_spec
from advbench.models.architectures import build
from advbench.models.dbm import MPDBM
from advbench.training.loop import Tensors, train_model
from advbench.training.state import DiskStore, fingerprint, spec_dicts

TINY = {"arch": "mp_dbm", "dbm_units": [3, 2], "dbm_sparse_init": [2, 0, 2], "init_range": 0.5}


def tiny(iterations: int = 3, dtype=torch.float64) -> MPDBM:
    """An MP-DBM with 784 inputs, 3 and 2 hidden units and 10 classes, random weights of a useful size."""
    torch.manual_seed(0)
    model = build(model_spec("dbm", TINY | {"dbm_iterations": iterations}))
    with torch.no_grad():
        for layer in model.layers:
            layer.weight.normal_(0, 0.3)
            layer.bias.normal_(0, 0.3)
        model.v_bias.normal_(0, 0.3)
    return model.to(dtype)


def sig(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def weights(model: MPDBM) -> tuple:
    """pylearn2's W0, W1, W2 (inputs x units) and biases, as numpy."""
    w = [layer.weight.detach().numpy().T for layer in model.layers]
    b = [layer.bias.detach().numpy() for layer in model.layers]
    return w, b, model.v_bias.detach().numpy()


def test_mean_field_is_pylearn2s_weight_doubling_by_hand():
    model = tiny(iterations=3)
    (w0, w1, w2), (b0, b1, by), _ = weights(model)
    v = np.random.default_rng(0).random((4, 784))
    h0 = sig(2 * v @ w0 + b0)  # pass 1: weights from below doubled, nothing from above
    h1 = sig(2 * h0 @ w1 + b1)
    z = h1 @ w2 + by
    for _ in range(2):  # passes 2 and 3: h0 and y from the h1 before, then h1
        h0 = sig(v @ w0 + b0 + h1 @ w1.T)
        z = h1 @ w2 + by
        h1 = sig(h0 @ w1 + b1 + softmax(z) @ w2.T)
    got = model(torch.from_numpy(v))
    np.testing.assert_allclose(got.detach().numpy(), np.log(softmax(z)), rtol=1e-10, atol=1e-12)
    one = tiny(iterations=1)(torch.from_numpy(v))  # one pass: bottom-up only
    (w0, w1, w2), (b0, b1, by), _ = weights(tiny(iterations=1))
    expected = np.log(softmax(sig(2 * sig(2 * v @ w0 + b0) @ w1 + b1) @ w2 + by))
    np.testing.assert_allclose(one.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_inpainting_is_pylearn2s_do_inpainting_by_hand():
    model = tiny(iterations=3)
    (w0, w1, w2), (b0, b1, by), bv = weights(model)
    rng = np.random.default_rng(1)
    v = (rng.random((4, 784)) < 0.5).astype(float)
    y = np.eye(10)[[1, 4, 7, 9]]
    dv = (rng.random((4, 784)) < 0.5).astype(float)
    dy = np.array([1.0, 0.0, 1.0, 0.0])[:, None]
    v_hat = sig(bv) * dv + v * (1 - dv)
    h0 = sig(2 * v_hat @ w0 + b0)
    y_hat = dy * softmax(by[None]) + (1 - dy) * y
    h1 = sig(h0 @ w1 + b1 + y_hat @ w2.T)  # recomputed with the labels, undoubled
    for _ in range(2):
        h0 = sig(v_hat @ w0 + b0 + h1 @ w1.T)
        zy = h1 @ w2 + by
        y_hat = dy * softmax(zy) + (1 - dy) * y
        zv = h0 @ w0.T + bv
        v_hat = dv * sig(zv) + (1 - dv) * v
        h1 = sig(h0 @ w1 + b1 + y_hat @ w2.T)
    t = {k: torch.from_numpy(a) for k, a in {"v": v, "y": y, "dv": dv, "dy": dy[:, 0]}.items()}
    got_zv, got_zy = model.inpaint(t["v"], t["y"], t["dv"], t["dy"])
    np.testing.assert_allclose(got_zv.detach().numpy(), zv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_zy.detach().numpy(), zy, rtol=1e-10, atol=1e-12)
    loss = model.mp_loss(t["v"], torch.tensor([1, 4, 7, 9]), t["dv"], t["dy"]).detach().numpy()
    bce = -(v * np.log(sig(zv)) + (1 - v) * np.log(1 - sig(zv)))
    ce = -np.log(softmax(zy)[np.arange(4), [1, 4, 7, 9]])
    np.testing.assert_allclose(loss, ((dv * bce).sum(axis=1) + dy[:, 0] * ce) / 784, rtol=1e-9)


def test_the_objectives_gradient_matches_finite_differences():
    """Every parameter's gradient is the objective's derivative, where the hidden pixels' starting value
    sigmoid(b_v) is held fixed: pylearn2 passes no gradient through it."""
    model = tiny(iterations=3)
    rng = np.random.default_rng(2)
    v = torch.from_numpy((rng.random((3, 784)) < 0.5).astype(float))
    dv = torch.from_numpy((rng.random((3, 784)) < 0.5).astype(float))
    dy, y = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), torch.tensor([2, 5, 8])
    start = torch.sigmoid(model.v_bias).detach().clone()
    grads = torch.autograd.grad(model.mp_loss(v, y, dv, dy).sum(), list(model.parameters()))
    h, pick = 1e-6, torch.Generator().manual_seed(0)

    def loss() -> float:
        with torch.no_grad():
            return float(model.mp_loss(v, y, dv, dy, start).sum())

    for p, g in zip(model.parameters(), grads, strict=True):
        flat = p.data.view(-1)
        for i in torch.randperm(len(flat), generator=pick)[:6].tolist():
            old = float(flat[i])
            flat[i] = old + h
            up = loss()
            flat[i] = old - h
            down = loss()
            flat[i] = old
            assert float(g.view(-1)[i]) == pytest.approx((up - down) / (2 * h), rel=1e-4, abs=1e-10)
    assert grads[0].abs().sum() > 0  # b_v learns through the visible predictions


def test_only_hidden_units_are_scored_and_masks_are_drawn_at_the_drop_rate():
    model = tiny()
    v = torch.bernoulli(torch.full((5, 784), 0.3, dtype=torch.float64))
    y = torch.arange(5)
    nothing = model.mp_loss(v, y, torch.zeros_like(v), torch.zeros(5, dtype=torch.float64))
    assert torch.equal(nothing, torch.zeros(5, dtype=torch.float64))
    torch.manual_seed(3)
    x = torch.rand(200, 784, dtype=torch.float64)
    loss = model.training_loss(x, torch.arange(200) % 10)
    assert loss.shape == (200,) and (loss > 0).all() and loss.isfinite().all()


def test_fgsm_goes_through_the_unrolled_inference(small_mlp):
    model = tiny(iterations=4, dtype=torch.float32).eval()
    x, y = torch.rand(6, 784), torch.arange(6)
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    x_adv = fgsm(model, x, y, 0.1)
    grad = input_gradient(model, x, y)
    assert (grad != 0).all()  # every pixel reaches the labels through the inference
    torch.testing.assert_close(x_adv - x, 0.1 * grad.sign())
    nll = torch.nn.functional.nll_loss
    assert float(nll(model(x_adv), y)) > float(nll(model(x), y))
    with torch.no_grad():  # the gradient is the loss's derivative along a random direction
        d = torch.randn_like(x)
        h = 1e-3
        fd = (nll(model(x + h * d), y, reduction="sum") - nll(model(x - h * d), y, reduction="sum")) / (2 * h)
    assert float((grad * d).sum()) == pytest.approx(float(fd), rel=1e-2)


def test_a_short_run_learns_mnist(prepared):
    """Eight epochs of the recipe's objective and lr on 2000 MNIST digits, a small MP-DBM: the
    multi-prediction objective falls and the mean-field classifier is far better than chance (90%)."""
    with np.load(prepared) as npz:
        x_tr, y_tr = npz["x_train"][:2000], npz["y_train"][:2000]
        x_va, y_va = npz["x_val"][:500], npz["y_val"][:500]
    f = lambda a: torch.from_numpy(a.reshape(len(a), -1).astype(np.float32) / 255)  # noqa: E731
    data = Tensors(f(x_tr), torch.from_numpy(y_tr).long(), f(x_va), torch.from_numpy(y_va).long())
    train = {"lr": 15.146493, "lr_decay": 1.0, "max_epochs": 8, "monitor_train": 200, "monitor_val_adv": 100}
    train |= {"momentum_end": 0.732716, "momentum_saturate_epoch": 2}  # the recipe's
    entry = {"arch": "mp_dbm", "dbm_units": [100, 100], "dbm_iterations": 5, "init_range": 0.0064}
    spec = model_spec("dbm", entry | {"train": train})
    state, curves = train_model(spec, regime_spec("clean", {"kind": "clean"}), data, seed=0)
    assert curves[-1]["train_loss"] < curves[0]["train_loss"]
    assert min(c["val_error"] for c in curves) < 0.6


def test_the_visible_biases_start_from_the_pixels_marginals():
    model = tiny()
    x = torch.zeros(4, 784, dtype=torch.float64)
    x[:, 0], x[:2, 1] = 1.0, 1.0
    model.init_from_data(x)
    expected = torch.full((784,), float(torch.logit(torch.tensor(1e-7, dtype=torch.float64))))
    expected[0], expected[1] = float(torch.logit(torch.tensor(1 - 1e-7, dtype=torch.float64))), 0.0
    torch.testing.assert_close(model.v_bias.detach(), expected.double())


class Killed(Exception):
    """Stands for the process dying right after a state was written."""


class StopAfter(DiskStore):
    """A store that 'dies' once it has saved the state after epoch ``stop_at``."""

    stop_at: int = 0

    def save(self, state) -> None:
        super().save(state)
        if state.epoch == self.stop_at and not state.finished:
            raise Killed


def test_an_interrupted_run_resumes_bit_for_bit(tmp_path):
    """Killed after its second epoch (stage 1) and started again, an MP-DBM run ends where an uninterrupted
    one does: the binarization and masks come from the generator the saved state restores."""
    train = {"lr": 15.146493, "lr_decay": 1.0, "max_epochs": 3, "batch_size": 50}
    train |= {"retrain": True, "retrain_max_epochs": 2, "monitor_val_adv": 50}
    spec = model_spec("dbm", {"arch": "mp_dbm", "dbm_units": [12, 8], "dbm_iterations": 3, "train": train})
    regime = regime_spec("clean", {"kind": "clean"})
    g = torch.Generator().manual_seed(7)
    x, y = torch.rand(300, 784, generator=g), torch.randint(0, 10, (300,), generator=g)
    data = Tensors(x[:200], y[:200], x[200:], y[200:])

    def store(stop_at: int = 0) -> StopAfter:
        out = StopAfter(tmp_path / "seed=0.state", fingerprint(*spec_dicts(spec, regime), ["t", 0], data))
        out.stop_at = stop_at
        return out

    reference, ref_curves = train_model(spec, regime, data, seed=4)
    with pytest.raises(Killed):
        train_model(spec, regime, data, seed=4, store=store(stop_at=2))
    resumed, curves = train_model(spec, regime, data, seed=4, store=store())
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(curves) == drop(ref_curves) and [r["stage"] for r in curves].count(2) >= 1
