"""The workflow on a real Slurm: a one-node cluster on this machine (tests/workflow/slurm_cluster.py),
compared with the local smoke run (conftest.smoke_run).

- Per-job profile (``--profile workflow/profiles/slurm``): every job is submitted with sbatch by the Slurm
  executor plugin and tracked with squeue until it completes. In CI a three-job slice of the smoke preset
  (prepare_data, train and attack of one model); the whole smoke preset with ``ADVBENCH_SLURM_FULL=1``
  (about 40 sbatch jobs, each starting its own Ray: twenty minutes on two cores).
- One allocation (``sbatch workflow/slurm/ray-cluster.sbatch``): a Ray head inside the allocation with token
  auth, every Ray port on 127.0.0.1, and the whole smoke preset run against it.
- Faults: a training job cancelled with scancel part-way, then timed out, is submitted again by Snakemake
  (``retries``); a job requeued by Slurm itself (``--slurm-requeue``, ``scontrol requeue``) runs again
  under its job id. Either resumes from its saved epochs to the same checkpoints and curves.

The profile is used as shipped; the command line adds what fits this machine: ``--cores`` (this node's CPUs,
capping the profile's set-threads as its ``cores: 16`` does), ``--slurm-status-command squeue`` (there is no
accounting daemon) and a short first status check.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
import slurm_cluster
from conftest import smoke_copy
from safetensors.torch import load_file

from advbench.results.tables import read_kind, read_meta, read_table
from advbench.training.state import read_document

pytestmark = pytest.mark.e2e

SOFTMAX_ATTACK = "results/metrics/attack/dataset=mnist/model=softmax/regime=clean/attacks.parquet"
FAULT_RUN = "dataset=mnist/model=maxout/regime=adversarial"
FAULT_CURVES = f"results/metrics/curves/{FAULT_RUN}/curves.parquet"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    """A one-node Slurm for this module; skipped where it cannot be installed or started, except in CI."""
    try:
        cluster = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    except slurm_cluster.SlurmUnavailable as err:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm tests: {err}")
        pytest.skip(f"no local Slurm: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()


def tool_env(cluster: slurm_cluster.SlurmCluster, **extra: str) -> dict[str, str]:
    """The cluster's client environment with this interpreter's tools first on PATH (as sbatch passes on)."""
    env = {k: v for k, v in cluster.env.items() if k not in ("RAY_ADDRESS", "SNAKEMAKE_PROFILE")}
    path = env["PATH"].split(os.pathsep)
    env["PATH"] = os.pathsep.join([path[0], str(Path(sys.executable).parent), *path[1:]])
    return env | {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"} | extra


def profile_cmd(cluster: slurm_cluster.SlurmCluster, *args: str) -> list[str]:
    return [
        "snakemake",
        "--profile",
        "workflow/profiles/slurm",
        "--configfile",
        "presets/smoke.yaml",
        "--cores",
        str(cluster.cpus),
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-keep-successful-logs",
        *args,
    ]


def run_id(stdout: str) -> str:
    return re.search(r"SLURM run ID: (\S+)", stdout).group(1)


def comment_rule(comment: str) -> str:
    """The rule name in the plugin's sbatch --comment (``rule_<rule>_wildcards_<values>``)."""
    return re.match(r"rule_(.+?)(?:_wildcards_.*)?$", comment).group(1)


def data(path: Path, kind: str):
    """A results file's rows without its provenance and wall times."""
    table = read_table(path, kind).replace_schema_metadata(None)
    return table.drop_columns(["seconds"]) if kind == "curves" else table


def assert_same_results(work: Path, reference: Path, only: list[str] | None = None) -> int:
    """Every results Parquet file under ``work`` (or ``only``) has the same rows as the reference's."""
    paths = only or sorted(str(p.relative_to(work)) for p in (work / "results/metrics").rglob("*.parquet"))
    assert paths
    for rel in paths:
        kind = read_kind(work / rel)
        assert data(work / rel, kind).equals(data(reference / rel, kind)), rel
    return len(paths)


