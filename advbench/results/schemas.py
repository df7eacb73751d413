"""The Arrow schema of every results table."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "3"


_KEYS = [
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
]


_ATTACK_KEYS = [
    pa.field("attack", pa.string(), nullable=False),
    pa.field("eps", pa.float64(), nullable=False),
    pa.field("clipped", pa.bool_(), nullable=False),
    pa.field("label_source", pa.string(), nullable=False),
]


_COUNTS = [
    pa.field("n", pa.int64(), nullable=False),
    pa.field("n_wrong", pa.int64(), nullable=False),
    pa.field("error", pa.float64(), nullable=False),
    pa.field("mean_conf_wrong", pa.float64(), nullable=True),
    pa.field("mean_conf", pa.float64(), nullable=False),
    pa.field("max_perturbation", pa.float64(), nullable=False),
    # FGSM rows: test examples whose input gradient is zero everywhere, or not finite (gradient masking)
    pa.field("n_zero_grad", pa.int64(), nullable=True),
    pa.field("n_nonfinite_grad", pa.int64(), nullable=True),
]


SCHEMAS: dict[str, pa.Schema] = {
    "attack": pa.schema(
        [*_KEYS, pa.field("model", pa.string(), False), pa.field("regime", pa.string(), False), *_ATTACK_KEYS]
        + _COUNTS
    ),
    "transfer": pa.schema(
        [
            *_KEYS,
            pa.field("source_model", pa.string(), False),
            pa.field("source_regime", pa.string(), False),
            pa.field("target_model", pa.string(), False),
            pa.field("target_regime", pa.string(), False),
            *_ATTACK_KEYS,
            *_COUNTS,
        ]
    ),
    "curves": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("stage", pa.int64(), False),
            pa.field("epoch", pa.int64(), False),
            pa.field("lr", pa.float64(), False),
            pa.field("momentum", pa.float64(), False),
            pa.field("train_loss", pa.float64(), False),
            pa.field("train_error", pa.float64(), False),
            pa.field("train_adv_error", pa.float64(), False),
            pa.field("val_error", pa.float64(), False),
            pa.field("val_adv_error", pa.float64(), False),
            pa.field("val_pgd_error", pa.float64(), True),  # with train.monitor_pgd only
            pa.field("seconds", pa.float64(), False),
            pa.field("is_best", pa.bool_(), False),
            pa.field("member", pa.int64(), True),
        ]
    ),
    "agreement": pa.schema(
        [
            *_KEYS,
            pa.field("eps", pa.float64(), False),
            pa.field("reference", pa.string(), False),
            pa.field("observer", pa.string(), False),
            pa.field("condition", pa.string(), False),
            pa.field("n", pa.int64(), False),
            pa.field("n_agree", pa.int64(), False),
            pa.field("rate", pa.float64(), True),
        ]
    ),
    "sweep": pa.schema(
        [
            *_KEYS,
            pa.field("run", pa.string(), False),
            pa.field("example", pa.int64(), False),
            pa.field("label", pa.int64(), False),
            pa.field("eps", pa.float64(), False),
            pa.field("class", pa.int64(), False),
            pa.field("logit", pa.float64(), False),
        ]
    ),
    "ensemble": pa.schema(
        [
            *_KEYS,
            pa.field("run", pa.string(), False),
            pa.field("members", pa.int64(), False),
            pa.field("attacked", pa.string(), False),
            *_ATTACK_KEYS,
            *_COUNTS,
        ]
    ),
    "rubbish": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("threshold", pa.float64(), False),
            pa.field("n", pa.int64(), False),
            pa.field("n_confident", pa.int64(), False),
            pa.field("error", pa.float64(), False),
            pa.field("mean_conf", pa.float64(), True),
        ]
    ),
    "rotation": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("angle", pa.float64(), False),
            pa.field("n", pa.int64(), False),
            pa.field("mean_l2", pa.float64(), False),
            pa.field("fgsm_mean_eps", pa.float64(), False),
            *(
                f
                for kind in ("", "random_", "fgsm_")
                for f in (
                    pa.field(f"{kind}n_wrong", pa.int64(), False),
                    pa.field(f"{kind}error", pa.float64(), False),
                    pa.field(f"{kind}mean_conf_wrong", pa.float64(), True),
                )
            ),
        ]
    ),
    "saliency": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("n", pa.int64(), False),
            pa.field("samples", pa.int64(), False),
            pa.field("noise", pa.float64(), False),
            pa.field("gradient_alignment", pa.float64(), False),
            pa.field("smoothgrad_alignment", pa.float64(), False),
            pa.field("gradient_smoothgrad_cosine", pa.float64(), False),
        ]
    ),
    "rubbish_classes": pa.schema(
        [
            *_KEYS,
            pa.field("model", pa.string(), False),
            pa.field("regime", pa.string(), False),
            pa.field("class", pa.int64(), False),
            pa.field("n_predicted", pa.int64(), False),
            pa.field("share", pa.float64(), True),
        ]
    ),
}


_PANEL_KEYS = [*_KEYS, pa.field("model", pa.string(), False), pa.field("regime", pa.string(), False)]


_IMAGE = [pa.field("shape", pa.list_(pa.int64()), False)]  # (channels, height, width) of the flat images
