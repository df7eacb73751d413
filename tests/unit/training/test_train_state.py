"""Epoch-level resume: a training run stopped after any epoch and started again ends bit for bit where an
uninterrupted run ends; a state from another task, or a damaged one, is refused by name."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import REPO

from advbench.config.specs import model_spec, regime_spec
from advbench.results.tables import read_table
from advbench.training.loop import Tensors, TrainState, train_model
from advbench.training.state import (
    DiskStore,
    TrainStateError,
    fingerprint,
    read_document,
    spec_dicts,
    state_path,
)


def _tensors(n: int = 400) -> Tensors:
    g = torch.Generator().manual_seed(7)
    centers = torch.rand(10, 784, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x = (centers[y] + 0.3 * torch.randn(n, 784, generator=g)).clamp(0, 1)
    return Tensors(x[:300], y[:300], x[300:], y[300:])


SPEC = model_spec(
    "maxout",
    {
        "arch": "maxout",
        "units": 16,
        "pieces": 2,
        "init_range": 0.1,
        "train": {"max_epochs": 4, "batch_size": 50, "retrain": True, "retrain_max_epochs": 3},
    },
)


class Killed(Exception):
    """Stands for the process dying right after a state was written."""


class StopAfter(DiskStore):
    """A store that 'dies' once it has saved the state after ``epoch``."""

    stop_at: int = 0

    def save(self, state: TrainState) -> None:
        super().save(state)
        if state.epoch == self.stop_at and not state.finished:
            raise Killed


def _store(tmp_path: Path, data: Tensors, spec=SPEC, regime=None, stop_at: int = 0) -> DiskStore:
    regime = regime or regime_spec("adversarial", {"kind": "fgsm"})
    store = StopAfter(tmp_path / "seed=0.state", fingerprint(*spec_dicts(spec, regime), ["t", 0], data))
    store.stop_at = stop_at
    return store


def _without_seconds(curves: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in curves]


@pytest.mark.parametrize("kind", ["fgsm", "noise_sign"])
@pytest.mark.parametrize("stop_at", [1, 3, 4, 5])  # in stage 1, at its last epoch, in stage 2
def test_a_run_resumed_after_any_epoch_ends_bit_for_bit_as_an_uninterrupted_one(tmp_path, kind, stop_at):
    data, regime = _tensors(), regime_spec(kind, {"kind": kind})
    reference, ref_curves = train_model(SPEC, regime, data, seed=3)
    with pytest.raises(Killed):
        train_model(SPEC, regime, data, seed=3, store=_store(tmp_path, data, regime=regime, stop_at=stop_at))
    assert read_document(tmp_path / "seed=0.state")["epoch"] == stop_at
    resumed, curves = train_model(SPEC, regime, data, seed=3, store=_store(tmp_path, data, regime=regime))
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    assert _without_seconds(curves) == _without_seconds(ref_curves)
    assert [r["stage"] for r in curves].count(2) >= 1  # stage 2 ran, from stage 1's best weights


def test_a_finished_state_gives_the_final_model_without_training_again(tmp_path):
    data, regime = _tensors(), regime_spec("clean", {"kind": "clean"})
    first, curves = train_model(SPEC, regime, data, seed=1, store=_store(tmp_path, data, regime=regime))
    assert read_document(tmp_path / "seed=0.state")["finished"]
    start = time.perf_counter()
    again, curves_again = train_model(SPEC, regime, data, seed=1, store=_store(tmp_path, data, regime=regime))
    assert all(torch.equal(first[k], again[k]) for k in first) and curves_again == curves
    assert time.perf_counter() - start < sum(r["seconds"] for r in curves)  # nothing was trained


def test_a_state_of_another_config_is_refused_naming_the_file_and_the_difference(tmp_path):
    data, regime = _tensors(), regime_spec("clean", {"kind": "clean"})
    with pytest.raises(Killed):
        train_model(SPEC, regime, data, seed=1, store=_store(tmp_path, data, regime=regime, stop_at=2))
    other = replace(SPEC, train=replace(SPEC.train, lr=0.05))
    path = tmp_path / "seed=0.state"
    with pytest.raises(
        TrainStateError, match=rf"{path}: .* spec\.train\.lr is 0\.1 in the file but 0\.05 now"
    ):
        train_model(other, regime, data, seed=1, store=_store(tmp_path, data, spec=other, regime=regime))
    fewer = Tensors(data.x_train[:200], data.y_train[:200], data.x_val, data.y_val)
    with pytest.raises(TrainStateError, match=r"seed=0\.state: .* data is '[0-9a-f]+' in the file"):
        train_model(SPEC, regime, fewer, seed=1, store=_store(tmp_path, fewer, regime=regime))
    doc = read_document(path)  # another code version: the fingerprint's code hash differs
    doc["fingerprint"]["code"] = "0" * 16
    _rewrite_document(path, doc)
    with pytest.raises(TrainStateError, match=r"code is '0000000000000000' in the file"):
        train_model(SPEC, regime, data, seed=1, store=_store(tmp_path, data, regime=regime))
    # save_every changes when states are written, not what is computed: such a state is accepted
    every = replace(SPEC, train=replace(SPEC.train, save_every=2))
    assert (
        _store(tmp_path, data, spec=every, regime=regime).fingerprint
        == _store(tmp_path, data, regime=regime).fingerprint
    )


def _rewrite_document(path: Path, doc: dict) -> None:
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"state": json.dumps(doc)})


def test_a_damaged_state_is_refused_naming_the_file(tmp_path):
    data, regime = _tensors(), regime_spec("clean", {"kind": "clean"})
    path = tmp_path / "seed=0.state"
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(TrainStateError, match=rf"{path}: not a readable training state"):
        train_model(SPEC, regime, data, seed=1, store=_store(tmp_path, data, regime=regime))


KILLED_RUN = """
import json, sys
from pathlib import Path
from advbench.config.specs import model_spec_from_json, regime_spec_from_json
from advbench.runtime.ray import RaySettings
from advbench.jobs.train import run_train
spec, regime = model_spec_from_json(sys.argv[1]), regime_spec_from_json(sys.argv[2])
data, out = sys.argv[3], sys.argv[4]
ckpts = [str(Path(out) / f"seed={s}.safetensors") for s in (0, 1)]
run_train(Path(data), spec, regime, [0, 1], ckpts, Path(out) / "curves.parquet", "mnist",
          {"n_train": 5000, "n_val": 500, "n_test": 200}, RaySettings(use_ray=False))
