"""Crash safety and input checks below the workflow: kernel run lock, stale Ray temp dirs, temporary files of
killed writers, strict numbers in the config, damaged results files, pickles inside torch.save archives."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO

from advbench.config.loading import load_config
from advbench.config.specs import ConfigError, model_spec
from advbench.config.validation import validate_config
from advbench.models.architectures import build
from advbench.results.checkpoints import CheckpointError, load_into
from advbench.results.tables import ResultsError, read_kind
from advbench.runtime.files import atomic_path

HOLD = "import sys, time; from pathlib import Path; {setup}; print('ready', flush=True); time.sleep(60)"


def _holder(setup: str, cwd: Path) -> subprocess.Popen:
    """A child process that runs ``setup`` and then waits to be killed."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD.format(setup=setup)], cwd=cwd, env=env, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "ready"
    return child


def _kill9(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait()


def test_a_second_live_run_is_refused_and_a_killed_one_holds_no_lock(tmp_path):
    from advbench.runtime import workdir

    lock = tmp_path / ".snakemake" / "advbench-run.lock"
    setup = f"from advbench.runtime.workdir import claim_workdir; claim_workdir(Path({str(lock)!r}))"
    child = _holder(setup, tmp_path)
    with pytest.raises(RuntimeError, match=rf"advbench-run.lock: another workflow run \(pid {child.pid}\)"):
        workdir.claim_workdir(lock)
    _kill9(child)
    workdir.claim_workdir(lock)  # the kernel released the dead run's lock
    assert lock.read_text() == str(os.getpid())
    os.close(workdir._run_lock)
    workdir._run_lock = None


def test_temp_dirs_of_dead_ray_owners_are_removed(tmp_path):
    from advbench.runtime.cleanup import remove_stale_temp_dirs

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    names = (f"advray-{child.pid}-x", f"advray-{os.getpid()}-y", "advray-z")
    dead, live, foreign = (tmp_path / n for n in names)
    for d in (dead, live, foreign):
        (d / "session").mkdir(parents=True)
    assert remove_stale_temp_dirs(tmp_path) == [dead]
    assert live.exists() and foreign.exists() and not dead.exists()


def test_orphans_of_a_dead_ray_are_killed_before_its_dir_goes(tmp_path):
    """A process that logs into a dead owner's temp dir (as Ray's agents do after a kill -9) is killed;
    one that logs elsewhere is not."""
    import psutil

    from advbench.runtime.cleanup import RAY_DIR_ENV, remove_stale_temp_dirs

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = tmp_path / f"advray-{child.pid}-x"
    (dead / "logs").mkdir(parents=True)
    hold = "import sys, time; f = open(sys.argv[1], 'a'); time.sleep(120)"
    orphan = subprocess.Popen([sys.executable, "-c", hold, str(dead / "logs" / "agent.log")])
    bystander = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path / "other.log")])
    # an orphaned job driver of the dead run: no file in the dir, only the tag it inherited
    starting = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], env={**os.environ, RAY_DIR_ENV: str(dead)}
    )
    try:
        for _ in range(100):  # until both have opened their files
            if (dead / "logs" / "agent.log").exists() and (tmp_path / "other.log").exists():
                break
            time.sleep(0.05)
        assert remove_stale_temp_dirs(tmp_path) == [dead]
        for proc in (orphan, starting):
            proc.wait(timeout=10)  # (killed and already reaped by the sweep: its status is gone)
            assert not psutil.pid_exists(proc.pid)
        assert bystander.poll() is None
    finally:
        for proc in (orphan, bystander, starting):
            proc.kill()
            proc.wait()


def test_a_killed_writer_leaves_no_partial_file_and_the_next_writer_sweeps(tmp_path):
    out = tmp_path / "fgsm.parquet"
    setup = (
        "from advbench.runtime.files import atomic_path; "
        f"ctx = atomic_path(Path({str(out)!r})); tmp = ctx.__enter__(); tmp.write_bytes(b'half')"
    )
    _kill9(_holder(setup, tmp_path))
    assert not out.exists() and len(list(tmp_path.glob(".fgsm.parquet.tmp-*"))) == 1
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"whole")
    assert out.read_bytes() == b"whole" and list(tmp_path.glob(".fgsm.parquet.tmp-*")) == []


@pytest.fixture()
def config() -> dict:
    return load_config(REPO / "config.yaml", REPO / "presets" / "smoke.yaml", REPO / "presets" / "chaos.yaml")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("attack", "eps"), [0.1, float("nan")], r"attack\.eps\[1\]: nan is not of type 'number'"),
        (("transfer", "eps"), [float("inf")], r"transfer\.eps\[0\]: inf is not of type 'number'"),
        (("regimes", "adversarial", "alpha"), float("nan"), r"regimes\.adversarial\.alpha: nan"),
        (("models", "softmax", "train", "max_epochs"), 3.0, r"max_epochs: 3\.0 is not of type 'integer'"),
        (("data", "dir"), "/data;rm -rf ~", r"data\.dir: '/data;rm -rf ~' is not a plain path"),
        (("data", "dir"), "../../etc", r"data\.dir: '\.\./\.\./etc' is not a plain path"),
    ],
)
def test_numbers_must_be_finite_integers_integral_and_paths_plain(config, path, value, message):
    bad = copy.deepcopy(config)
    node = bad
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        validate_config(bad)


def test_chaos_preset_is_valid_and_plain_data_dirs_pass(config):
    config["data"]["dir"] = "/work/shared/data-v1.2"
    validate_config(config)
    assert [r["model"] for r in config["runs"]] == ["softmax", "maxout", "maxout", "maxout_member"]


def test_a_damaged_results_file_is_named(tmp_path):
    bad = tmp_path / "cut.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(ResultsError, match="cut.parquet: not a readable Parquet results file"):
        read_kind(bad)


def test_a_torch_save_archive_with_a_payload_is_refused_without_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    evil = tmp_path / "seed=0.safetensors"
    torch.save({"net.0.weight": Payload()}, evil)
    model = build(model_spec("softmax", {"arch": "softmax"}))
    with pytest.raises(CheckpointError, match=r"seed=0.safetensors: not a readable safetensors checkpoint"):
        load_into(model, evil)
    assert not (tmp_path / "pwned").exists()


SNAKEMAKE_LOG = """\
localrule prepare_data:
    output: resources/data/mnist.npz
    log: logs/prepare_data/mnist.log
    jobid: 3
    reason: Missing output files: resources/data/mnist.npz
    resources: tmpdir=/tmp

Finished jobid: 3 (Rule: prepare_data)
localrule train:
    input: resources/data/mnist.npz
    jobid: 6
    wildcards: dataset=mnist, model=maxout, regime=clean

rule agreement:
    input: resources/data/mnist.npz
    jobid: 12

Finished jobid: 12 (Rule: agreement)
localrule attack:
    jobid: 13
"""


def test_the_chaos_harness_reads_running_jobs_from_snakemakes_log():
    """Jobs in threads of the Snakemake process have no process of their own: the log tells their stage."""
    from advbench.reliability.chaos import RULE_STAGES, running_rules

    assert running_rules(SNAKEMAKE_LOG) == {"train", "attack"}
    assert running_rules(SNAKEMAKE_LOG.replace("jobid: 6\n", "jobid: 16\n") + "Finished jobid: 16 (x)\n") == {
        "attack"
    }
    assert RULE_STAGES["prepare_data"] == "prepare" and RULE_STAGES["rubbish"] == "experiment"
