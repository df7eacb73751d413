"""The Slurm profile (read by Snakemake's dry run) and the sbatch recipe that starts a Ray cluster.

No Slurm here: the dry run plans every job with the resources the Slurm executor would submit, and the sbatch
scripts are checked for syntax and for the names they share with advbench.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, smoke_copy

PROFILE = REPO / "workflow/profiles/slurm/config.yaml"
SBATCH = REPO / "workflow/slurm/ray-cluster.sbatch"
NODE = REPO / "workflow/slurm/ray-node.sh"


def rule_blocks() -> dict[str, str]:
    """Each rule's text in workflow/rules; a rule made by ``use rule <base> as <name> with:`` gets its base's
    text followed by its own (what it does not override, it inherits)."""
    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow/rules").glob("*.smk")))
    blocks = re.split(r"^(?=rule \w+:|use rule \w+ as \w+ with:)", text, flags=re.M)
    out = {m.group(1): b for b in blocks if (m := re.match(r"rule (\w+):", b))}
    for b in blocks:
        if m := re.match(r"use rule (\w+) as (\w+) with:", b):
            out[m.group(2)] = out[m.group(1)] + b
    return out


def ray_rules() -> set[str]:
    """The rules whose jobs start or join Ray: their threads come from the Ray section of common.smk."""
    return {rule for rule, block in rule_blocks().items() if "threads: RAY_THREADS" in block}


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def test_profile_names_the_slurm_executor_and_defaults(profile):
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "runtime", "mem_mb"} <= profile["default-resources"].keys()
    assert profile["jobs"] >= 1 and profile["latency-wait"] >= 10


def test_every_ray_rule_gets_threads_and_a_gpu(profile):
    rules = ray_rules()
    assert {"train", "attack", "transfer"} <= rules  # the parse found the rules
    assert rules == profile["set-threads"].keys() == profile["set-resources"].keys()
    for rule in rules:
        res = profile["set-resources"][rule]
        assert res["gpu"] >= 1 and res["slurm_partition"] and res["runtime"] > 0 and res["mem_mb"] > 0, rule
        # the profile's cores caps every job's threads (in a dry run too)
        assert 1 <= profile["set-threads"][rule] <= profile["cores"], rule


def parse_plan(text: str) -> list[dict]:
    """Snakemake's dry-run job listing: one dict per job with rule, threads, resources and shell command."""
    jobs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:)", text, flags=re.M)[1:]:
        job = {"rule": re.match(r"(?:local)?rule (\w+):", block).group(1), "threads": 1, "resources": {}}
        if m := re.search(r"^\s+threads: (\d+)$", block, flags=re.M):
            job["threads"] = int(m.group(1))
        if m := re.search(r"^\s+resources: (.*)$", block, flags=re.M):
            job["resources"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        if m := re.search(r"^Shell command: (.*)$", block, flags=re.M):
            job["shell"] = m.group(1)
        jobs.append(job)
    return jobs


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    pytest.importorskip(
        "snakemake_executor_plugin_slurm",
        reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')",
    )
    work = smoke_copy(tmp_path_factory.mktemp("slurm"))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "SNAKEMAKE_PROFILE")}
    cmd = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm"]
    cmd += ["--configfile", "presets/smoke.yaml", "--dry-run"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return parse_plan(proc.stdout + proc.stderr)


def test_dry_run_plans_every_ray_job_with_the_profiles_resources(plan, profile):
    ray_jobs = [j for j in plan if j["rule"] in ray_rules()]
    assert {j["rule"] for j in ray_jobs} == ray_rules()  # the smoke preset switches every experiment on
    for job in ray_jobs:
        threads, res = profile["set-threads"][job["rule"]], profile["set-resources"][job["rule"]]
        assert job["threads"] == threads, job["rule"]  # sbatch --cpus-per-task
        assert "--threads {threads} " in rule_blocks()[job["rule"]], job["rule"]  # its Ray gets them
        for key in ("slurm_partition", "gpu", "mem_mb", "runtime"):
            assert job["resources"][key] == str(res[key]), (job["rule"], key)


def test_dry_run_gives_other_jobs_the_default_resources(plan, profile):
    prepare = next(j for j in plan if j["rule"] == "prepare_data")
    assert "gpu" not in prepare["resources"]
    for key, value in profile["default-resources"].items():
        assert prepare["resources"][key] == str(value), key


@pytest.mark.parametrize("script", [SBATCH, NODE], ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script):
    assert os.access(script, os.X_OK)
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sbatch_exports_the_address_advbench_joins(monkeypatch):
    from advbench.runtime.ray import RaySettings

    text = SBATCH.read_text()
    assert re.search(r"^export RAY_ADDRESS=\"\$head_ip:\$port\"", text, flags=re.M)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert RaySettings().cluster_address == "10.0.0.1:6379"  # what each job's driver joins
    assert re.search(r"^export RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=", text, flags=re.M)
    assert re.search(r"^trap stop_ray EXIT$", text, flags=re.M)
    # it ends its own node steps; `ray stop` would stop every Ray of the user on the node
    assert "kill $steps" in text and not re.search(r"^[^#]*ray stop", text, flags=re.M)
    node_script = re.search(r'^node_script="\$here/(.+)"$', text, flags=re.M).group(1)
    assert (REPO / node_script).resolve() == NODE
    profile_dir = re.search(r"snakemake --profile (\S+)", text).group(1)
    assert (REPO / profile_dir / "config.yaml").is_file()


def test_sbatch_gives_each_node_step_the_cpus_the_node_script_reads():
    text = SBATCH.read_text()
    assert re.search(r"^#SBATCH --cpus-per-task=\d+$", text, flags=re.M)
    assert '--cpus-per-task="$SLURM_CPUS_PER_TASK"' in text
    assert "SLURM_CPUS_PER_TASK:?" in NODE.read_text()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["bogus", "x"], {"SLURM_CPUS_PER_TASK": "2", "SLURM_JOB_ID": "1"}, "must be head or worker"),
        (["head", "127.0.0.1", "6379"], {"SLURM_JOB_ID": "1"}, "srun --cpus-per-task"),
    ],
)
def test_node_script_rejects_bad_use_before_starting_ray(args, env, message):
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run([str(NODE), *args], env=base | env, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert message in proc.stderr