def assert_same_tables(work: Path, reference: Path) -> list[str]:
    """The report's CSV tables equal the reference's, except the training-cost table (wall times)."""
    names = sorted(p.name for p in (reference / "results/tables").glob("*.csv"))
    names = [n for n in names if not n.startswith("training_cost")]
    assert "paper_comparison.csv" in names
    for name in names:
        ours, theirs = (pd.read_csv(d / "results/tables" / name) for d in (work, reference))
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True, obj=name)
    return names


def assert_every_job_went_through_slurm(cluster, work: Path, proc: subprocess.CompletedProcess) -> list[dict]:
    """Each job Snakemake submitted is a COMPLETED Slurm job of this run, with its plugin log file."""
    submitted = dict(SUBMITTED.findall(proc.stdout + proc.stderr))
    jobs = [j for j in cluster.jobs() if j["name"] == run_id(proc.stdout + proc.stderr)]
    assert sorted(j["id"] for j in jobs) == sorted(submitted.values())
    assert {j["state"] for j in jobs} == {"COMPLETED"}, jobs
    logs = {p.stem for p in (work / ".snakemake/slurm_logs").rglob("*.log")}
    assert set(submitted.values()) <= logs
    return jobs


def assert_profile_resources(cluster, jobs: list[dict], profile: dict) -> None:
    """Each job got its rule's partition and CPUs from the profile, and Ray rules their GPU."""
    for job in jobs:
        rule = comment_rule(job["comment"])
        res = profile["default-resources"] | profile["set-resources"].get(rule, {})
        threads = min(profile["set-threads"].get(rule, 1), cluster.cpus)
        assert job["partition"] == res["slurm_partition"] and int(job["cpus"]) == threads, (rule, job)
        info = cluster.run("scontrol", "show", "job", job["id"]).stdout
        assert f"MinMemoryNode={res['mem_mb']}M" in info, (rule, info)
        assert f"TimeLimit={res['runtime'] // 60:02d}:{res['runtime'] % 60:02d}:00" in info, (rule, info)
        assert ("gres:gpu:1" in info) == ("gpu" in res), (rule, info)


@pytest.fixture(scope="module")
def profile() -> dict:
    import yaml
    from conftest import REPO

    return yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())


