"""Model registry: the paper's shallow softmax and logistic regressions, its maxout MLP (pylearn2
``mnist_pi.yaml``), the shallow RBF network of §7, the conv maxout net of §4 (pylearn2
``cifar10_no_aug.yaml``), torchvision's GoogLeNet (Fig. 1's idea), the LeNet-style CNN of PyTorch's FGSM
tutorial, the MP-DBM of §9 (:mod:`advbench.models.dbm`), and ensembles of trained models.

Inputs are flat vectors of the model's dataset (:mod:`advbench.data.inputs`: pixels in [0, 1], or CIFAR-10's
whitened space); image models reshape them to (channels, height, width) inside. Every model returns logits;
dropout follows pylearn2's convention of an explicit keep probability and a scale for kept units (input: keep
.8, scale 1 = no rescaling; hidden: keep .5, scale 2), active only in training mode. A model's ``head``
attribute says how its outputs become probabilities (:mod:`advbench.models.heads`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from advbench.config.specs import ModelSpec
from advbench.data.registry import dataset_info
from advbench.models.dbm import MPDBM
from advbench.models.external import External

N_CLASSES = 10


def n_outputs(spec: ModelSpec) -> int:
    """Ten classes, or as many as the model's ``classes`` subset names."""
    return len(spec.classes) if spec.classes else N_CLASSES


def n_inputs(spec: ModelSpec) -> int:
    """Length of the flat input vector of the model's dataset (MNIST 784, CIFAR-10 3072)."""
    return dataset_info(spec.dataset).n_inputs


class ScaledDropout(nn.Module):
    """Keep each unit with probability ``keep`` and multiply kept units by ``scale`` (training only)."""

    def __init__(self, keep: float, scale: float) -> None:
        super().__init__()
        self.keep, self.scale = keep, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.keep >= 1.0 and self.scale == 1.0):
            return x
        return scaled_dropout(x, self.keep, self.scale)


def scaled_dropout(x: torch.Tensor, keep: float, scale: float) -> torch.Tensor:
    """``x * (u < keep) * scale`` for uniform draws ``u``, bit for bit, in one multiply each way: the mask
    of 0 and ``scale`` is built in place in the draws' own tensor (``x * 0`` and ``x * scale`` round as the
    two multiplies of the formula do, the sign of zero included)."""
    mask = torch.rand_like(x).lt_(keep)
    if scale != 1.0:
        mask.mul_(scale)
    return x * mask


