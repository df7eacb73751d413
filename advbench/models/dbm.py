"""The multi-prediction deep Boltzmann machine (MP-DBM; Goodfellow, Mirza, Courville & Bengio 2013) of the
paper's §9: binary visible units, two layers of binary hidden units and a softmax label layer, trained by
the multi-prediction objective and classifying by mean-field inference. The recipe is pylearn2's
``scripts/papers/mpdbm/mpdbm.yaml`` (``models/dbm``, ``costs/dbm.py``), every number of it a config knob.

Energy ``E(v, h0, h1, y) = -b_v.v - v W0 h0 - b0.h0 - h0 W1 h1 - b1.h1 - h1 W2 y - b_y.y``. The weights are
kept as ``nn.Linear`` layers (``weight`` is the transpose of pylearn2's W, so a row is one unit's incoming
weights, the vector pylearn2's ``max_col_norm`` caps). Mean field (pylearn2's ``WeightDoubling``, run for
``dbm_iterations`` passes, no damping):

- first pass, bottom-up with the weights from below doubled (the missing top-down input):
  ``h0 = s(2 v W0 + b0)``, ``h1 = s(2 h0 W1 + b1)``, ``y = softmax(h1 W2 + b_y)``;
- every later pass: ``h0 = s(v W0 + b0 + h1 W1')``, ``y = softmax(h1 W2 + b_y)`` (with the h1 of the pass
  before), then ``h1 = s(h0 W1 + b1 + y W2')``.

The classifier's output is ``log y`` of the last pass, so the model plugs into every attack as a softmax
head: FGSM's gradient flows through the unrolled inference (the paper attacks the MP-DBM that way).

Multi-prediction training (pylearn2's ``MultiPrediction`` with ``MaskGen``): each minibatch binarizes its
pixels stochastically, hides each pixel and each label with probability ``dbm_drop_prob``, fills in the
hidden ones by the same mean field in which the visible layer takes part (``do_inpainting``: after each
``h0`` step, ``v = s(h0 W0' + b_v)`` where hidden, the data where observed; the hidden labels the same from
``y``; observed units stay clamped), and scores the last pass's predictions of the hidden units:
binary cross-entropy per hidden pixel and cross-entropy for a hidden label, summed and divided by the
number of pixels (pylearn2's mean over the batch's pixel entries, its label term scaled by 1/784).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from advbench.config.specs import ModelSpec


class MPDBM(nn.Module):
    """An MP-DBM of ``spec``: ``dbm_units`` hidden units in two layers and a softmax over the classes."""

    head = "softmax"  # forward returns log-probabilities of the label layer
    pylearn2_init = False  # the recipe's own init (sparse and uniform weights, constant biases)

    def __init__(self, spec: ModelSpec, n_in: int, n_classes: int) -> None:
        super().__init__()
        if len(spec.dbm_units) != 2:
            raise ValueError(
                f"models.{spec.name}.dbm_units: an MP-DBM has two hidden layers, got {spec.dbm_units}"
            )
        h0, h1 = spec.dbm_units
        self.w0, self.w1, self.w2 = nn.Linear(n_in, h0), nn.Linear(h0, h1), nn.Linear(h1, n_classes)
        self.v_bias = nn.Parameter(torch.zeros(n_in))
        self.iterations = spec.dbm_iterations
        self.drop_prob = spec.dbm_drop_prob
        self.max_col_norms = spec.dbm_max_col_norms
        self._init(spec)

    @property
    def layers(self) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        """The weights from the pixels to h0, h0 to h1, and h1 to the labels."""
        return self.w0, self.w1, self.w2

    @torch.no_grad()
    def _init(self, spec: ModelSpec) -> None:
        """pylearn2's: a layer with ``sparse_init`` k > 0 gets k nonzero N(0, 1) incoming weights per unit
        at random inputs, with 0 its weights are U(-init_range, init_range); biases ``dbm_init_bias``."""
        for layer, k, bias in zip(self.layers, spec.dbm_sparse_init, spec.dbm_init_bias, strict=True):
            if k > 0:
                layer.weight.zero_()
                n_out, n_in = layer.weight.shape
                idx = torch.rand(n_out, n_in).argsort(dim=1)[:, :k]
                layer.weight.scatter_(1, idx, torch.randn(n_out, k))
            else:
                layer.weight.uniform_(-spec.init_range, spec.init_range)
            layer.bias.fill_(bias)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """The visible biases from the training pixels' marginals (pylearn2 ``bias_from_marginals``):
        ``logit`` of each pixel's mean, clipped to [1e-7, 1 - 1e-7]."""
        self.v_bias.copy_(torch.logit(x.double().mean(dim=0).clamp(1e-7, 1 - 1e-7)).to(self.v_bias))

    @torch.no_grad()
    def constrain(self) -> None:
        """Cap each unit's incoming weight norm, one cap per layer (``dbm_max_col_norms``)."""
        for layer, cap in zip(self.layers, self.max_col_norms, strict=True):
            norms = layer.weight.norm(dim=1, keepdim=True)
            layer.weight.mul_(torch.clamp(cap / norms.clamp_min(1e-7), max=1.0))

    # -- the messages of the mean-field updates
    def _h0(self, v: torch.Tensor, h1: torch.Tensor | None) -> torch.Tensor:
        w0, w1 = self.w0, self.w1
        if h1 is None:  # the first pass: the input from below doubled, nothing from above
            return torch.sigmoid(2 * F.linear(v, w0.weight) + w0.bias)
        return torch.sigmoid(w0(v) + h1 @ w1.weight)

    def _h1(self, h0: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        w1, w2 = self.w1, self.w2
        if y is None:  # the first pass: the input from below doubled, nothing from above
            return torch.sigmoid(2 * F.linear(h0, w1.weight) + w1.bias)
        return torch.sigmoid(w1(h0) + y @ w2.weight)

    def _label_logits(self, h1: torch.Tensor) -> torch.Tensor:
        return self.w2(h1)

    def _visible_logits(self, h0: torch.Tensor) -> torch.Tensor:
        return h0 @ self.w0.weight + self.v_bias

    def label_logits(self, v: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
        """The label layer's pre-softmax input after mean-field inference with the labels unobserved
        (pylearn2 ``mf``): the first pass bottom-up with doubled weights, then ``iterations - 1`` passes."""
        h0 = self._h0(v, None)
        h1 = self._h1(h0, None)
        z = self._label_logits(h1)
        for _ in range((iterations or self.iterations) - 1):
            h0 = self._h0(v, h1)
            z = self._label_logits(h1)
            h1 = self._h1(h0, torch.softmax(z, dim=1))
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.label_logits(x.flatten(1)), dim=1)

    def inpaint(
        self,
        v: torch.Tensor,
        y: torch.Tensor,
        drop_v: torch.Tensor,
        drop_y: torch.Tensor,
        start: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """pylearn2's ``do_inpainting``: the last pass's logits of the visible and the label units,
        mean field filling in the units where ``drop_v`` (pixels) and ``drop_y`` (labels, per example) are
        1, the others clamped to ``v`` and the one-hot labels ``y``. Hidden pixels start at ``start``,
        by default ``sigmoid(b_v)`` with no gradient through it (pylearn2 blocks it); hidden labels start
        at ``softmax(b_y)``, gradient and all."""
        keep_v, keep_y = 1 - drop_v, (1 - drop_y)[:, None]
        drop_y = drop_y[:, None]
        start = torch.sigmoid(self.v_bias).detach() if start is None else start
        v_hat = start * drop_v + v * keep_v
        zv = self.v_bias.expand_as(v)
        h0 = self._h0(v_hat, None)
        h1 = self._h1(h0, None)
        zy = self.w2.bias.expand_as(y)  # hidden labels start at the prior softmax(b_y)
        y_hat = drop_y * torch.softmax(zy, dim=1) + keep_y * y
        h1 = self._h1(h0, y_hat)  # pylearn2 recomputes h1 with y, undoubled
        for _ in range(self.iterations - 1):
            h0 = self._h0(v_hat, h1)
            zy = self._label_logits(h1)
            y_hat = drop_y * torch.softmax(zy, dim=1) + keep_y * y
            zv = self._visible_logits(h0)
            v_hat = drop_v * torch.sigmoid(zv) + keep_v * v
            h1 = self._h1(h0, y_hat)
        return zv, zy

    def mp_loss(
        self,
        v: torch.Tensor,
        y: torch.Tensor,
        drop_v: torch.Tensor,
        drop_y: torch.Tensor,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The multi-prediction objective per example (binary ``v``, integer labels ``y``, masks given):
        ``(sum of the hidden pixels' binary cross-entropy + the hidden label's cross-entropy) / pixels``."""
        onehot = F.one_hot(y, self.w2.out_features).to(v)
        zv, zy = self.inpaint(v, onehot, drop_v, drop_y, start)
        pixels = F.binary_cross_entropy_with_logits(zv, v, reduction="none")
        label = F.cross_entropy(zy, y, reduction="none")
        return ((drop_v * pixels).sum(dim=1) + drop_y * label) / v.shape[1]

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One minibatch's objective per example: pixels binarized at random (``v ~ Bernoulli(x)``), each
        pixel and each label hidden with probability ``dbm_drop_prob`` (torch's global generator, as
        dropout's)."""
        v = torch.bernoulli(x.flatten(1))
        drop_v = torch.bernoulli(torch.full_like(v, self.drop_prob))
        drop_y = torch.bernoulli(torch.full((len(v),), self.drop_prob, dtype=v.dtype, device=v.device))
        return self.mp_loss(v, y, drop_v, drop_y)


def mean_field_cost(spec: ModelSpec, n_in: int, n_classes: int) -> float:
    """Multiply-adds of one example's classification (``dbm_iterations`` passes; each pass multiplies by
    W0, W1 twice, and W2 twice)."""
    h0, h1 = spec.dbm_units
    return spec.dbm_iterations * (n_in * h0 + 2 * h0 * h1 + 2 * h1 * n_classes)
