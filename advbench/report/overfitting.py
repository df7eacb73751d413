"""Catastrophic overfitting (Wong, Rice & Kolter 2020), read from the training curves: within a few epochs
of single-step adversarial training the PGD error of the validation set climbs toward 100% while the FGSM
error keeps falling: the model has learnt to defeat the one step it is trained against, not the threat.

The curves hold the PGD error only for runs with ``train.monitor_pgd``; other runs have no row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: a rise of the validation PGD error above its lowest so far larger than this (rate units), with the FGSM
#: error no higher than at that lowest epoch, marks the epoch of catastrophic overfitting
CO_RISE = 0.20
RUN_KEYS = ["model", "regime"]
CO_COLUMNS = [
    *RUN_KEYS, "tasks", "overfit_tasks", "overfit_epochs", "epochs", "lowest_pgd_error", "final_pgd_error",
    "final_fgsm_error", "final_gap",
]  # fmt: skip


def overfitting_epoch(epochs: Sequence[int], fgsm: Sequence[float], pgd: Sequence[float]) -> int | None:
    """The first epoch whose PGD error lies more than :data:`CO_RISE` above the lowest PGD error of the
    epochs before it while its FGSM error is no higher than at that lowest epoch; None where none does."""
    fgsm_errors, pgd_errors = np.asarray(fgsm, dtype=float), np.asarray(pgd, dtype=float)
    for i in range(1, len(pgd_errors)):
        low = int(np.argmin(pgd_errors[:i]))
        rose = pgd_errors[i] - pgd_errors[low] > CO_RISE
        if rose and fgsm_errors[i] <= fgsm_errors[low]:
            return int(epochs[i])
    return None


def catastrophic_overfitting(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run with PGD monitoring: its tasks (seeds × members), how many overfit catastrophically and at
    which epoch (``–``: not), and the mean over tasks of the lowest and the final validation PGD error, the
    final FGSM error and the final gap PGD − FGSM (%). Both stages count, in epoch order."""
    if "val_pgd_error" not in curves or curves["val_pgd_error"].isna().all():
        return pd.DataFrame(columns=CO_COLUMNS)
    monitored = curves[curves["val_pgd_error"].notna()].sort_values("epoch")
    member = monitored["member"].fillna(-1) if "member" in monitored else -1
    tasks = []
    for (model, regime, _, _), task in monitored.assign(member=member).groupby(
        [*RUN_KEYS, "seed", "member"], sort=True
    ):
        fgsm, pgd = task["val_adv_error"].to_numpy(), task["val_pgd_error"].to_numpy()
        epoch = overfitting_epoch(task["epoch"].to_list(), fgsm, pgd)
        tasks.append(
            {"model": model, "regime": regime, "epoch": epoch, "epochs": len(task)}
            | {"lowest_pgd_error": pgd.min(), "final_pgd_error": pgd[-1], "final_fgsm_error": fgsm[-1]}
        )
    rows = []
    for (model, regime), runs in pd.DataFrame(tasks).groupby(RUN_KEYS, sort=True):
        found = runs["epoch"].dropna().astype(int)
        means = runs[["lowest_pgd_error", "final_pgd_error", "final_fgsm_error"]].mean() * 100
        rows.append(
            {"model": model, "regime": regime, "tasks": len(runs), "overfit_tasks": len(found)}
            | {"overfit_epochs": ", ".join(map(str, found)) or "–", "epochs": int(runs["epochs"].max())}
            | means.to_dict()
            | {"final_gap": means["final_pgd_error"] - means["final_fgsm_error"]}
        )
    return pd.DataFrame(rows, columns=CO_COLUMNS)
