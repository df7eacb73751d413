"""CIFAR-10: the binary reader and its checks, GCN + ZCA, the conv maxout net and GoogLeNet under FGSM."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from advbench.attacks import fgsm
from advbench.config.specs import model_spec
from advbench.data.cifar10 import FILE_BYTES, cifar_from_dir, fit_zca, gcn, read_batch
from advbench.data.inputs import model_inputs
from advbench.data.registry import CIFAR10_FILES, DataError, dataset_info
from advbench.data.sources import resolve_source
from advbench.data.splits import load_splits, prepare
from advbench.data.tfds import load_tfds
from advbench.models.architectures import build, conv_layers


@pytest.fixture(scope="session")
def cifar(cifar_dir: Path) -> tuple[np.ndarray, ...]:
    return cifar_from_dir(cifar_dir)


@pytest.fixture(scope="session")
def cifar_prepared(tmp_path_factory: pytest.TempPathFactory, cifar_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("data") / "cifar10.npz"
    prepare("cifar10", out, "local", str(cifar_dir.parent), zca_fit_n=1000)
    return out


def test_reader_gives_the_published_counts(cifar):
    x_train, y_train, x_test, y_test = cifar
    assert x_train.shape == (50_000, 3, 32, 32) and x_train.dtype == np.uint8 and x_test.shape[0] == 10_000
    assert np.bincount(y_train, minlength=10).tolist() == [5000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
    first = [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]  # data_batch_1.bin, README
    assert np.bincount(y_train[:10_000], minlength=10).tolist() == first
    means = x_train.reshape(50_000, 3, -1).mean(axis=(0, 2)) / 255
    assert np.allclose(means, [0.4913, 0.4821, 0.4465], atol=2e-4)  # R, G, B planes in record order


@pytest.fixture()
def cifar_copy(tmp_path: Path, cifar_dir: Path) -> Path:
    """A folder of links to the real files, in which single files can be replaced by altered copies."""
    dst = tmp_path / "cifar10"
    dst.mkdir()
    for name in CIFAR10_FILES:
        (dst / name).symlink_to(cifar_dir / name)
    return dst


def _replace(folder: Path, name: str, data: bytes) -> Path:
    (folder / name).unlink()
    (folder / name).write_bytes(data)
    return folder / name


def test_wrong_length_names_the_file_and_expected_length(cifar_copy):
    raw = (cifar_copy / "test_batch.bin").read_bytes()
    _replace(cifar_copy, "test_batch.bin", raw[:-3073])
    with pytest.raises(DataError, match=rf"test_batch.bin: {FILE_BYTES - 3073} bytes; expected {FILE_BYTES}"):
        cifar_from_dir(cifar_copy)


def test_wrong_content_names_expected_and_found_sha256(cifar_copy):
    raw = bytearray((cifar_copy / "data_batch_3.bin").read_bytes())
    raw[5] ^= 1
    path = _replace(cifar_copy, "data_batch_3.bin", bytes(raw))
    with pytest.raises(DataError) as err:
        read_batch(path, CIFAR10_FILES["data_batch_3.bin"])
    message = str(err.value)
    assert (
        "data_batch_3.bin: sha256 is " in message
        and f"expected {CIFAR10_FILES['data_batch_3.bin']}" in message
    )


def test_missing_file_and_sources(cifar_copy, monkeypatch, tmp_path):
    (cifar_copy / "data_batch_5.bin").unlink()
    with pytest.raises(DataError, match="data_batch_5.bin: file not found"):
        cifar_from_dir(cifar_copy)
    monkeypatch.delenv("ADVBENCH_DATA", raising=False)
    assert resolve_source("auto", None, "cifar10") == ("tfds", None)
    with pytest.raises(DataError, match="cannot provide cifar10"):
        resolve_source("torchvision", None, "cifar10")  # torchvision's CIFAR10 reads pickles
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match="needs tensorflow-datasets"):
        load_tfds(dataset_info("cifar10"), None, tmp_path)


def test_gcn_gives_zero_mean_and_norm_55(cifar):
    x = gcn(cifar[0][:500])
    assert np.allclose(x.mean(axis=1), 0, atol=1e-9)
    assert np.allclose(np.linalg.norm(x, axis=1), 55.0)
    assert np.allclose(gcn(np.zeros((2, 3072))), 0)  # a constant image stays finite


def test_zca_whitens_up_to_the_filter_bias(cifar):
    """Whitened covariance = C (C + .1 I)^-1 = I - .1 P^2: identity up to the filter bias."""
    x = gcn(cifar[0][:1000])
    mean, p = fit_zca(x, 0.1)  # fewer images than dimensions, as in the smoke preset
    assert np.allclose(p, p.T, atol=1e-8)
    white = (x - mean) @ p
    assert np.allclose(white.T @ white / len(white) + 0.1 * p @ p, np.eye(3072), atol=1e-6)
    patch = x[:, :300]  # more images than dimensions: eigenvalues lam / (lam + .1) of C, strong ones near 1
    mean, p = fit_zca(patch, 0.1)
    eig_white = np.linalg.eigvalsh(np.cov(((patch - mean) @ p).T, bias=True))
    eig = np.linalg.eigvalsh(np.cov(patch.T, bias=True))
    assert np.allclose(eig_white, eig / (eig + 0.1), atol=1e-8)
    assert eig_white.max() < 1 and eig_white[-20:].min() > 0.9


def test_zca_gram_route_equals_covariance_route():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 40)) @ rng.standard_normal((40, 40))
    mean, p_small = fit_zca(x[:25])  # fewer rows than dimensions: the Gram-matrix route
    xc = x[:25] - mean
    eigs, vecs = np.linalg.eigh(xc.T @ xc / 25 + 0.1 * np.eye(40))
    assert np.allclose(p_small, (vecs * eigs**-0.5) @ vecs.T, atol=1e-9)
    assert fit_zca(x)[1].shape == (40, 40)  # the covariance route


def test_prepared_cifar_is_whitened_with_the_stored_fit(cifar_prepared, cifar):
    s = load_splits(cifar_prepared, n_test=50)
    assert [len(s.x_train), len(s.x_val), len(s.x_test)] == [40_000, 10_000, 50]
    assert np.array_equal(s.x_train[:5], cifar[0][:5]) and np.array_equal(
        s.x_val[:5], cifar[0][40_000:40_005]
    )
    x = model_inputs(s.x_test, s.as_dict())
    assert x.shape == (50, 3072) and x.dtype == np.float32
    mean, p = fit_zca(gcn(cifar[0][:1000]))
    assert np.allclose(x, (gcn(cifar[2][:50]) - mean) @ p, atol=1e-3)
    assert 0.3 < x.std() < 0.8  # FIGURES.md: the whitened space has std ~0.5, so eps=.1 is a real attack


def conv_maxout(**kw):
    return model_spec("conv_maxout", {"arch": "conv_maxout", "dataset": "cifar10", "units": 500, **kw})


def test_conv_maxout_matches_pylearn2_shapes():
    model = build(conv_maxout(max_kernel_norm=[0.9, 1.9365, 1.9365]), torch.Generator().manual_seed(0))
    shapes = [tuple(c.weight.shape) for c in conv_layers(model)]
    assert shapes == [(192, 3, 8, 8), (384, 96, 8, 8), (384, 192, 5, 5)]
    x = torch.zeros(1, 3, 32, 32)
    sizes = []
    for layer in model.features:
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes[1::2] == [(96, 16, 16), (192, 7, 7), (192, 5, 5)]  # cuda-convnet pooling sizes
    assert model.classifier[1].linear.weight.shape == (2500, 192 * 25)
    assert model.eval()(torch.randn(4, 3072)).shape == (4, 10)
    assert all(c.weight.abs().max() <= 0.005 for c in conv_layers(model))


def test_small_conv_maxout_and_kernel_norm_cap():
    from advbench.models.architectures import apply_max_kernel_norm

    spec = conv_maxout(
        channels=[8, 8], kernels=[5, 3], pads=[2, 1], pools=[2, 2], pool_strides=[2, 2], units=16
    )
    model = build(spec)
    with torch.no_grad():
        conv_layers(model)[0].weight.mul_(1e4)
    apply_max_kernel_norm(model, [0.9, 1.9365])
    assert conv_layers(model)[0].weight.flatten(1).norm(dim=1).max() <= 0.9 + 1e-5
    assert model(torch.randn(3, 3072)).shape == (3, 10)


def test_googlenet_takes_mnist_pixels():
    spec = model_spec("googlenet", {"arch": "googlenet", "resize": 32})
    torch.manual_seed(0)
    model = build(spec).eval()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # torchvision's net
    assert model(torch.rand(2, 784)).shape == (2, 10)


class _Calls(TorchFunctionMode):
    """Records every torch function called inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.seen.add(func)
        return func(*args, **(kwargs or {}))


