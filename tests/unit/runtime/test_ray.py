"""Ray dispatch: a training job through the embedded local Ray equals the serial, in-process path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from advbench.config.specs import model_spec, regime_spec
from advbench.jobs.train import run_train
from advbench.results.tables import read_meta, read_table
from advbench.runtime.ray import RaySettings
from advbench.runtime.slots import SETTLE_S


def _train(prepared: Path, out: Path, use_ray: bool) -> tuple[list[dict], list[dict]]:
    spec = model_spec("maxout", {"arch": "maxout", "units": 8, "pieces": 2, "train": {"max_epochs": 2}})
    regime = regime_spec("adversarial", {"kind": "fgsm"})
    ckpts = [str(out / f"seed={s}.safetensors") for s in (3, 1)]
    settings = RaySettings(num_cpus=2, num_gpus=0, object_store_mb=100, use_ray=use_ray)
    subset = {"n_train": 300, "n_val": 100, "n_test": 100}
    run_train(prepared, spec, regime, [3, 1], ckpts, out / "curves.parquet", "mnist", subset, settings)
    curves = read_table(out / "curves.parquet", "curves").drop_columns(["seconds"]).to_pylist()
    return curves, [load_file(c) for c in ckpts]


def test_ray_job_equals_serial_job(prepared, tmp_path):
    serial_curves, serial_states = _train(prepared, tmp_path / "serial", use_ray=False)
    ray_curves, ray_states = _train(prepared, tmp_path / "ray", use_ray=True)
    assert ray_curves == serial_curves
    assert [r["seed"] for r in ray_curves] == [3, 3, 1, 1]  # one task per seed, results in seed order
    for a, b in zip(serial_states, ray_states, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = read_meta(tmp_path / "ray" / "curves.parquet")
    assert meta["ray_address"] == "embedded (per job)" and meta["node_ids"] != ["local"]


def _dies_once(marker: str, seed: int) -> dict:
    """Kills its own Ray worker the first time it runs for seed 1 (a crashed worker, not an exception)."""
    import os
    from pathlib import Path

    flag = Path(marker) / f"seed{seed}"
    if seed == 1 and not flag.exists():
        flag.touch()
        os._exit(1)
    return {"seed": seed, "value": seed * 10}


def test_a_dead_worker_is_retried_with_the_same_result(tmp_path):
    import sys

    import ray.cloudpickle

    from advbench.runtime.ray import run_tasks

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # ship this test module's task to Ray
    per_task = [{"seed": s} for s in (0, 1, 2)]
    settings = RaySettings(num_cpus=2, num_gpus=0, object_store_mb=100, max_retries=2)
    out = run_tasks(_dies_once, {"marker": str(tmp_path)}, per_task, settings)
    assert (tmp_path / "seed1").exists()  # the worker did die once
    assert out == run_tasks(_dies_once, {"marker": str(tmp_path)}, per_task, RaySettings(use_ray=False))
    no_retry = RaySettings(num_cpus=2, num_gpus=0, object_store_mb=100, max_retries=0)
    (tmp_path / "seed1").unlink()
    with pytest.raises(ray.exceptions.WorkerCrashedError):
        run_tasks(_dies_once, {"marker": str(tmp_path)}, per_task, no_retry)


def test_asking_for_gpus_ray_does_not_have_fails_fast():
    from advbench.runtime.ray import run_tasks

    settings = RaySettings(num_cpus=1, num_gpus=0, object_store_mb=100, num_gpus_per_task=0.25)
    with pytest.raises(ValueError, match="ray.num_gpus_per_task is 0.25 but the Ray cluster has 0"):
        run_tasks(_dies_once, {"marker": "unused"}, [{"seed": 0}], settings)


def test_asking_for_more_cpus_than_a_node_has_fails_fast():
    """Ray would keep such a task pending forever (infeasible): a long run must not hang at its first job."""
    from advbench.runtime.ray import run_tasks

    settings = RaySettings(num_cpus=1, num_gpus=0, object_store_mb=100, num_cpus_per_task=3)
    message = "ray.num_cpus_per_task is 3 but the largest node of the Ray cluster has 1.0 CPUs"
    with pytest.raises(ValueError, match=message):
        run_tasks(_dies_once, {"marker": "unused"}, [{"seed": 0}], settings)


def _log_and_pid(seed: int) -> dict:
    """Logs a line and says which worker process ran it."""
    import logging
    import os

    logging.getLogger("advbench.test").info("task of seed %d", seed)
    return {"seed": seed, "pid": os.getpid()}


def test_jobs_in_threads_share_one_ray_and_its_warm_workers_and_log_to_their_own_files(tmp_path):
    """The default profile's jobs: threads of one process, one Ray driver, each job logging to its file."""
    import logging
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import ray
    import ray.cloudpickle

    from advbench.runtime.logs import thread_log
    from advbench.runtime.ray import ray_session, run_tasks

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def job(name: str) -> list[dict]:
        log = tmp_path / f"{name}.log"
        settings = RaySettings(num_cpus=2, num_gpus=0, object_store_mb=100, log_file=str(log))
        with thread_log(log):
            logging.getLogger("advbench.test").info("driver of job %s", name)
            return run_tasks(_log_and_pid, {}, [{"seed": s} for s in range(4)], settings)

    with ray_session(RaySettings(num_cpus=2, num_gpus=0, object_store_mb=100)):  # as the shared head
        with ThreadPoolExecutor(2) as pool:
            first = [o for out in pool.map(job, ["a", "b"]) for o in out]
        later = job("c")
        assert ray.is_initialized()  # the jobs did not shut down the session they joined
    assert not ray.is_initialized()
    assert {o["pid"] for o in later} <= {o["pid"] for o in first}  # warm workers, no new ones
    for name, other in (("a", "b"), ("b", "a"), ("c", "a")):
        text = (tmp_path / f"{name}.log").read_text()
        assert f"driver of job {name}" in text and f"driver of job {other}" not in text
        assert all(f"task of seed {s}" in text for s in range(4))


