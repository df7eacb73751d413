"""The specs a config's entries become: a model (architecture and training), a regime."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from advbench.config.schema import defaults, top_default


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range; the message names the key."""


# The closed sets of the config, as the schema's enums list them (a test keeps the two equal). Members are
# strings: they compare equal to the config's values and serialize as them.
class Arch(StrEnum):
    SOFTMAX = "softmax"
    LOGISTIC = "logistic"
    MAXOUT = "maxout"
    RBF = "rbf"
    CONV_MAXOUT = "conv_maxout"
    GOOGLENET = "googlenet"
    LENET = "lenet"
    MP_DBM = "mp_dbm"
    EXTERNAL = "external"


class Head(StrEnum):
    """A model's outputs: one softmax, or an independent sigmoid per class."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


class RegimeKind(StrEnum):
    CLEAN = "clean"
    FGSM = "fgsm"
    FGSM_RS = "fgsm_rs"
    PGD = "pgd"
    NOISE_SIGN = "noise_sign"
    NOISE_UNIFORM = "noise_uniform"
    WORST_CASE = "worst_case"
    STATIC = "static"
    NONE = "none"


class Init(StrEnum):
    """Where a ``static`` run's training starts: fresh weights, or its source model's."""

    SCRATCH = "scratch"
    CONTINUE = "continue"


class Perturb(StrEnum):
    """Where the training-time FGSM perturbation goes: the input, or a maxout MLP's hidden layer."""

    INPUT = "input"
    HIDDEN1 = "hidden1"
    HIDDEN2 = "hidden2"


class Method(StrEnum):
    """The attacks of the attack and transfer jobs, all through the one L-inf core."""

    FGSM = "fgsm"
    BIM = "bim"
    PGD = "pgd"
    FGSM_LL = "fgsm_ll"
    FGSM_PRED = "fgsm_pred"
    RANDOM_SIGN = "random_sign"


class SelectOn(StrEnum):
    """Which validation error picks stage 1's best epoch."""

    CLEAN = "clean"
    ADVERSARIAL = "adversarial"


class LabelSource(StrEnum):
    """The labels an attack perturbs against: the true ones (the paper) or the model's predictions."""

    TRUE = "true"
    PREDICTED = "predicted"


# every default is the schema's (one source; a spec built in code equals one from a validated config)
_TRAIN, _MODEL, _REGIME = defaults("train"), defaults("model"), defaults("regime")