def test_googlenet_calls_no_op_whose_cuda_backward_is_nondeterministic():
    """Tasks ask for deterministic algorithms, under which CUDA raises in the backward of bilinear
    ``interpolate`` and of adaptive average pooling; GoogLeNet resizes and pools without them, to the same
    numbers."""
    model = build(model_spec("googlenet", {"arch": "googlenet", "resize": 64}))
    x = torch.rand(2, 784, requires_grad=True)
    with _Calls() as calls:
        model(x).sum().backward()
        F.interpolate(torch.rand(1, 1, 4, 4), size=8, mode="bilinear")  # the recorder sees F's functions
    assert F.interpolate in calls.seen and x.grad is not None
    calls.seen.discard(F.interpolate)
    assert not calls.seen & {F.interpolate, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
    image = torch.rand(5, 3, 28, 28)
    resized = model.resize_rows @ image @ model.resize_cols.T
    reference = F.interpolate(image, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resized, reference, atol=1e-6, rtol=1e-5)
    maps = torch.rand(5, 1024, 7, 7)
    torch.testing.assert_close(model.net.avgpool(maps), torch.nn.AdaptiveAvgPool2d(1)(maps))


@pytest.mark.parametrize(
    ("spec", "n_inputs"),
    [
        (model_spec("g", {"arch": "googlenet", "resize": 32, "dataset": "cifar10"}), 3072),
        (conv_maxout(channels=[4], kernels=[3], pads=[1], pools=[2], pool_strides=[2], units=8), 3072),
    ],
)
def test_fgsm_stays_in_the_eps_ball_of_the_input_space(spec, n_inputs):
    torch.manual_seed(0)
    model = build(spec)
    x, y = torch.randn(4, n_inputs), torch.tensor([0, 1, 2, 3])  # whitened inputs are unbounded
    x_adv = fgsm(model, x, y, 0.1)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and not torch.equal(x_adv, x)
    assert model.training  # the attack restored the mode
    assert dataset_info(spec.dataset).n_inputs == n_inputs


def test_rubbish_job_spans_datasets_without_data(tmp_path):
    """One rubbish task scores N(0, I) noise of each model's own input size (F21 MNIST, F23 CIFAR-10)."""
    from advbench.config.specs import regime_spec
    from advbench.jobs.common import Trained
    from advbench.jobs.experiments import rubbish_task
    from advbench.results import checkpoints
    from advbench.runtime.ray import RaySettings

    regime = regime_spec("clean", {"kind": "clean"})
    specs = [
        model_spec("softmax", {"arch": "softmax", "init_range": 0.5}),
        conv_maxout(channels=[4], kernels=[3], pads=[1], pools=[2], pool_strides=[2], units=8),
    ]
    runs = {}
    for spec in specs:
        path = tmp_path / f"{spec.name}.safetensors"
        checkpoints.save(build(spec, torch.Generator().manual_seed(0)).state_dict(), path, {})
        runs[f"{spec.name}-clean"] = Trained(spec, regime, str(path))
    settings = RaySettings(use_ray=False)
    out = rubbish_task({}, runs, None, 0, 50, {"cifar10": 20}, 0.0, 64, settings)
    assert [(r["dataset"], r["model"], r["n"]) for r in out["rows"]] == [
        ("mnist", "softmax", 50),
        ("cifar10", "conv_maxout", 20),
    ]
    assert all(r["error"] == 1.0 for r in out["rows"])  # threshold 0: every input counts as confident
    shares = [c["n_predicted"] for c in out["classes"] if c["dataset"] == "cifar10"]
    assert sum(shares) == 20


def test_pylearn2_cifar_schedule_knobs():
    """LinearDecayOverEpoch (lr .17 -> .0017 by epoch 500) and W_lr_scale .05 on the conv layers only."""
    from advbench.config.specs import TrainSpec
    from advbench.models.architectures import lr_scales
    from advbench.training.loop import epoch_lr, sgd_step

    t = TrainSpec(lr=0.17, lr_linear_saturate_epoch=500, lr_linear_factor=0.01)
    assert epoch_lr(1, t) == 0.17 and epoch_lr(500, t) == pytest.approx(0.0017) == epoch_lr(785, t)
    assert epoch_lr(7, TrainSpec(lr=0.1)) == 0.1  # off by default
    spec = conv_maxout(
        channels=[4], kernels=[3], pads=[1], pools=[2], pool_strides=[2], units=8, conv_lr_scale=0.05
    )
    model = build(spec)
    scales = lr_scales(model, spec)
    params = list(model.parameters())
    assert scales[:2] == [0.05, 0.05] and set(scales[2:]) == {1.0}  # conv weight and bias first
    for p in params:
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in params]
    sgd_step(params, [torch.zeros_like(p) for p in params], 1.0, 0.5, scales)
    steps = [float((b - p).detach().flatten()[0]) for b, p in zip(before, params, strict=True)]
    assert steps[0] == pytest.approx(0.05) and steps[-1] == pytest.approx(1.0)