def test_profile_submits_each_job_with_sbatch(slurm, smoke_run, profile, tmp_path):
    """prepare_data, train and attack of the softmax run through the per-job profile: three sbatch jobs
    with the profile's partitions, CPUs, memory, time and GPU, tracked to COMPLETED, rows equal to the local
    run's."""
    work = smoke_copy(tmp_path)
    cmd = profile_cmd(slurm, SOFTMAX_ATTACK)
    proc = subprocess.run(cmd, cwd=work, env=tool_env(slurm), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = assert_every_job_went_through_slurm(slurm, work, proc)
    assert sorted(comment_rule(j["comment"]) for j in jobs) == ["attack", "prepare_data", "train"]
    assert_profile_resources(slurm, jobs, profile)
    assert_same_results(work, smoke_run)
    meta = read_meta(work / SOFTMAX_ATTACK)
    assert meta["ray_address"] != read_meta(smoke_run / SOFTMAX_ATTACK)["ray_address"]


@pytest.mark.skipif(
    not os.environ.get("ADVBENCH_SLURM_FULL"),
    reason="the whole smoke preset as ~40 sbatch jobs takes ~20 min on 2 cores: set ADVBENCH_SLURM_FULL=1",
)
def test_profile_runs_the_whole_smoke_preset(slurm, smoke_run, profile, tmp_path):
    """Every job of the smoke preset through the per-job profile; the report's tables equal the local
    run's."""
    work = smoke_copy(tmp_path)
    proc = subprocess.run(
        profile_cmd(slurm), cwd=work, env=tool_env(slurm), capture_output=True, text=True, timeout=3600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = assert_every_job_went_through_slurm(slurm, work, proc)
    submitted_rules = re.findall(r"^rule (\w+):$", proc.stdout + proc.stderr, flags=re.M)  # not localrule
    assert len(jobs) == len(submitted_rules)
    assert_profile_resources(slurm, jobs, profile)
    assert_same_results(work, smoke_run)
    assert_same_tables(work, smoke_run)


def _processes(pattern: str) -> list[psutil.Process]:
    """The processes whose command line has ``pattern``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if pattern in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def _listening(pattern: str) -> set[tuple[str, str, int]]:
    """(process name, address, port) of every listening socket of the processes whose command line has
    ``pattern``."""
    found = set()
    for proc in _processes(pattern):
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((proc.name(), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


JOIN_WITHOUT_TOKEN = """
import sys, ray
try:
    ray.init(address=sys.argv[1])
except Exception as err:
    print(type(err).__name__, err)
    sys.exit(3)
print("JOINED WITHOUT A TOKEN")
"""


def _join_without_token(address: str, env: dict[str, str], timeout: float = 30) -> str:
    """What a driver without the token prints while it tries to join ``address`` for ``timeout`` s."""
    cmd = [sys.executable, "-c", JOIN_WITHOUT_TOKEN, address]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        return proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:  # killed: it was still retrying
        return "".join(s.decode() if isinstance(s, bytes) else s or "" for s in (err.stdout, err.stderr))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_cluster_sbatch_runs_the_smoke_preset(slurm, smoke_run, tmp_path):
    """sbatch workflow/slurm/ray-cluster.sbatch on one node: the head listens on loopback only, refuses a
    driver without the token, every job joins it through RAY_ADDRESS, and the rows equal the local run's. In
    CI the softmax slice (prepare_data, train, attack: three jobs); with ADVBENCH_SLURM_FULL=1 the whole
    smoke preset, and the report's tables equal the local run's too."""
    full = bool(os.environ.get("ADVBENCH_SLURM_FULL"))
    targets = [] if full else [SOFTMAX_ATTACK]
    work = smoke_copy(tmp_path)
    port = _free_port()
    env = tool_env(slurm, RAY_PORT=str(port))
    env = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")}
    sbatch = ["sbatch", "--parsable", "--nodes=1", f"--cpus-per-task={slurm.cpus}", "--gpus-per-node=1"]
    sbatch += [
        "--time=30",
        "workflow/slurm/ray-cluster.sbatch",
        *targets,
        "--configfile",
        "presets/smoke.yaml",
    ]
    job = subprocess.run(sbatch, cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    listening: set[tuple[str, str, int]] = set()
    refused = None
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        state = next(j["state"] for j in slurm.jobs() if j["id"] == job)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            break
        listening |= _listening(f"/tmp/ray-{job}/")
        if refused is None and any(p == port for _, _, p in listening):
            env_no_token = {k: v for k, v in env.items() if k != "RAY_ADDRESS"}
            refused = _join_without_token(f"127.0.0.1:{port}", env_no_token)
        time.sleep(1)
    shutil.rmtree(f"/tmp/ray-{job}", ignore_errors=True)  # ray-node.sh's node-local temp dir
    out = (work / f"advbench-ray-{job}.out").read_text()
    assert state == "COMPLETED", out[-5000:]
    assert f"Ray head on {slurm.node} at 127.0.0.1:{port}" in out
    # sampled once a second while the job runs: the head's GCS is always seen, its raylet not always (a
    # short job on a loaded machine can end between two samples); every socket seen must be loopback
    assert "gcs_server" in {name for name, _, _ in listening}, listening
    assert all(_loopback(ip) for _, ip, _ in listening), listening
    # a driver without the token is refused (Ray keeps retrying; it never joins)
    assert refused is not None and "JOINED WITHOUT A TOKEN" not in refused, refused
    assert "Authentication token is missing or incorrect" in refused, refused
    meta = read_meta(work / SOFTMAX_ATTACK)
    assert meta["ray_address"] == f"127.0.0.1:{port}"
    assert not list(work.glob(".ray-auth-*")), "the token folder outlived the job"
    assert not _processes(f"/tmp/ray-{job}/"), "Ray processes outlived the job"
    assert_same_results(work, smoke_run)
    if full:
        assert_same_tables(work, smoke_run)


def _states(work: Path) -> dict[str, dict]:
    """The saved training states of the fault run's seeds, by file name."""
    return {
        p.name: read_document(p) for p in sorted((work / "results/models" / FAULT_RUN).glob("seed=*.state"))
    }


def _job_of(cluster, run: str, rule: str = "train", active: bool = True) -> dict | None:
    jobs = [
        j
        for j in cluster.jobs()
        if j["name"] == run and comment_rule(j["comment"]) == rule and "maxout_adversarial" in j["comment"]
    ]
    if active:
        jobs = [j for j in jobs if j["state"] in ("RUNNING", "PENDING", "CONFIGURING")]
    return max(jobs, key=lambda j: int(j["id"])) if jobs else None


def _job_pids(cluster, job_id: str) -> list[int]:
    """The processes of one Slurm job (``scontrol listpids``) that carry its id in their environment."""
    out = cluster.run("scontrol", "listpids", job_id, check=False).stdout
    pids = [int(f[0]) for line in out.splitlines()[1:] if (f := line.split()) and f[0].isdigit()]
    own = []
    for pid in pids:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SLURM_JOB_ID={job_id}".encode() in environ:  # only this job's own processes
            own.append(pid)
    return own


def _step_snakemake_started(cluster, job_id: str) -> bool:
    """The job's step runs Snakemake: the process that starts its Ray (slurmstepd launches the step, so
    stopping the batch script alone would not hold it back)."""
    for pid in _job_pids(cluster, job_id):
        try:
            proc = psutil.Process(pid)
            if proc.name() != "srun" and "snakemake" in " ".join(proc.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def _stop_job_processes(cluster, job_id: str) -> list[int]:
    """SIGSTOP every process of one Slurm job, so that it runs into its time limit."""
    stopped = []
    for pid in _job_pids(cluster, job_id):
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        stopped.append(pid)
    return stopped


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := predicate()) is not None and value is not False:
            return value
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended (rc {proc.returncode}) while waiting for {what}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_cancelled_and_timed_out_job_resumes_to_the_same_result(slurm, smoke_run, tmp_path):
    """The adversarial maxout's training job, scancel'ed after its first saved epoch, is submitted again
    (--retries 2); that job is stopped as soon as it runs and put past a 1-minute time limit, and is
    submitted once more. The third job resumes each seed from the epochs the first one saved: three Slurm
    jobs (CANCELLED, TIMEOUT, COMPLETED), and checkpoints and curves equal the uninterrupted local run's.
    (Stopped later, say once it had resumed, the second job could finish the tiny training and delete the
    saved states before the stop lands, and the third would start afresh.)"""
    work = smoke_copy(tmp_path)
    log = work / "logs/train/mnist/maxout-adversarial.log"
    cmd = profile_cmd(slurm, "--retries", "2", FAULT_CURVES)
    with open(tmp_path / "snakemake.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=tool_env(slurm), stdout=out, stderr=subprocess.STDOUT)
        try:
            run = _wait(
                lambda: (
                    (m := re.search(r"SLURM run ID: (\S+)", (tmp_path / "snakemake.out").read_text()))
                    and m.group(1)
                ),
                120,
                "the run id",
                proc,
            )
            # 1. scancel once a seed has saved an epoch and before the job is done
            first = _wait(lambda: _job_of(slurm, run), 300, "the train job", proc)
            _wait(lambda: any(not s["finished"] for s in _states(work).values()), 300, "a saved epoch", proc)
            slurm.run("scancel", first["id"])
            saved = {name: s["epoch"] for name, s in _states(work).items()}
            # 2. the resubmitted job is stopped before it can train, and runs past a one-minute time limit
            second = _wait(
                lambda: (j := _job_of(slurm, run)) and j["id"] != first["id"] and j, 300, "the rerun", proc
            )
            _wait(lambda: _step_snakemake_started(slurm, second["id"]), 120, "the rerun's Snakemake", proc)
            assert _stop_job_processes(slurm, second["id"])
            time.sleep(0.5)
            _stop_job_processes(slurm, second["id"])  # any child forked while the first stop went round
            slurm.run("scontrol", "update", f"JobId={second['id']}", "TimeLimit=1")
            # 3. the third job finishes the training
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = (tmp_path / "snakemake.out").read_text()
    assert proc.returncode == 0, text[-5000:]
    jobs = sorted(
        (j for j in slurm.jobs() if j["name"] == run and comment_rule(j["comment"]) == "train"),
        key=lambda j: int(j["id"]),
    )
    assert [j["state"] for j in jobs] == ["CANCELLED", "TIMEOUT", "COMPLETED"], jobs
    assert saved and max(saved.values()) >= 1
    resumed = re.findall(r"seed (\d+): resuming after stage (\d) epoch (\d+)", log.read_text())
    assert resumed, log.read_text()[-3000:]  # the log holds the last job's lines: it went on from a state
    at = {f"seed={seed}.state": int(epoch) for seed, _, epoch in resumed}
    assert all(at.get(name, 0) >= epoch for name, epoch in saved.items()), (saved, resumed)
    assert_same_results(work, smoke_run, [FAULT_CURVES])
    for seed in (0, 1):
        rel = f"results/models/{FAULT_RUN}/seed={seed}.safetensors"
        ours, theirs = load_file(work / rel), load_file(smoke_run / rel)
        assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours), rel


def test_requeued_job_resumes_under_its_own_job_id(slurm, smoke_run, tmp_path):
    """Slurm's own requeue (a node failure or preemption on a real cluster): the adversarial maxout's
    training job, submitted with ``--slurm-requeue`` and no Snakemake retries, is requeued with
    ``scontrol requeue`` after its first saved epoch. Slurm runs it again under the same job id, the plugin
    keeps tracking it, and it resumes from the saved epochs to the uninterrupted run's checkpoints."""
    work = smoke_copy(tmp_path)
    log = work / "logs/train/mnist/maxout-adversarial.log"
    out_path = tmp_path / "snakemake.out"
    cmd = profile_cmd(slurm, "--slurm-requeue", "--retries", "0", FAULT_CURVES)
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=tool_env(slurm), stdout=out, stderr=subprocess.STDOUT)
        try:
            run = _wait(
                lambda: (m := re.search(r"SLURM run ID: (\S+)", out_path.read_text())) and m.group(1),
                120,
                "the run id",
                proc,
            )
            job = _wait(lambda: _job_of(slurm, run), 300, "the train job", proc)
            _wait(lambda: any(not s["finished"] for s in _states(work).values()), 300, "a saved epoch", proc)
            slurm.run("scontrol", "requeue", job["id"])
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = out_path.read_text()
    assert proc.returncode == 0, text[-5000:]
    jobs = [j for j in slurm.jobs() if j["name"] == run and comment_rule(j["comment"]) == "train"]
    assert [(j["id"], j["state"]) for j in jobs] == [(job["id"], "COMPLETED")], jobs
    info = slurm.run("scontrol", "show", "job", job["id"]).stdout
    assert "Requeue=1" in info and re.search(r"Restarts=[1-9]", info), info  # sbatch --requeue, requeued
    resumed = re.findall(r"seed (\d+): resuming after stage (\d) epoch (\d+)", log.read_text())
    assert resumed, log.read_text()[-3000:]
    assert_same_results(work, smoke_run, [FAULT_CURVES])
    for seed in (0, 1):
        rel = f"results/models/{FAULT_RUN}/seed={seed}.safetensors"
        ours, theirs = load_file(work / rel), load_file(smoke_run / rel)
        assert ours.keys() == theirs.keys() and all(ours[k].equal(theirs[k]) for k in ours), rel


def test_cluster_state_stays_in_its_folder(slurm):
    """The daemons' state, spool, logs and munge socket are under the fixture's temporary folder."""
    conf = slurm.conf.read_text()
    for key in ("StateSaveLocation", "SlurmdSpoolDir", "SlurmctldLogFile", "SlurmdLogFile", "AuthInfo"):
        value = re.search(rf"^{key}=(?:socket=)?(\S+)$", conf, flags=re.M).group(1)
        assert Path(value).is_relative_to(slurm.root), key
    assert re.match(r"slurm(-wlm)? \d+\.\d+", slurm.version), slurm.version


def test_processes_left_with_the_clusters_conf_are_killed(tmp_path):
    """What ``stop()`` ends last: a process with this cluster's SLURM_CONF (a job step outside its tree);
    one with another cluster's stays."""
    conf = tmp_path / "slurm.conf"
    stray = subprocess.Popen(["sleep", "300"], env=os.environ | {"SLURM_CONF": str(conf)})
    other = subprocess.Popen(["sleep", "300"], env=os.environ | {"SLURM_CONF": f"{conf}.other"})
    try:
        assert slurm_cluster.kill_left_running(conf) == [stray.pid]
        assert not psutil.pid_exists(stray.pid)
        assert other.poll() is None
    finally:
        for proc in (stray, other):
            proc.kill()
            proc.wait()