@dataclass(frozen=True)
class TrainSpec:
    """SGD schedule of the paper's pylearn2 maxout recipe (FIGURES.md); every value is a config knob."""

    batch_size: int = _TRAIN["batch_size"]
    lr: float = _TRAIN["lr"]
    lr_decay: float = _TRAIN["lr_decay"]
    lr_min: float = _TRAIN["lr_min"]
    momentum_start: float = _TRAIN["momentum_start"]
    momentum_end: float = _TRAIN["momentum_end"]
    momentum_start_epoch: int = _TRAIN["momentum_start_epoch"]
    momentum_saturate_epoch: int = _TRAIN["momentum_saturate_epoch"]
    max_epochs: int = _TRAIN["max_epochs"]
    patience: int = _TRAIN["patience"]
    eval_batch_size: int = _TRAIN["eval_batch_size"]
    select_on: SelectOn = SelectOn(_TRAIN["select_on"])
    monitor_eps: float = _TRAIN["monitor_eps"]
    monitor_train: int | None = _TRAIN["monitor_train"]
    monitor_val: int | None = _TRAIN["monitor_val"]
    monitor_val_adv: int | None = _TRAIN["monitor_val_adv"]
    monitor_pgd: int | None = _TRAIN["monitor_pgd"]
    monitor_pgd_steps: int = _TRAIN["monitor_pgd_steps"]
    retrain: bool = _TRAIN["retrain"]
    retrain_lr: float = _TRAIN["retrain_lr"]
    retrain_momentum: float = _TRAIN["retrain_momentum"]
    retrain_max_epochs: int = _TRAIN["retrain_max_epochs"]
    save_every: int = _TRAIN["save_every"]
    n_train: int | None = _TRAIN["n_train"]
    lr_linear_saturate_epoch: int | None = _TRAIN["lr_linear_saturate_epoch"]
    lr_linear_factor: float = _TRAIN["lr_linear_factor"]

    def __post_init__(self) -> None:
        object.__setattr__(self, "select_on", SelectOn(self.select_on))


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one model entry of ``config['models']``."""

    name: str
    arch: Arch
    dataset: str = top_default("dataset")
    units: int = _MODEL["units"]
    pieces: int = _MODEL["pieces"]
    hidden_layers: int = _MODEL["hidden_layers"]
    init_range: float = _MODEL["init_range"]
    max_col_norm: float | None = _MODEL["max_col_norm"]
    input_keep: float = _MODEL["input_keep"]
    input_scale: float = _MODEL["input_scale"]
    hidden_keep: float = _MODEL["hidden_keep"]
    hidden_scale: float = _MODEL["hidden_scale"]
    output: Head = Head(_MODEL["output"])
    classes: tuple[int, ...] | None = _MODEL["classes"]
    rbf_mu_init: float = _MODEL["rbf_mu_init"]
    rbf_beta_init: float = _MODEL["rbf_beta_init"]
    channels: tuple[int, ...] = tuple(_MODEL["channels"])
    kernels: tuple[int, ...] = tuple(_MODEL["kernels"])
    pads: tuple[int, ...] = tuple(_MODEL["pads"])
    pools: tuple[int, ...] = tuple(_MODEL["pools"])
    pool_strides: tuple[int, ...] = tuple(_MODEL["pool_strides"])
    conv_pieces: int = _MODEL["conv_pieces"]
    max_kernel_norm: tuple[float, ...] | None = _MODEL["max_kernel_norm"]
    conv_lr_scale: float = _MODEL["conv_lr_scale"]
    resize: int = _MODEL["resize"]
    factory: str | None = _MODEL["factory"]
    weights: str | None = _MODEL["weights"]
    torchscript: str | None = _MODEL["torchscript"]
    input_shape: tuple[int, ...] | None = _MODEL["input_shape"]
    dbm_units: tuple[int, ...] = tuple(_MODEL["dbm_units"])
    dbm_iterations: int = _MODEL["dbm_iterations"]
    dbm_drop_prob: float = _MODEL["dbm_drop_prob"]
    dbm_sparse_init: tuple[int, ...] = tuple(_MODEL["dbm_sparse_init"])
    dbm_init_bias: tuple[float, ...] = tuple(_MODEL["dbm_init_bias"])
    dbm_max_col_norms: tuple[float, ...] = tuple(_MODEL["dbm_max_col_norms"])
    train: TrainSpec = field(default_factory=TrainSpec)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", Arch(self.arch))
        object.__setattr__(self, "output", Head(self.output))


@dataclass(frozen=True)
class RegimeSpec:
    """Training objective: ``clean``, the paper's FGSM objective ``alpha*J(x) + (1-alpha)*J(x_adv)``, the
    same mixture with the examples of fast adversarial training (``fgsm_rs``) or of PGD (``pgd``), its
    noise controls (``noise_sign``, ``noise_uniform``), §5's closed form of the adversarial term for a
    linear model (``worst_case``, optionally ``pairwise``), or static augmentation with fixed FGSM examples
    of a trained ``source_regime`` model (``static``); optionally plus L1 weight decay on the first
    layer."""

    name: str
    kind: RegimeKind
    alpha: float = _REGIME["alpha"]
    eps: float = _REGIME["eps"]
    clip: bool = _REGIME["clip"]
    grad_in_train_mode: bool = _REGIME["grad_in_train_mode"]
    l1_first_layer: float = _REGIME["l1_first_layer"]
    pairwise: bool = _REGIME["pairwise"]
    steps: int = _REGIME["steps"]
    step_size: float | None = _REGIME["step_size"]
    perturb: Perturb = _REGIME["perturb"]
    source_regime: str = _REGIME["source_regime"]
    init: Init = _REGIME["init"]

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RegimeKind(self.kind))
        object.__setattr__(self, "perturb", Perturb(self.perturb))
        object.__setattr__(self, "init", Init(self.init))

    @property
    def source(self) -> str | None:
        """A ``static`` regime's source regime (the model whose FGSM examples it trains on); else None."""
        return self.source_regime if self.kind == RegimeKind.STATIC else None

    @property
    def attack_steps(self) -> int:
        """The signed-gradient steps that make an ``fgsm_rs`` or ``pgd`` training example."""
        return self.steps if self.kind == RegimeKind.PGD else 1

    @property
    def attack_step(self) -> float:
        """One such step in input units: ``step_size * eps``, by default Wong et al.'s 1.25 eps for
        ``fgsm_rs`` and Madry et al.'s 2.5 eps / steps for ``pgd``."""
        if self.step_size is not None:
            return self.step_size * self.eps
        return (1.25 if self.kind == RegimeKind.FGSM_RS else 2.5 / self.attack_steps) * self.eps

    @property
    def hidden_layer(self) -> int:
        """The hidden layer (1, 2) that training-time FGSM perturbs; 0: the input."""
        return 0 if self.perturb == Perturb.INPUT else int(self.perturb.removeprefix("hidden"))


def model_spec(name: str, entry: dict[str, Any]) -> ModelSpec:
    """Build a :class:`ModelSpec` from a (schema-validated) config entry."""
    fields = {k: v for k, v in entry.items() if k != "train"}
    for key in (
        "classes",
        "channels",
        "kernels",
        "pads",
        "pools",
        "pool_strides",
        "max_kernel_norm",
        "input_shape",
        "dbm_units",
        "dbm_sparse_init",
        "dbm_init_bias",
        "dbm_max_col_norms",
    ):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return ModelSpec(name=name, train=TrainSpec(**entry.get("train", {})), **fields)


def regime_spec(name: str, entry: dict[str, Any]) -> RegimeSpec:
    """Build a :class:`RegimeSpec` from a (schema-validated) config entry."""
    return RegimeSpec(name=name, **entry)


def spec_to_json(spec: ModelSpec | RegimeSpec) -> str:
    """Serialize a spec for the command line of a rule."""
    return json.dumps(asdict(spec), sort_keys=True)


def model_spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """Inverse of ``asdict`` on a :class:`ModelSpec` (the name travels inside)."""
    data = dict(data)
    return model_spec(data.pop("name"), data)


def regime_spec_from_dict(data: dict[str, Any]) -> RegimeSpec:
    data = dict(data)
    return regime_spec(data.pop("name"), data)


def model_spec_from_json(text: str) -> ModelSpec:
    return model_spec_from_dict(json.loads(text))


def regime_spec_from_json(text: str) -> RegimeSpec:
    return regime_spec_from_dict(json.loads(text))
