"""The attack methods beyond FGSM (BIM, PGD with restarts, least-likely-class FGSM, a random sign), each
through the one L-inf core: against torchattacks' implementations on the same model and images, their
properties, their scores, and the trust checks that read them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from advbench.attacks import (
    attack_mode,
    fgsm_from_direction,
    least_likely,
    linf_pgd,
    pgd_restarts,
    random_sign,
)
from advbench.evaluation.scores import MultiStep, fgsm_scores, method_scores, single_step_direction
from advbench.report.tables import trust_checks

EPS = 0.1


@pytest.fixture()
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(64, 20, generator=g), torch.randint(0, 3, (64,), generator=g)


def predictions(model, x):
    with attack_mode(model), torch.inference_mode():
        return model(x).argmax(dim=1)


def test_bim_and_pgd_without_a_random_start_equal_torchattacks(small_mlp, batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    ours = linf_pgd(small_mlp, x, y, EPS, steps=7, step_size=0.02, clip=(0.0, 1.0))
    theirs = torchattacks.BIM(small_mlp.eval(), eps=EPS, alpha=0.02, steps=7)(x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    pgd = torchattacks.PGD(small_mlp.eval(), eps=EPS, alpha=0.02, steps=7, random_start=False)(x, y)
    torch.testing.assert_close(ours, pgd, atol=1e-6, rtol=0)


def test_least_likely_fgsm_equals_torchattacks_targeted_mode(small_mlp, batch):
    """Kurakin et al.'s target is the least likely class; torchattacks' skips the true label, so the two
    agree wherever the true label is not the least likely one."""
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    attack = torchattacks.FGSM(small_mlp.eval(), eps=EPS)
    attack.set_mode_targeted_least_likely(quiet=True)
    theirs = attack(x, y)
    direction = single_step_direction("fgsm_ll", small_mlp, x, torch.Generator())
    ours = fgsm_from_direction(x, direction, EPS, True)
    target = least_likely(small_mlp, x)
    same = target != y
    assert same.sum() > len(y) // 2
    torch.testing.assert_close(ours[same], theirs[same], atol=1e-6, rtol=0)
    # the step goes toward the least likely class: its probability rises for (nearly) every example
    with attack_mode(small_mlp), torch.inference_mode():
        before = small_mlp(x).softmax(1).gather(1, target[:, None])
        after = small_mlp(ours).softmax(1).gather(1, target[:, None])
    assert float((after > before).float().mean()) > 0.9


def test_pgd_stays_in_the_ball_and_a_restart_only_adds_broken_examples(small_mlp, batch):
    x, y = batch
    first = torch.Generator().manual_seed(0)
    single = linf_pgd(small_mlp, x, y, EPS, 5, 0.05, True, (0.0, 1.0), generator=first)
    both = pgd_restarts(small_mlp, x, y, EPS, 5, 0.05, 3, (0.0, 1.0), torch.Generator().manual_seed(0))
    assert (both - x).abs().max() <= EPS + 1e-6 and both.min() >= 0 and both.max() <= 1
    fooled_once, fooled = predictions(small_mlp, single) != y, predictions(small_mlp, both) != y
    assert (fooled | ~fooled_once).all()  # the first restart's broken examples stay broken
    assert fooled.sum() >= fooled_once.sum()


def test_random_sign_moves_every_pixel_by_eps_whatever_the_model(batch):
    x, _ = batch
    x_adv = random_sign(x, EPS, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close((x_adv - x).abs(), torch.full_like(x, EPS))
    again = random_sign(x, EPS, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x_adv, again) and 0.4 < float((x_adv > x).float().mean()) < 0.6


def test_the_scores_of_each_method(small_mlp, batch):
    x, y = batch
    grid, clips = [0.0, 0.05, EPS], [False, True]
    fgsm = fgsm_scores(small_mlp, small_mlp, x, y, grid, clips, 16)
    assert fgsm[0]["n_zero_grad"] == 0 and fgsm[0]["n_nonfinite_grad"] == 0
    multi = MultiStep(steps=10, restarts=2)
    pgd = method_scores(small_mlp, small_mlp, x, y, "pgd", grid, clips, 16, multistep=multi)
    noise = method_scores(small_mlp, small_mlp, x, y, "random_sign", grid, clips, 16)
    for f, p, r in zip(fgsm, pgd, noise, strict=True):
        assert p["max_perturbation"] <= f["eps"] + 1e-6 and r["max_perturbation"] <= f["eps"] + 1e-6
        assert p["error"] >= f["error"] - 2 / 64  # many steps beat one, up to an example or two
    assert noise[-1]["error"] <= fgsm[-1]["error"]
    with pytest.raises(ValueError, match="not a multi-step attack: 'cw'"):
        method_scores(small_mlp, small_mlp, x, y, "cw", grid, clips, 16)


def attack_rows(errors: dict[str, dict[str, float]], zero: int = 0) -> pd.DataFrame:
    rows = []
    for regime, by_method in errors.items():
        for method, error in by_method.items():
            for seed in (0, 1):
                grads = {"n_zero_grad": zero, "n_nonfinite_grad": 0} if method == "fgsm" else {}
                rows.append(
                    {"seed": seed, "model": "m", "regime": regime, "attack": method, "eps": 0.25}
                    | {"clipped": False, "error": error, "n": 100, **grads}
                )
                rows.append(rows[-1] | {"eps": 0.0, "error": 0.01})
    return pd.DataFrame(rows)


def test_trust_checks_flag_masking_a_broken_attack_and_a_useless_gradient():
    attack = attack_rows(
        {
            "masked": {"fgsm": 0.2, "pgd": 0.9, "random_sign": 0.05},
            "honest": {"fgsm": 0.8, "pgd": 0.85, "random_sign": 0.1},
            "broken": {"fgsm": 0.8, "pgd": 0.5, "random_sign": 0.1},
            "flat": {"fgsm": 0.1, "pgd": 0.1, "random_sign": 0.3},
        }
    )
    table = trust_checks(attack, pd.DataFrame()).set_index("regime")
    assert table.loc["masked", "flags"].startswith("masking signature: multi-step 90.0% vs FGSM 20.0%")
    assert table.loc["honest", "flags"] == ""
    assert table.loc["broken", "flags"] == "multi-step attack below FGSM"
    assert table.loc["flat", "flags"] == "random sign as strong as FGSM"
    assert (table["eps"] == 0.25).all() and table.loc["masked", "pgd_error"] == pytest.approx(90.0)
    large = attack_rows({"stubborn": {"fgsm": 0.5, "pgd": 0.5}})
    large = pd.concat([large, large[large["attack"] == "pgd"].assign(eps=1.0, error=0.3)])
    stubborn = trust_checks(large, pd.DataFrame()).iloc[0]
    # its PGD error falls from .5 at eps .25 to .3 at eps 1: the label-leaking flag too
    assert stubborn["flags"] == "error falls as eps grows; accuracy above one half at eps 1"
    assert stubborn["large_eps_error"] == 30.0
    zeros = trust_checks(attack_rows({"dead": {"fgsm": 0.5, "pgd": 0.5}}, zero=30), pd.DataFrame())
    assert zeros["flags"].iloc[0] == "zero input gradients" and zeros["zero_grad_share"].iloc[0] == 30.0


def test_trust_checks_flag_another_models_examples_beating_the_models_own():
    attack = attack_rows({"target": {"fgsm": 0.3, "pgd": 0.35}})
    cells = {"target_model": "m", "target_regime": "target", "attack": "fgsm", "eps": 0.25, "clipped": False}
    transfer = pd.DataFrame(
        [cells | {"source_model": "a", "source_regime": "clean", "seed": s, "error": 0.2} for s in (0, 1)]
        + [cells | {"source_model": "b", "source_regime": "clean", "seed": s, "error": 0.5} for s in (0, 1)]
    )
    table = trust_checks(attack, transfer)
    assert table["best_transfer_error"].iloc[0] == pytest.approx(50.0)  # the strongest source, not the mean
    assert table["flags"].iloc[0] == "transferred examples beat its own"


def test_fgsm_on_predictions_is_fgsm_with_predicted_labels(small_mlp, batch):
    x, y = batch
    grid, clips = [0.0, EPS], [False, True]
    pred = method_scores(small_mlp, small_mlp, x, y, "fgsm_pred", grid, clips, 16)
    reference = fgsm_scores(small_mlp, small_mlp, x, y, grid, clips, 16, label_source="predicted")
    assert [r["error"] for r in pred] == [r["error"] for r in reference]
    assert pred[-1]["error"] != fgsm_scores(small_mlp, small_mlp, x, y, grid, clips, 16)[-1]["error"]


def test_trust_checks_flag_label_leaking():
    attack = attack_rows({"leaky": {"fgsm": 0.3, "pgd": 0.35, "fgsm_pred": 0.6}})
    flags = trust_checks(attack, pd.DataFrame())["flags"].iloc[0]
    assert flags == "label leaking: FGSM on true labels 30.0% vs on predictions 60.0%"


def test_fgsm_counts_zero_and_nonfinite_gradients(small_mlp, batch):
    """With every weight zero the input gradient is zero for a finite input and NaN for one holding a NaN:
    both counted in every row; a zero sign moves no example at any eps."""
    x, y = batch
    x = x.clone()
    x[:3, 5] = float("nan")
    with torch.no_grad():
        for p in small_mlp.parameters():
            p.zero_()
    rows = {
        (r["eps"], r["clipped"]): r for r in fgsm_scores(small_mlp, small_mlp, x, y, [0.0, EPS], [False], 16)
    }
    for row in rows.values():
        assert row["n_zero_grad"] == len(x) - 3 and row["n_nonfinite_grad"] == 3
    clean = fgsm_scores(small_mlp, small_mlp, x[3:], y[3:], [0.0, EPS], [False, True], 16)
    assert [r["max_perturbation"] for r in clean] == [0.0, 0.0, 0.0, 0.0]
