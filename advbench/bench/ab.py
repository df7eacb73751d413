"""Two commits of advbench against each other on this machine: is a run slower because of the code or
because of the machine, and does a change that should not move the numbers keep them bit for bit?

Each commit is checked out in a git worktree of its own and trained by its own workflow (README's command
with an overlay: the 240-unit maxout, clean and adversarially trained, a few epochs, the given seeds),
``PYTHONPATH`` pointing at that worktree so that its jobs and Ray tasks import its code. The commits take
turns, A B then B A, so that a machine that drifts slower during the comparison slows both alike, and one
repetition's two runs give one paired ratio of seconds per epoch (``advbench.bench.timing.paired_range``).
The weights and the curves (every value but the seconds) are hashed after each run: the same hash for both
commits in every repetition means the two compute the same thing to the last bit.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml
from safetensors.torch import load_file

from advbench.bench.timing import paired_range
from advbench.config.runs import run_id, runs_alone
from advbench.reliability.chaos import tool_env
from advbench.results.tables import read_meta

log = logging.getLogger(__name__)

OVERLAY = "ab.yaml"
TRAINED = ("results/models", "results/metrics/curves")  # deleted before each run: no resume, no reuse
VOLATILE = ("seconds",)  # curve columns that measure the machine, not the training


class AbError(RuntimeError):
    """A revision that cannot be compared: the message names it and the log to read."""


@dataclass(frozen=True)
class AbSpec:
    """What each run trains: the 240-unit maxout's ``regimes`` for ``epochs`` epochs (stage 1, no stage 2)
    over ``seeds``, with Snakemake on ``cores`` cores (1: the jobs one after the other, each timed alone),
    ``presets`` merged between config.yaml and the overlay (the tests' tiny data)."""

    epochs: int = 3
    seeds: tuple[int, ...] = (0,)
    regimes: tuple[str, ...] = ("clean", "adversarial")
    cores: int = 1
    presets: tuple[str, ...] = ()

    def overlay(self) -> dict:
        runs = [run_id("maxout", regime) for regime in self.regimes]
        return runs_alone(runs, self.seeds, {"max_epochs": self.epochs, "retrain": False})

    def command(self) -> list[str]:
        configs = ["--configfile", *self.presets, OVERLAY]
        profile = ["--profile", "workflow/profiles/default", "--cores", str(self.cores)]
        return ["snakemake", *profile, *configs, "--until", "train"]


def resolve(repo: Path, rev: str) -> str:
    """The full commit hash of ``rev`` in ``repo``."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise AbError(f"{rev!r} is not a commit of {repo}")
    return out.stdout.strip()


def checkout(repo: Path, commit: str, root: Path) -> Path:
    """A worktree of ``repo`` at ``commit`` under ``root``; one already there is reused (A and B may be
    one commit). Run ``git worktree prune`` first where an earlier tree may have been deleted by hand."""
    tree = root / commit[:12]
    if not (tree / ".git").exists():
        shutil.rmtree(tree, ignore_errors=True)
        git = ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), commit]
        subprocess.run(git, check=True, capture_output=True)
    return tree


def remove_worktrees(repo: Path, trees: list[Path]) -> None:
    for tree in trees:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)


def run_once(tree: Path, spec: AbSpec) -> float:
    """Train ``spec`` from scratch with the code of ``tree``; the Snakemake invocation's seconds. Its
    output goes to ``<tree>.log`` beside the worktree, which outlives it."""
    for name in TRAINED:
        shutil.rmtree(tree / name, ignore_errors=True)
    (tree / OVERLAY).write_text(yaml.safe_dump(spec.overlay(), sort_keys=False))
    env = tool_env() | {"PYTHONPATH": str(tree)}
    start = time.perf_counter()
    log_path = tree.with_suffix(".log")
    with open(log_path, "ab") as out:
        rc = subprocess.run(spec.command(), cwd=tree, env=env, stdout=out, stderr=out).returncode
    if rc != 0:
        raise AbError(f"{tree.name}: snakemake exited {rc}; see {log_path}")
    return time.perf_counter() - start


def weights_digest(path: Path) -> str:
    """SHA-256 of a checkpoint's tensors (names, dtypes, shapes, bytes), not of its file: the file's
    metadata names the commit and the time."""
    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(path).items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.contiguous().view(-1).numpy().tobytes())
    return digest.hexdigest()


def curves_digest(curves: pd.DataFrame) -> str:
    """SHA-256 of the curves' values, the seconds left out."""
    kept = curves.drop(columns=list(VOLATILE)).sort_values(["stage", "epoch"]).reset_index(drop=True)
    return hashlib.sha256(kept.to_csv(index=False).encode()).hexdigest()


def read_run(tree: Path, commit: str) -> list[dict]:
    """One record per trained (regime, seed): seconds per epoch and the digests, checked to come from
    ``commit``'s code (the curves' provenance names the commit of the package that wrote them)."""
    records = []
    for path in sorted((tree / TRAINED[1]).glob("*/model=maxout/regime=*/curves.parquet")):
        written_by = read_meta(path).get("git_commit")
        if written_by != commit:
            raise AbError(f"{path}: written by commit {written_by}, not {commit} (PYTHONPATH not honoured?)")
        curves = pq.read_table(path).to_pandas()
        run = path.parent.relative_to(tree / TRAINED[1])
        for seed, own in curves.groupby("seed"):
            checkpoint = tree / TRAINED[0] / run / f"seed={seed}.safetensors"
            records.append(
                {
                    "regime": str(own["regime"].iloc[0]),
                    "seed": int(seed),
                    "epochs": len(own),
                    "seconds_per_epoch": float(own["seconds"].mean()),
                    "weights": weights_digest(checkpoint),
                    "curves": curves_digest(own),
                }
            )
    if not records:
        raise AbError(f"{tree}: the run trained nothing (no curves under {TRAINED[1]})")
    return records


def run_ab(repo: Path, revs: tuple[str, str], spec: AbSpec, root: Path, repeats: int = 3) -> pd.DataFrame:
    """Every repetition runs both revisions, in the order A B, then B A, and so on; one row per run and
    trained (regime, seed), labelled ``A`` or ``B``."""
    commits = [resolve(repo, rev) for rev in revs]
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "-C", str(repo), "worktree", "prune"], check=True)
    trees = [checkout(repo, commit, root) for commit in commits]
    rows = []
    try:
        for rep in range(repeats):
            order = (0, 1) if rep % 2 == 0 else (1, 0)
            for i in order:
                label, rev = "AB"[i], revs[i]
                log.info("repetition %d, %s (%s): %s", rep, label, rev, " ".join(spec.command()))
                wall = run_once(trees[i], spec)
                for record in read_run(trees[i], commits[i]):
                    rows.append({"rep": rep, "label": label, "rev": rev, "commit": commits[i]} | record)
                    rows[-1]["run_s"] = wall
    finally:
        remove_worktrees(repo, list(dict.fromkeys(trees)))
    return pd.DataFrame(rows)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (regime, seed): each revision's median seconds per epoch, B / A (the ratio of the medians, and
    the paired repetitions' range and 95% interval), and whether the weights and the curves are the same
    bits in every run of both (``same_*``) and in every run of each revision (``repeatable``)."""
    rows = []
    for (regime, seed), own in runs.groupby(["regime", "seed"], sort=False):
        wide = own.pivot(index="rep", columns="label", values="seconds_per_epoch")
        row = {"regime": regime, "seed": seed, "repetitions": len(wide)}
        row |= {f"{label}_s_per_epoch": float(wide[label].median()) for label in "AB"}
        row["B_over_A"] = row["B_s_per_epoch"] / row["A_s_per_epoch"]
        row |= paired_range(wide["B"].tolist(), wide["A"].tolist())
        row["speed"] = speed_verdict(row["ci_low"], row["ci_high"])
        row["same_weights"] = own["weights"].nunique() == 1
        row["same_curves"] = own["curves"].nunique() == 1
        row["repeatable"] = bool((own.groupby("label")["weights"].nunique() == 1).all())
        rows.append(row)
    return pd.DataFrame(rows)


def speed_verdict(low: float, high: float) -> str:
    """B against A from the 95% interval of B / A: ``within noise`` where it holds 1."""
    if not low <= high:  # NaN: one repetition gives no interval
        return "one repetition: no interval"
    if high < 1:
        return "B faster"
    return "B slower" if low > 1 else "within noise"


def markdown(summary: pd.DataFrame, revs: tuple[str, str], spec: AbSpec, machine: str, command: str) -> str:
    intro = (
        f"Generated by `{command}` (advbench/bench/ab.py): A = `{revs[0]}`, B = `{revs[1]}`. Each commit "
        f"trains the 240-unit maxout ({', '.join(spec.regimes)}) for {spec.epochs} epochs, seeds "
        f"{list(spec.seeds)}, with its own workflow (Snakemake on {spec.cores} core(s)), the commits taking "
        "turns: A B, then B A. Seconds per epoch are medians over the repetitions; `B_over_A` is their "
        "ratio, `rep_min` to `rep_max` the paired repetitions' ratios and `ci_low` to `ci_high` their 95% "
        "interval, which decides `speed` (`within noise` where it holds 1). `same_weights` and "
        "`same_curves`: the same bits in every run of both commits; `repeatable`: in every run of each."
    )
    body = summary.to_markdown(index=False, floatfmt=".3f")
    return f"# Two commits on one machine\n\n{textwrap.fill(intro, 110)}\n\nMachine: {machine}.\n\n{body}\n"


def write_outputs(
    runs: pd.DataFrame, summary: pd.DataFrame, out_dir: Path, text: str, doc: Path | None = None
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out_dir / "ab_runs.csv", index=False)
    summary.to_csv(out_dir / "ab.csv", index=False)
    (out_dir / "ab.md").write_text(text)
    if doc is not None:
        doc.write_text(text)