class Maxout(nn.Module):
    """A linear layer of ``pieces * units`` outputs followed by a max over each unit's pieces.

    The outputs are laid out piece-major: row ``p * units + u`` of the weight is piece ``p`` of unit ``u``
    (pylearn2 puts a unit's pieces side by side; with i.i.d. initial weights the two are the same model). The
    max then runs over ``pieces`` contiguous slabs, which is faster on CPU than a max over groups of adjacent
    columns (``advbench bench``'s ``maxout_max_piece_major_speedup`` rows).
    """

    def __init__(self, n_in: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(n_in, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(x.shape[0], self.pieces, self.units).amax(dim=1)

    def unit_weights(self) -> torch.Tensor:
        """The incoming weights of every unit's first piece, one row per unit."""
        return self.linear.weight[: self.units]


class MaxoutMLP(nn.Module):
    """784 -> maxout (units x pieces) x layers -> softmax logits, with dropout before every layer."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        n_in = n_inputs(spec)
        for i in range(spec.hidden_layers):
            keep, scale = (
                (spec.input_keep, spec.input_scale) if i == 0 else (spec.hidden_keep, spec.hidden_scale)
            )
            layers += [ScaledDropout(keep, scale), Maxout(n_in, spec.units, spec.pieces)]
            n_in = spec.units
        layers += [ScaledDropout(spec.hidden_keep, spec.hidden_scale), nn.Linear(n_in, n_outputs(spec))]
        self.net = nn.Sequential(*layers)
        self.head = spec.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def split(self, layer: int) -> tuple[nn.Module, nn.Module]:
        """The network below and above the output of hidden layer ``layer`` (1-based): ``forward(x)`` is
        ``above(below(x.flatten(1)))``, each with its own dropout (every hidden layer is a dropout and a
        maxout, so the cut falls after the layer's maxout)."""
        return self.net[: 2 * layer], self.net[2 * layer :]


class SoftmaxRegression(nn.Module):
    """The paper's shallow softmax regression: one linear layer to 10 logits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.linear = nn.Linear(n_inputs(spec), n_outputs(spec))
        self.head = spec.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    def logit_weight(self) -> torch.Tensor:
        """The (classes, inputs) matrix W of the logits ``W x + b``."""
        return self.linear.weight


class LogisticRegression(nn.Module):
    """Binary logistic regression (§5, Fig. 2): ``P(y=1|x) = sigmoid(w.x + b)`` on two classes.

    It returns the logits ``[0, w.x + b]``, whose softmax is exactly ``[1 - sigmoid, sigmoid]``, so the
    cross-entropy is the logistic loss and FGSM is exactly ``x - eps * y * sign(w)`` with y = -1 / +1.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if n_outputs(spec) != 2:
            raise ValueError(f"model {spec.name!r}: arch 'logistic' needs exactly two classes")
        self.linear = nn.Linear(n_inputs(spec), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)
        return torch.cat([torch.zeros_like(z), z], dim=1)

    def logit_weight(self) -> torch.Tensor:
        """The (2, inputs) matrix of the logits ``[0, w.x + b]``: a zero row, then w."""
        w = self.linear.weight
        return torch.cat([torch.zeros_like(w), w])


class RBFNetwork(nn.Module):
    """The shallow RBF network of §7: ``p(y=i|x) = exp(-(x - mu_i)^T diag(beta_i) (x - mu_i))``, one
    independent unit per class. It returns the log-probabilities; ``beta = softplus(rho) >= 0``.

    Not stated by the paper: the initialization (mu = ``rbf_mu_init`` everywhere, beta = ``rbf_beta_init``).
    """

    head = "rbf"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        shape = (n_outputs(spec), n_inputs(spec))
        self.mu = nn.Parameter(torch.full(shape, spec.rbf_mu_init))
        rho = math.log(math.expm1(spec.rbf_beta_init))  # inverse softplus
        self.rho = nn.Parameter(torch.full(shape, rho))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = nn.functional.softplus(self.rho)
        # sum_j beta_ij (x_j - mu_ij)^2, expanded into matrix products
        dist = (x * x) @ beta.T - 2 * x @ (beta * self.mu).T + (beta * self.mu**2).sum(dim=1)
        return -dist.clamp_min(0.0)


class MaxoutConv(nn.Module):
    """pylearn2 ``MaxoutConvC01B``: a convolution of ``channels * pieces`` maps, the max over each channel's
    pieces, then max pooling (cuda-convnet's output size, i.e. ``ceil_mode``)."""

    def __init__(self, n_in: int, channels: int, pieces: int, kernel: int, pad: int, pool: int, stride: int):
        super().__init__()
        self.channels, self.pieces = channels, pieces
        self.conv = nn.Conv2d(n_in, channels * pieces, kernel, padding=pad)
        self.pool = nn.MaxPool2d(pool, stride, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)
        z = z.view(z.shape[0], self.channels, self.pieces, *z.shape[2:]).amax(dim=2)
        return self.pool(z)

    def unit_weights(self) -> torch.Tensor:
        """The kernels of every channel's first piece, one per channel."""
        return self.conv.weight[:: self.pieces]


class ConvMaxout(nn.Module):
    """The conv maxout net of §4: conv-maxout layers (``channels``, ``kernels``, ``pads``, ``pools``,
    ``pool_strides``; ``conv_pieces`` each), a maxout layer (``units`` x ``pieces``), softmax; dropout before
    every layer as in the maxout MLP."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.shape = dataset_info(spec.dataset).shape
        layers: list[nn.Module] = []
        n_in = self.shape[0]
        conv = zip(spec.channels, spec.kernels, spec.pads, spec.pools, spec.pool_strides, strict=True)
        for i, (channels, kernel, pad, pool, stride) in enumerate(conv):
            keep, scale = (
                (spec.input_keep, spec.input_scale) if i == 0 else (spec.hidden_keep, spec.hidden_scale)
            )
            layers += [
                ScaledDropout(keep, scale),
                MaxoutConv(n_in, channels, spec.conv_pieces, kernel, pad, pool, stride),
            ]
            n_in = channels
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, *self.shape)).numel()
        self.classifier = nn.Sequential(
            ScaledDropout(spec.hidden_keep, spec.hidden_scale),
            Maxout(n_flat, spec.units, spec.pieces),
            ScaledDropout(spec.hidden_keep, spec.hidden_scale),
            nn.Linear(spec.units, n_outputs(spec)),
        )
        self.head = spec.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.view(-1, *self.shape)).flatten(1))


def bilinear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """``(size_out, size_in)``: 1-D linear resizing (``align_corners=False``) as a matrix; with ``R`` for the
    rows and ``C`` for the columns, ``R @ image @ C.T`` is ``F.interpolate(..., mode="bilinear")``."""
    eye = torch.eye(size_in, dtype=torch.float64).unsqueeze(1)  # size_in signals of length size_in
    return F.interpolate(eye, size=size_out, mode="linear", align_corners=False).squeeze(1).T.float()


class GlobalMeanPool(nn.Module):
    """``AdaptiveAvgPool2d(1)`` as a mean over height and width: the same numbers, and a backward pass that
    CUDA runs deterministically (``adaptive_avg_pool2d``'s CUDA backward raises under deterministic
    algorithms, per torch's documentation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class GoogLeNet(nn.Module):
    resize_rows: torch.Tensor  # buffers: the bilinear resize as two matrix products
    resize_cols: torch.Tensor
    """torchvision's GoogLeNet (no pretrained weights, no auxiliary heads), trained from scratch. The flat
    input is reshaped to its image, grey images repeat to 3 channels and the image is resized bilinearly to
    ``resize`` pixels inside the model, so the attack's eps stays in the dataset's input space.

    Bilinear resizing is two matrix products and the global pooling a mean: ``F.interpolate``'s and
    ``AdaptiveAvgPool2d``'s CUDA backward passes have no deterministic implementation (torch's documentation
    of ``use_deterministic_algorithms``), and every advbench task asks for deterministic algorithms
    (:func:`advbench.runtime.task.init_task`)."""

    pylearn2_init = False  # keep torchvision's initialization

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        from torchvision.models import googlenet

        self.shape, self.resize = dataset_info(spec.dataset).shape, spec.resize
        self.net = googlenet(weights=None, aux_logits=False, init_weights=True, num_classes=n_outputs(spec))
        self.net.avgpool = GlobalMeanPool()
        rows, cols = self.shape[1:]
        self.register_buffer("resize_rows", bilinear_matrix(rows, self.resize), persistent=False)
        self.register_buffer("resize_cols", bilinear_matrix(cols, self.resize), persistent=False)
        self.head = spec.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, *self.shape)
        if self.shape[0] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.resize or x.shape[-2] != self.resize:
            x = self.resize_rows @ x @ self.resize_cols.T
        return self.net(x)


class LeNet(nn.Module):
    """The small CNN of PyTorch's FGSM tutorial (the ``Net`` of pytorch/examples' MNIST at the time): conv
    5x5 to 10 maps, 2x2 max pool, ReLU; conv 5x5 to 20 maps, channel dropout, 2x2 max pool, ReLU; 320 -> 50
    ReLU, dropout .5; 50 -> 10. torch's default initialization, as the tutorial's model was trained."""

    pylearn2_init = False

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.shape = dataset_info(spec.dataset).shape
        self.features = nn.Sequential(
            nn.Conv2d(self.shape[0], 10, kernel_size=5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(10, 20, kernel_size=5),
            nn.Dropout2d(0.5),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, *self.shape)).numel()
        self.classifier = nn.Sequential(
            nn.Linear(n_flat, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, n_outputs(spec))
        )
        self.head = spec.output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x.view(-1, *self.shape)).flatten(1))


class Ensemble(nn.Module):
    """Members' softmax probabilities averaged (§9); returns the log of the average, so the softmax of the
    output is the ensemble's probability and cross-entropy is ``-log`` of it."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(x), dim=1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


REGISTRY: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "softmax": SoftmaxRegression,
    "logistic": LogisticRegression,
    "maxout": MaxoutMLP,
    "rbf": RBFNetwork,
    "conv_maxout": ConvMaxout,
    "googlenet": GoogLeNet,
    "lenet": LeNet,
    "mp_dbm": lambda spec: MPDBM(spec, n_inputs(spec), n_outputs(spec)),
    "external": External,
}


def build(spec: ModelSpec, generator: torch.Generator | None = None) -> nn.Module:
    """Instantiate ``spec``'s architecture with pylearn2's init: weights U(-r, r), biases 0."""
    if spec.arch not in REGISTRY:
        raise ValueError(
            f"model {spec.name!r}: unknown arch {spec.arch!r}; expected one of {sorted(REGISTRY)}"
        )
    model = REGISTRY[spec.arch](spec)
    if not getattr(model, "pylearn2_init", True):
        return model
    with torch.no_grad():
        for layer in linear_layers(model) + conv_layers(model):
            layer.weight.uniform_(-spec.init_range, spec.init_range, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()
    return model


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def conv_layers(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def lr_scales(model: nn.Module, spec: ModelSpec) -> list[float]:
    """Per parameter (in ``model.parameters()`` order): ``conv_lr_scale`` for convolutions (pylearn2
    ``W_lr_scale`` / ``b_lr_scale``), 1 elsewhere."""
    conv = {id(p) for layer in conv_layers(model) for p in layer.parameters()}
    return [spec.conv_lr_scale if id(p) in conv else 1.0 for p in model.parameters()]


@torch.no_grad()
def apply_max_kernel_norm(model: nn.Module, caps: Sequence[float] | None) -> None:
    """Cap the L2 norm of every convolution filter, one cap per conv layer (pylearn2 ``max_kernel_norm``)."""
    if caps is None:
        return
    for layer, cap in zip(conv_layers(model), caps, strict=True):
        norms = layer.weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        layer.weight.mul_(torch.clamp(cap / norms.clamp_min(1e-12), max=1.0))


@torch.no_grad()
def apply_max_col_norm(model: nn.Module, max_norm: float | None) -> None:
    """Cap the L2 norm of every unit's incoming weight vector (pylearn2 ``max_col_norm``)."""
    if max_norm is not None:
        cap_rows(max_norm, [layer.weight for layer in linear_layers(model)])


@torch.no_grad()
def cap_rows(max_norm: float, weights: Sequence[torch.Tensor]) -> None:
    """Scale every row (last axis) of each weight whose L2 norm exceeds ``max_norm`` down to it, in place."""
    for w in weights:
        w.mul_(torch.clamp(max_norm / w.norm(dim=-1, keepdim=True).clamp_min(1e-12), max=1.0))


def logit_weight(model: nn.Module) -> torch.Tensor:
    """The (classes, inputs) matrix W of the logits ``W x + b`` of softmax or logistic regression."""
    if not isinstance(model, SoftmaxRegression | LogisticRegression):
        raise TypeError(f"{type(model).__name__} is not linear in its input: it has no logit weight matrix")
    return model.logit_weight()
