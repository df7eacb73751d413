"""The smoke workflow against a real two-node Ray cluster (RAY_ADDRESS), compared with the local run: the
jobs behind the compared files (training, attack and transfer of the 240-unit pair, softmax), not the
whole preset, which the local run and the installed-package test already run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_snakemake, smoke_copy

from advbench.results.tables import read_meta, read_table

pytestmark = pytest.mark.e2e

RESULTS = [
    ("attack", "results/metrics/attack/dataset=mnist/model=maxout/regime=adversarial/attacks.parquet"),
    ("attack", "results/metrics/attack/dataset=mnist/model=softmax/regime=clean/attacks.parquet"),
    (
        "transfer",
        "results/metrics/transfer/dataset=mnist/source=maxout-clean/target=maxout-adversarial/attacks.parquet",
    ),
    ("curves", "results/metrics/curves/dataset=mnist/model=maxout/regime=clean/curves.parquet"),
]


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory: pytest.TempPathFactory, smoke_run: Path) -> tuple[Path, str]:
    """Two nodes of one CPU each on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, set by conftest)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        work = smoke_copy(tmp_path_factory.mktemp("cluster"))
        targets = [rel for _, rel in RESULTS]
        proc = run_snakemake(work, "--cores", "2", *targets, env={"RAY_ADDRESS": cluster.address})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield work, cluster.address
    finally:
        cluster.shutdown()


def _data(path: Path, kind: str):
    table = read_table(path, kind).replace_schema_metadata(None)
    return table.drop_columns(["seconds"]) if kind == "curves" else table


def test_tasks_ran_on_both_nodes(cluster_run):
    """Every job's tasks went to the cluster, and the cluster's two nodes both ran some: which node a task
    lands on depends on what the other job running at the same time holds, so not each job spreads."""
    work, address = cluster_run
    metas = [read_meta(work / rel) for _, rel in RESULTS]
    assert all(meta["ray_address"] == address for meta in metas)
    assert len({node for meta in metas for node in meta["node_ids"]}) == 2


def test_cluster_results_equal_local_results(cluster_run, smoke_run):
    work, _ = cluster_run
    for kind, rel in RESULTS:
        assert _data(work / rel, kind).equals(_data(smoke_run / rel, kind)), rel
