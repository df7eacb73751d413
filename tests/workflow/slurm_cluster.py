"""A one-node Slurm on this machine, for tests: munged, slurmctld and slurmd, all state in one folder.

``start(root)`` installs Debian's ``slurm-wlm`` and ``munge`` when they are missing (as root, with apt-get),
writes a fresh munge key and a minimal ``slurm.conf`` (this machine's CPUs and memory from ``slurmd -C``,
partitions ``cpu`` and ``gpu`` as the Slurm profile names them, one fake GPU so that ``--gpus=1`` is
accepted), starts the three daemons on free ports and waits until ``sinfo`` shows the node idle. No accounting
daemon: job states come from ``squeue`` (``MinJobAge`` keeps finished jobs there for two hours, longer than
the whole smoke preset takes through the profile). Processes are tracked by ``proctrack/linuxproc`` and tasks
are not confined (no cgroups: they are not available in every container), so a job step's process that
leaves its process tree is not ended with its job. ``AuthInfo``'s ``cred_expire=10`` shortens the wait of a
requeued job, which may start again only ``cred_expire`` + 1 seconds later (Slurm's default: 120 s).
``SlurmCluster.stop()`` cancels what is left, stops the daemons and ends every process still carrying this
cluster's ``SLURM_CONF`` in its environment.

Clients find the cluster through ``SLURM_CONF`` (``SlurmCluster.env``). The Slurm executor plugin's job step
(snakemake-executor-plugin-slurm-jobstep 0.6) drops every ``SLURM_*`` variable but a few before its inner
``srun``, ``SLURM_CONF`` included, so ``env`` also puts a two-line ``srun`` first on ``PATH`` that sets it
again; on a real cluster ``srun`` reads ``/etc/slurm/slurm.conf`` (or the configless cache) and needs none.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from advbench.runtime.cleanup import kill_matching

DAEMONS = ("munged", "slurmctld", "slurmd")
PACKAGES = ("slurm-wlm", "munge")


class SlurmUnavailable(RuntimeError):
    """Slurm could not be installed or started here (the message says why)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install() -> None:
    """apt-get install slurm-wlm and munge unless their daemons are on PATH already."""
    if all(shutil.which(d) for d in DAEMONS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable("slurm-wlm and munge are not installed and apt-get cannot run as root here")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    missing = [d for d in DAEMONS if not shutil.which(d)]
    if missing:
        raise SlurmUnavailable(f"installed {PACKAGES} but {missing} are not on PATH")


@dataclass
class SlurmCluster:
    root: Path
    node: str
    cpus: int
    memory_mb: int
    version: str
    env: dict[str, str] = field(repr=False)
    pids: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """A Slurm client command (sinfo, squeue, scancel, scontrol, sbatch) against this cluster."""
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones for MinJobAge): id, name, state, partition, ..."""
        fields = {"id": "%i", "name": "%j", "state": "%T", "partition": "%P", "cpus": "%C", "comment": "%k"}
        fields |= {"time_limit": "%l", "reason": "%r"}
        fmt = "|".join(fields.values())
        out = self.run("squeue", "--states=all", "--noheader", f"--format={fmt}").stdout
        return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]

    def log(self, daemon: str) -> str:
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Cancel every job, stop slurmd, slurmctld and munged, wait for them to exit, then end what the
        jobs left running (:func:`kill_left_running`)."""
        self.run("scancel", "--full", "--user", "root", check=False)
        deadline = time.monotonic() + 30  # let slurmd end the jobs' steps before it stops
        while time.monotonic() < deadline:
            active = self.run("squeue", "--noheader", "--states=PD,CF,R,CG,S", "--format=%i", check=False)
            if active.returncode != 0 or not active.stdout.strip():
                break
            time.sleep(0.5)
        self.run("scontrol", "shutdown", check=False)
        deadline = time.monotonic() + 30
        for name in ("slurmd", "slurmctld", "munged"):
            pid = self.pids.get(name)
            if pid is None:
                continue
            if name == "munged":
                subprocess.run(["munged", "--stop", f"--socket={self.root / 'munge/socket'}"], timeout=30)
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, 9)
        kill_left_running(self.conf)