"""


def _train_job(prepared: Path, out: Path) -> subprocess.Popen:
    spec = model_spec("maxout", {"arch": "maxout", "units": 32, "pieces": 2, "init_range": 0.05})
    spec = replace(spec, train=replace(spec.train, max_epochs=6, retrain=True, retrain_max_epochs=2))
    regime = regime_spec("adversarial", {"kind": "fgsm"})
    args = [json.dumps(spec_dicts(spec, regime)[i]) for i in (0, 1)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", KILLED_RUN, *args, str(prepared), str(out)], env=env)


def test_a_training_job_killed_mid_run_and_rerun_writes_the_same_bytes(prepared, tmp_path):
    """kill -9 of a serial training job at a random epoch of its second seed, then the same job again."""
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert _train_job(prepared, reference).wait(timeout=600) == 0
    job = _train_job(prepared, resumed)
    state = state_path(resumed / "seed=1.safetensors")
    stop_at = int.from_bytes(os.urandom(1)) % 6 + 1  # an epoch of stage 1 or the first of stage 2
    deadline = time.monotonic() + 600
    while job.poll() is None and time.monotonic() < deadline:
        try:
            if read_document(state)["epoch"] >= stop_at:
                break
        except (TrainStateError, FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    assert job.poll() is None, "the job ended before it could be killed"
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert (resumed / "seed=0.safetensors").exists() and state.exists()  # seed 0 done, seed 1 part-way
    assert _train_job(prepared, resumed).wait(timeout=600) == 0
    for seed in (0, 1):
        name = f"seed={seed}.safetensors"
        assert (resumed / name).read_bytes() == (reference / name).read_bytes()
        assert not state_path(resumed / name).exists()  # the finished job cleaned up
    curves = [
        read_table(d / "curves.parquet", "curves").drop_columns(["seconds"]) for d in (reference, resumed)
    ]
    assert curves[0].equals(curves[1])


def _killed_task(workdir: Path, stop_at: int) -> Path:
    """A workflow folder whose maxout-clean seed-0 task was killed after ``stop_at`` epochs; its folder."""
    data, regime = _tensors(), regime_spec("clean", {"kind": "clean"})
    where = workdir / "results/models/dataset=mnist/model=maxout/regime=clean"
    where.mkdir(parents=True)
    with pytest.raises(Killed):
        train_model(SPEC, regime, data, seed=1, store=_store(where, data, regime=regime, stop_at=stop_at))
    return where


def test_progress_reads_every_saved_state_of_a_workflow(tmp_path, capsys):
    from advbench.cli import main
    from advbench.training.state import progress_table

    _killed_task(tmp_path, stop_at=2)
    (row,) = progress_table(tmp_path).to_dict("records")
    assert (row["model"], row["regime"], row["seed"], row["stage"], row["epoch"]) == (
        "maxout",
        "clean",
        "0",
        1,
        2,
    )
    assert row["of at most"] == 4 + 3 and row["status"] == "under way" and row["s/epoch"] > 0
    assert 1 <= row["best epoch"] <= 2 and 0 <= row["best"] <= 1
    assert row["stage 1 stops at"] == 4  # max_epochs binds before best epoch + patience
    assert main(["progress", str(tmp_path)]) == 0
    assert re.search(r"\|\s*mnist\s*\|\s*maxout\s*\|\s*clean\s*\|\s*0\s*\|", capsys.readouterr().out)
    assert main(["progress", str(tmp_path / "nowhere")]) == 0
    assert "no training task has a saved state" in capsys.readouterr().out


def test_progress_brackets_the_time_to_go_between_early_stopping_and_the_budget(tmp_path, monkeypatch):
    """Two epochs done of at most 4 + 3 (stage 2), at 100 s an epoch: stage 1 ends in 200 s unless a better
    epoch comes, and the budget ends in 500 s."""
    from advbench.training import state
    from advbench.training.state import progress_table

    _killed_task(tmp_path, stop_at=2)
    read = state.read_document

    def at_100_s_an_epoch(path):
        doc = read(path)
        return doc | {"curves": [row | {"seconds": 100.0} for row in doc["curves"]]}

    monkeypatch.setattr(state, "read_document", at_100_s_an_epoch)
    (row,) = progress_table(tmp_path).to_dict("records")
    assert (row["s/epoch"], row["stage 1 stops at"], row["epoch"]) == (100.0, 4, 2)
    assert (row["stage 1 ends in"], row["at most to go"]) == ("0:03:20", "0:08:20")


def test_progress_lists_the_tasks_a_config_plans_that_have_no_state(tmp_path, capsys):
    from advbench.cli import main
    from advbench.training.state import progress_table

    where = _killed_task(tmp_path, stop_at=1)
    (where / "seed=2.safetensors").write_bytes(b"")  # a task whose job wrote its checkpoint
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    overlay = {"seeds": [0, 1, 2], "runs": [{"model": "maxout", "regime": "clean"}]}
    overlay |= {"transfer": {"pairs": [], "matrix": []}, "report": {"examples": [], "weights": []}}
    overlay |= dict.fromkeys(("agreement", "sweep", "ensemble", "rubbish", "rotation", "saliency"))
    (tmp_path / "run.yaml").write_text(json.dumps(overlay))
    assert main(["progress", str(tmp_path), "--configfile", "run.yaml"]) == 0
    out = capsys.readouterr().out
    assert "1 under way, 1 written, 1 not started of 3 tasks" in out
    (not_started,) = [line for line in out.splitlines() if "not started |" in line]
    assert "nan" not in not_started and "| ?" in not_started
    planned = [f"{where.relative_to(tmp_path)}/seed={seed}.safetensors" for seed in (0, 1, 2)]
    table = progress_table(tmp_path, planned)
    assert table["seed"].tolist() == ["0", "1", "2"]
    assert table["status"].tolist() == ["under way", "not started", "written"]
    assert main(["progress", str(tmp_path), "--configfile", "missing.yaml"]) == 2


def test_progress_of_a_run_folder_reads_the_presets_in_the_checkout_that_ran_it(
    tmp_path, monkeypatch, capsys, caplog
):
    """``snakemake --directory <run>`` from a checkout: the run folder has no config.yaml, the checkout
    (the current folder) has it and the presets."""
    from advbench.cli import main

    run, checkout = tmp_path / "run", tmp_path / "checkout"
    _killed_task(run, stop_at=1)
    checkout.mkdir()
    (checkout / "config.yaml").write_text((REPO / "config.yaml").read_text())
    overlay = {"seeds": [0, 1], "runs": [{"model": "maxout", "regime": "clean"}]}
    overlay |= {"transfer": {"pairs": [], "matrix": []}, "report": {"examples": [], "weights": []}}
    overlay |= dict.fromkeys(("agreement", "sweep", "ensemble", "rubbish", "rotation", "saliency"))
    (checkout / "run.yaml").write_text(json.dumps(overlay))
    monkeypatch.chdir(tmp_path)
    assert main(["progress", str(run), "--configfile", "run.yaml"]) == 2  # no config.yaml in either
    assert "run this from the workflow's checkout" in caplog.text
    monkeypatch.chdir(checkout)
    assert main(["progress", str(run), "--configfile", "run.yaml"]) == 0
    assert "1 under way, 1 not started of 2 tasks" in capsys.readouterr().out
