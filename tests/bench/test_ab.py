"""``advbench ab``: two commits trained by their own workflows, taking turns, their seconds per epoch paired
and their weights hashed. Here the commits are a clone's HEAD and a commit on top that halves the maxout's
learning rate in config.yaml: the same code, different numbers, which the comparison must tell apart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO

from advbench.bench.ab import AbError, AbSpec, markdown, resolve, run_ab, speed_verdict, summarize
from advbench.cli import main

TINY = AbSpec(epochs=1, regimes=("clean",), presets=("presets/smoke.yaml",))


def _git(repo, *args: str) -> str:
    ident = ["-c", "user.name=advbench tests", "-c", "user.email=tests@advbench.invalid"]
    return subprocess.run(
        ["git", "-C", str(repo), *ident, *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def ab(tmp_path_factory: pytest.TempPathFactory, mnist_dir) -> tuple:
    repo = tmp_path_factory.mktemp("ab") / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    config = yaml.safe_load((repo / "config.yaml").read_text())
    lr = config["models"]["maxout"]["train"]["lr"]
    text = (repo / "config.yaml").read_text().replace(f"lr: {lr}", f"lr: {lr / 2}", 1)
    (repo / "config.yaml").write_text(text)
    assert yaml.safe_load(text)["models"]["maxout"]["train"]["lr"] == lr / 2
    _git(repo, "commit", "-q", "-am", "halve the maxout's learning rate")
    runs = run_ab(repo, ("HEAD~1", "HEAD"), TINY, repo.parent / "trees", repeats=2)
    return repo, runs


@pytest.mark.e2e
def test_the_commits_take_turns_with_their_own_code(ab):
    repo, runs = ab
    assert runs[["rep", "label"]].values.tolist() == [[0, "A"], [0, "B"], [1, "B"], [1, "A"]]
    commits = runs.groupby("label")["commit"].unique()
    assert commits["A"].tolist() == [resolve(repo, "HEAD~1")]  # read_run checked each curve's provenance
    assert commits["B"].tolist() == [resolve(repo, "HEAD")]
    assert (runs["epochs"] == 1).all() and (runs["seconds_per_epoch"] > 0).all()
    worktrees = _git(repo, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 1  # the comparison's worktrees are gone


@pytest.mark.e2e
def test_different_numbers_are_told_apart_and_each_commit_repeats_itself(ab):
    _, runs = ab
    (row,) = summarize(runs).to_dict("records")
    assert not row["same_weights"] and not row["same_curves"]
    assert row["repeatable"]  # each commit's two runs gave the same bits
    medians = runs.groupby("label")["seconds_per_epoch"].median()
    assert row["repetitions"] == 2 and row["B_over_A"] == pytest.approx(medians["B"] / medians["A"])


def test_summary_pairs_each_repetition():
    runs = pd.DataFrame(
        {
            "rep": [0, 0, 1, 1, 2, 2],
            "label": ["A", "B", "B", "A", "A", "B"],
            "regime": "clean",
            "seed": 0,
            "seconds_per_epoch": [4.0, 5.0, 6.0, 4.0, 5.0, 5.0],
            "weights": "w",
            "curves": "c",
        }
    )
    (row,) = summarize(runs).to_dict("records")
    assert row["A_s_per_epoch"] == 4.0 and row["B_s_per_epoch"] == 5.0
    assert row["B_over_A"] == pytest.approx(1.25)
    assert row["rep_min"] == pytest.approx(1.0) and row["rep_max"] == pytest.approx(1.5)
    assert row["ci_low"] < 1.25 < row["ci_high"]
    assert row["same_weights"] and row["same_curves"] and row["repeatable"]
    assert row["speed"] == "within noise"
    assert speed_verdict(1.02, 1.2) == "B slower" and speed_verdict(0.8, 0.99) == "B faster"
    text = markdown(summarize(runs), ("v1", "v2"), AbSpec(), "a test machine", "advbench ab v1 v2")
    assert "`advbench ab v1 v2`" in text and "Machine: a test machine." in text
    assert "within noise" in text and "B_over_A" in text


def test_a_revision_that_is_no_commit_is_named(tmp_path, caplog):
    with pytest.raises(AbError, match="'no-such-rev' is not a commit"):
        resolve(REPO, "no-such-rev")
    assert main(["ab", "no-such-rev", "--repo", str(REPO), "--workdir", str(tmp_path)]) == 2
    assert "no-such-rev" in caplog.text


@pytest.mark.e2e
def test_a_commit_that_fails_is_named_with_its_log(ab):
    repo, _ = ab
    config = repo / "config.yaml"
    config.write_text(config.read_text().replace("pieces: 5", "pieces: five", 1))
    _git(repo, "commit", "-q", "-am", "a config that the schema refuses")
    broken = resolve(repo, "HEAD")
    with pytest.raises(AbError, match=f"{broken[:12]}: snakemake exited") as err:
        run_ab(repo, ("HEAD", "HEAD~1"), TINY, repo.parent / "trees", repeats=1)
    log_path = Path(str(err.value).rsplit("see ", 1)[1])
    assert log_path.exists() and "pieces" in log_path.read_text()  # the log outlives the worktree
    assert _git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