def kill_left_running(conf: Path) -> list[int]:
    """Kill the processes whose environment names ``conf`` as ``SLURM_CONF``: job steps of that cluster
    that left their process tree; their pids."""
    return kill_matching(lambda proc: proc.environ().get("SLURM_CONF") == str(conf))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _read_pid(path: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text().strip()):
            return int(text)
        time.sleep(0.1)
    raise SlurmUnavailable(f"no pid file {path} after {timeout} s")


def _node_line() -> tuple[str, int, int]:
    """``slurmd -C``'s hardware line for this machine (without its NodeName), its CPUs and memory."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    hardware = line.split(" ", 1)[1]
    cpus = int(re.search(r"\bCPUs=(\d+)", hardware).group(1))
    memory = int(re.search(r"\bRealMemory=(\d+)", hardware).group(1))
    return hardware, cpus, memory


SLURM_CONF = """\
ClusterName=advbench-test
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={root}/munge/socket,cred_expire=10
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=7200
KillWait=5
InactiveLimit=0
SchedulerParameters=sched_interval=5
FirstJobId={first_job_id}
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 {hardware} Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes={node} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={node} MaxTime=INFINITE State=UP
"""


def start(root: Path, timeout: float = 120) -> SlurmCluster:
    """Install if needed, configure and start a one-node Slurm with all its state under ``root``."""
    install()
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    for sub in ("munge", "state", "spool", "log", "bin"):
        (root / sub).mkdir(exist_ok=True)
    (root / "munge").chmod(0o700)
    key = root / "munge/munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)

    node = socket.gethostname().split(".")[0]
    hardware, cpus, memory = _node_line()
    conf = root / "slurm.conf"
    ports = {"ctld_port": _free_port(), "slurmd_port": _free_port()}
    # job ids that an earlier test cluster did not use (ray-node.sh's temp dir is /tmp/ray-<job id>)
    first_job_id = random.randrange(10_000, 10_000_000)
    conf.write_text(
        SLURM_CONF.format(root=root, node=node, hardware=hardware, first_job_id=first_job_id, **ports)
    )
    # A GPU that is not there: sbatch --gpus=1 (the profile's GPU rules) is then accepted. Jobs see
    # CUDA_VISIBLE_DEVICES=0, torch finds no CUDA device and the tasks run on CPUs (ray.num_gpus_per_task: 0).
    (root / "gres.conf").write_text(f"NodeName={node} Name=gpu File=/dev/null\n")
    srun = root / "bin/srun"
    srun.write_text(f'#!/bin/sh\nexport SLURM_CONF={conf}\nexec {shutil.which("srun")} "$@"\n')
    srun.chmod(0o755)
    env = os.environ | {"SLURM_CONF": str(conf), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith(("SLURM_JOB", "SBATCH_", "SRUN_"))} | {
        "SLURM_CONF": str(conf)
    }
    version = subprocess.run(["sinfo", "--version"], capture_output=True, text=True, env=env).stdout.strip()
    cluster = SlurmCluster(root, node, cpus, memory, version, env)

    munge = [f"--key-file={key}", f"--socket={root / 'munge/socket'}", f"--pid-file={root / 'munge/pid'}"]
    munge += [f"--log-file={root / 'log/munged.log'}", f"--seed-file={root / 'munge/seed'}"]
    steps = [
        ("munged", ["munged", "--force", *munge], root / "munge/pid"),
        ("slurmctld", ["slurmctld", "-f", str(conf)], root / "slurmctld.pid"),
        ("slurmd", ["slurmd", "-f", str(conf)], root / "slurmd.pid"),
    ]
    try:
        for name, cmd, pid_file in steps:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                raise SlurmUnavailable(f"{name} did not start: {proc.stderr[-2000:]}\n{cluster.log(name)}")
            cluster.pids[name] = _read_pid(pid_file)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            proc = cluster.run("sinfo", "--noheader", "--nodes", node, "--format=%T", check=False)
            state = proc.stdout.split()[0] if proc.stdout.split() else proc.stderr.strip()
            if state == "idle":
                return cluster
            time.sleep(0.5)
        raise SlurmUnavailable(
            f"node {node} is '{state}' after {timeout} s, not idle:\n"
            f"{cluster.log('slurmctld')[-3000:]}\n{cluster.log('slurmd')[-3000:]}"
        )
    except BaseException:
        cluster.stop()
        raise