LISTENING = """
import json
import psutil
from advbench.runtime.ray import start_shared_head, stop_shared_head
start_shared_head(1, 100)
procs = [psutil.Process()] + psutil.Process().children(recursive=True)
ips = {c.laddr.ip for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
stop_shared_head()
print(json.dumps(sorted(ips)))
"""


def test_the_embedded_ray_listens_on_loopback_only_even_without_the_variable_set():
    """A fresh user's shell has no ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``: the workflow's own Ray (the shared
    head of the default profile, imported before it starts) must still bind every port to 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    proc = subprocess.run(
        [sys.executable, "-c", LISTENING], env=env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ips = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ips and set(ips) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, ips


def test_jobs_of_cpu_models_ask_ray_for_no_gpu(prepared, tmp_path):
    """``ray.cpu_models``: on a cluster without GPUs, a job asking for a GPU share fails at once, unless all
    its models are listed."""
    from advbench.cli import _ray_settings, main, parser
    from advbench.config.specs import spec_to_json

    ray = {"num_gpus": 0, "num_gpus_per_task": 0.25, "cpu_models": ["softmax"], "object_store_mb": 100}
    job = {"dataset": "mnist", "subset": {"n_train": 200, "n_val": 100, "n_test": 100}}
    common = ["--data", str(prepared), "--ray", json.dumps(ray), "--seeds", "0", "--threads", "2"]
    regime = spec_to_json(regime_spec("clean", {"kind": "clean"}))

    def run(command: str, name: str, out: list[str]) -> list[str]:
        spec = spec_to_json(model_spec(name, {"arch": name, "train": {"max_epochs": 1}}))
        ckpt = str(tmp_path / f"{name}.safetensors")
        return [command, *common, f"--model={spec}", f"--regime={regime}", "--checkpoints", ckpt, *out]

    train_job = ["--job", json.dumps(job)]
    assert main(run("train", "softmax", [*train_job, "--curves", str(tmp_path / "c.parquet")])) == 0
    attack = {**job, "attack": {"eps": [0.25], "clip": [True], "batch_size": 100, "label_source": "true"}}
    attack_job = ["--job", json.dumps(attack), "--out", str(tmp_path / "a.parquet")]
    assert main(run("attack", "softmax", attack_job)) == 0
    rows = read_table(tmp_path / "a.parquet", "attack").to_pylist()
    assert [(r["eps"], r["n"]) for r in rows] == [(0.25, 100)]
    with pytest.raises(ValueError, match="ray.num_gpus_per_task is 0.25 but the Ray cluster has 0 GPUs"):
        main(run("train", "maxout", [*train_job, "--curves", str(tmp_path / "m.parquet")]))

    args = parser().parse_args(run("train", "softmax", [*train_job, "--curves", "c"]))
    assert _ray_settings(args, ["softmax", "maxout"]).num_gpus_per_task == 0.25  # a GPU model in the job
    assert _ray_settings(args, ["softmax"]).num_gpus_per_task == 0


def _started(tag: str, seed: int) -> tuple[str, int, float]:
    """Says when it started, then keeps its CPU a while."""
    import time

    start = time.monotonic()
    time.sleep(0.6)
    return tag, seed, start


@pytest.mark.parametrize(
    ("high_after_s", "order"),
    [
        # started together (the start race): the higher job is in line before the first task goes
        (0.15, ["high0", "high1", "high2", "low0", "low1", "low2"]),
        # arriving while the lower job's first task runs: it takes the next slot
        (SETTLE_S + 0.25, ["low0", "high0", "high1", "high2", "low1", "low2"]),
    ],
)
def test_the_tasks_of_a_job_of_higher_priority_start_before_those_of_a_lower_one_still_to_submit(
    high_after_s: float, order: list[str]
):
    """Two jobs in threads on one CPU (one slot), the higher one registering ``high_after_s`` after the
    lower one: its tasks all start before the lower one's still to submit."""
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    import ray.cloudpickle

    from advbench.runtime.ray import ray_session, run_tasks

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def job(tag: str, priority: int) -> list[tuple[str, int, float]]:
        settings = RaySettings(num_cpus=1, num_gpus=0, object_store_mb=100, priority=priority)
        return run_tasks(_started, {"tag": tag}, [{"seed": s} for s in range(3)], settings)

    with ray_session(RaySettings(num_cpus=1, num_gpus=0, object_store_mb=100)):
        job("warm-up", 0)  # a worker started: the timings below are the tasks', not the worker's start
        with ThreadPoolExecutor(2) as pool:
            low = pool.submit(job, "low", 1)
            time.sleep(high_after_s)
            high = pool.submit(job, "high", 2)
            starts = sorted(low.result() + high.result(), key=lambda t: t[2])
    assert [f"{tag}{seed}" for tag, seed, _ in starts] == order
