"""Model records (one JSON and one Hugging Face model card per trained run) built from attack and training
results, and the leaderboard generated from the records alone."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import yaml

from advbench.config.specs import model_spec, regime_spec
from advbench.report.records import RecordError, leaderboard, read_records, write_records
from advbench.results.tables import write_table

# error per (attack, eps, clipped) and seed: three seeds of a model that PGD breaks more than FGSM
ERRORS = {
    ("fgsm", 0.0, False): [0.010, 0.012, 0.014],
    ("fgsm", 0.25, False): [0.20, 0.22, 0.24],
    ("fgsm", 0.25, True): [0.18, 0.20, 0.22],
    ("pgd", 0.25, True): [0.60, 0.62, 0.64],
    ("random_sign", 0.25, True): [0.02, 0.02, 0.02],
}
N = 10_000


def _attack_rows(model: str, regime: str, errors: dict) -> list[dict]:
    rows = []
    for (attack, eps, clipped), per_seed in errors.items():
        for seed, error in enumerate(per_seed):
            rows.append(
                {"dataset": "mnist", "seed": seed, "model": model, "regime": regime, "attack": attack}
                | {"eps": eps, "clipped": clipped, "label_source": "true", "n": N}
                | {"n_wrong": round(error * N), "error": error, "mean_conf_wrong": 0.9, "mean_conf": 0.95}
                | {"max_perturbation": eps, "n_zero_grad": None, "n_nonfinite_grad": None}
            )
    return rows


def _curves(model: str, regime: str) -> list[dict]:
    return [
        {"dataset": "mnist", "seed": seed, "model": model, "regime": regime, "stage": 1, "epoch": epoch}
        | {"lr": 0.1, "momentum": 0.5, "train_loss": 0.1, "train_error": 0.01, "train_adv_error": 0.1}
        | {"val_error": 0.05 - 0.01 * epoch, "val_adv_error": 0.5, "val_pgd_error": None}
        | {"seconds": 2.0, "is_best": epoch == 3, "member": None}
        for seed in range(3)
        for epoch in (1, 2, 3)
    ]


def _job(*runs: tuple[str, str]) -> dict:
    spec = asdict(model_spec("maxout", {"arch": "maxout", "units": 8, "pieces": 2}))
    regimes = {r: asdict(regime_spec(r, {"kind": "fgsm" if r != "clean" else "clean"})) for _, r in runs}
    entries = {f"{m}-{r}": {"model": spec, "regime": regimes[r]} for m, r in runs}
    return {"runs": entries, "eps": {"mnist": 0.25}}


def _write(tmp_path, runs: dict[tuple[str, str], dict]) -> tuple[list, list]:
    attack, curves = [], []
    for (model, regime), errors in runs.items():
        a, c = tmp_path / f"{model}-{regime}.attack.parquet", tmp_path / f"{model}-{regime}.curves.parquet"
        meta = {"git_commit": "abc", "config_hash": "h", "machines": ["Some CPU, no AMX, 2 cores, no GPU"]}
        write_table(_attack_rows(model, regime, errors), "attack", a, meta)
        write_table(_curves(model, regime), "curves", c, {"git_commit": "abc"})
        attack.append(a)
        curves.append(c)
    return attack, curves


def test_a_record_holds_every_attack_cell_and_its_weakest_attack_as_robust_accuracy(tmp_path):
    attack, curves = _write(tmp_path, {("maxout", "adversarial"): ERRORS})
    written = write_records(_job(("maxout", "adversarial")), attack, curves, tmp_path / "records")
    assert sorted(p.name for p in written) == ["maxout-adversarial.json", "maxout-adversarial.md"]
    record = json.loads((tmp_path / "records/mnist/maxout-adversarial.json").read_text())
    assert record["name"] == "maxout-adversarial" and record["dataset"] == "mnist"
    assert record["seeds"] == [0, 1, 2] and record["threat_model"] == "Linf"
    assert record["clean_acc"] == pytest.approx(98.8)  # 100 - the mean clean error 1.2%
    # at eps .25 the clipped cells count (valid images) and PGD is the weakest: 100 - 62
    assert record["clipped"] is True and record["robust_attack"] == "pgd"
    assert record["robust_acc"] == pytest.approx(38.0) and record["robust_acc_std"] == pytest.approx(2.0)
    low, high = record["robust_ci95"]
    assert low < 38.0 < high  # the t-interval over three seeds and the binomial error of 10k images
    assert high - 38.0 == pytest.approx(38.0 - low)
    cells = {(r["attack"], r["eps"], r["clipped"]): r for r in record["results"]}
    assert set(cells) == set(ERRORS)
    assert cells[("fgsm", 0.25, False)]["error_mean"] == pytest.approx(22.0)
    assert cells[("fgsm", 0.25, False)]["n_seeds"] == 3 and cells[("fgsm", 0.25, False)]["n_examples"] == N
    assert record["parameters"] == 784 * 8 * 2 + 8 * 2 + 8 * 2 * 8 + 8 * 2 + 8 * 10 + 10
    assert record["training"]["epochs"] == 3 and record["training"]["selected_epoch"] == 3
    assert record["training"]["val_error"] == pytest.approx(2.0)
    assert record["provenance"]["attack"]["git_commit"] == "abc"


def test_the_model_card_carries_the_record_in_model_index_metadata(tmp_path):
    attack, curves = _write(tmp_path, {("maxout", "adversarial"): ERRORS})
    write_records(_job(("maxout", "adversarial")), attack, curves, tmp_path / "records")
    card = (tmp_path / "records/mnist/maxout-adversarial.md").read_text()
    front, body = card.removeprefix("---\n").split("\n---\n", 1)
    meta = yaml.safe_load(front)
    (entry,) = meta["model-index"]
    (result,) = entry["results"]
    assert result["dataset"] == {"type": "mnist", "name": "MNIST", "split": "test"}
    values = {m["name"]: m["value"] for m in result["metrics"]}
    assert values["Clean accuracy"] == pytest.approx(98.8)
    assert values["pgd accuracy (Linf eps 0.25, clipped)"] == pytest.approx(38.0)
    assert values["fgsm accuracy (Linf eps 0.25, clipped)"] == pytest.approx(80.0)
    assert "fgsm accuracy (Linf eps 0.25, unclipped)" not in values  # the record's cells are clipped
    assert "| pgd | 0.25 | yes | 62.00 ± 2.00 [" in body
    # where the numbers come from: the attack results' commit, config and machine
    assert "Results of commit `abc`, config `h`, computed on Some CPU, no AMX, 2 cores, no GPU." in body


def test_the_leaderboard_ranks_the_records_by_robust_accuracy_within_a_dataset(tmp_path):
    fgsm_only = {k: v for k, v in ERRORS.items() if k[0] == "fgsm"}
    runs = {("maxout", "adversarial"): ERRORS, ("maxout", "clean"): fgsm_only}
    attack, curves = _write(tmp_path, runs)
    job = _job(("maxout", "adversarial"), ("maxout", "clean"))
    write_records(job, attack, curves, tmp_path / "records")
    board = leaderboard(read_records([tmp_path / "records"]))
    assert list(board["name"]) == ["maxout-clean", "maxout-adversarial"]  # FGSM's 80% beats PGD's 38%
    assert list(board["rank"]) == [1, 2]
    assert list(board["robust_attack"]) == ["fgsm", "pgd"]
    assert board["robust_acc_mean"].tolist() == pytest.approx([80.0, 38.0])
    assert (board["robust_ci95_low"] < board["robust_acc_mean"]).all()


def test_a_run_without_the_headline_eps_has_no_robust_accuracy_and_ranks_last(tmp_path):
    small = {("fgsm", 0.0, False): [0.01] * 3, ("fgsm", 0.1, True): [0.05] * 3}
    attack, curves = _write(tmp_path, {("maxout", "clean"): small, ("maxout", "adversarial"): ERRORS})
    write_records(_job(("maxout", "clean"), ("maxout", "adversarial")), attack, curves, tmp_path / "r")
    record = json.loads((tmp_path / "r/mnist/maxout-clean.json").read_text())
    assert record["robust_acc"] is None and record["robust_attack"] is None and record["clean_acc"] == 99.0
    board = leaderboard(read_records([tmp_path / "r"]))
    assert list(board["name"]) == ["maxout-adversarial", "maxout-clean"]


def test_a_broken_record_is_named_with_what_is_wrong(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"record_version": 1, "name": "x"}))
    with pytest.raises(RecordError, match=r"a\.json: fields \['dataset'"):
        read_records([tmp_path / "a.json"])
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(RecordError, match=r"b\.json: not a readable JSON record"):
        read_records([tmp_path / "b.json"])
    record = dict.fromkeys(["name", "dataset", "architecture", "eps", "clean_acc", "robust_acc"], 1)
    (tmp_path / "c.json").write_text(json.dumps(record | {"record_version": 99}))
    with pytest.raises(RecordError, match=r"c\.json: record_version 99, expected 1"):
        read_records([tmp_path / "c.json"])
