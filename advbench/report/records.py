"""One JSON record per trained model, with its Hugging Face model card, built from the run's attack and
training results; the leaderboard is generated from the records alone (RobustBench's way: records in,
tables out).

A record names its fields as RobustBench's ``model_info`` files do where one exists (``name``,
``dataset``, ``threat_model``, ``architecture``, ``eps``, ``clean_acc``, ``additional_data``,
``number_forward_passes``), with numbers rather than strings, accuracies in %. RobustBench's headline is
AutoAttack's accuracy; advbench's ``robust_acc`` is the lowest mean accuracy any of the run's attacks
reached at the record's ``eps`` (clipped to valid images where that ran). It is an upper bound on the
worst case per example, which the counts of the results tables do not give, and no AutoAttack number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from advbench.config.specs import Arch, ModelSpec, model_spec_from_dict
from advbench.models.architectures import build
from advbench.report.paper import interval
from advbench.results.tables import read_meta, read_table
from advbench.runtime.files import atomic_path

RECORD_VERSION = 1
THREAT_MODEL = "Linf"
REQUIRED = ("record_version", "name", "dataset", "architecture", "eps", "clean_acc", "robust_acc")
LEADERBOARD_COLUMNS = [
    "dataset", "rank", "name", "architecture", "parameters", "eps", "clipped", "clean_acc_mean",
    "clean_acc_std", "robust_acc_mean", "robust_acc_std", "robust_ci95_low", "robust_ci95_high",
    "robust_attack", "n_seeds",
]  # fmt: skip
_CELL = ["attack", "eps", "clipped", "label_source"]


class RecordError(ValueError):
    """A record that cannot be read; the message names the file and the field."""


def architecture(spec: ModelSpec) -> str:
    """The model in a few words (the record's ``architecture``)."""
    if spec.arch == Arch.MAXOUT:
        return f"maxout MLP, {spec.hidden_layers} x {spec.units} units x {spec.pieces} pieces"
    if spec.arch == Arch.CONV_MAXOUT:
        return f"conv maxout, channels {list(spec.channels)}, {spec.units} maxout units"
    if spec.arch == Arch.EXTERNAL:
        return f"external: {spec.torchscript or spec.factory}"
    if spec.arch == Arch.RBF:
        return f"RBF network, {spec.units} units"
    if spec.arch == Arch.MP_DBM:
        units = " + ".join(map(str, spec.dbm_units))
        return f"MP-DBM, {units} hidden units, {spec.dbm_iterations} mean-field passes"
    return {"softmax": "softmax regression", "logistic": "logistic regression"}.get(spec.arch, spec.arch)


def n_parameters(spec: ModelSpec) -> int:
    return sum(p.numel() for p in build(spec).parameters())


def _rate(values: pd.Series, n: float) -> dict[str, float | None]:
    """Mean, sd and 95% interval (:func:`advbench.report.paper.interval`) of a rate over seeds, in %."""
    low, high = interval(values, n)
    sd = values.std(ddof=1) if len(values) > 1 else float("nan")
    return {
        k: _pct(v) for k, v in {"mean": values.mean(), "std": sd, "ci95_low": low, "ci95_high": high}.items()
    }


def _pct(value: float) -> float | None:
    return None if pd.isna(value) else round(100 * float(value), 4)


def attack_results(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Every attack cell of a run: its error over seeds (mean, sd, 95% interval, %), seeds and examples."""
    out = []
    for keys, cell in rows.groupby(_CELL, sort=True):
        n = float(cell["n"].mean())
        out.append(
            dict(zip(_CELL, (keys[0], float(keys[1]), bool(keys[2]), keys[3]), strict=True))
            | {f"error_{k}": v for k, v in _rate(cell["error"], n).items()}
            | {"n_seeds": int(cell["seed"].nunique()), "n_examples": int(n)}
        )
    return out


def _accuracy(cell: dict[str, Any], key: str) -> float | None:
    """Accuracy (%) from an error cell's ``error_<key>``: the mean and the interval's ends swap sides."""
    flip = {"mean": "mean", "std": "std", "ci95_low": "ci95_high", "ci95_high": "ci95_low"}[key]
    value = cell[f"error_{flip}"]
    return value if value is None or key == "std" else round(100 - value, 4)


def headline(results: list[dict[str, Any]], eps: float) -> dict[str, Any]:
    """The record's clean and robust accuracy: clean from the eps-0 cell, robust the weakest of the
    attacks at ``eps``, clipped where a clipped cell ran (valid images), else unclipped."""
    at = [r for r in results if math.isclose(r["eps"], eps) and eps > 0]
    clean = [r for r in results if r["eps"] == 0 and r["attack"] == "fgsm"]
    clipped = any(r["clipped"] for r in at)
    cells = [r for r in at if r["clipped"] == clipped]
    worst = max(cells, key=lambda r: r["error_mean"], default=None)
    out: dict[str, Any] = {"eps": eps, "clipped": clipped if cells else None}
    for name, cell in (("clean_acc", clean[0] if clean else None), ("robust_acc", worst)):
        out[name] = None if cell is None else _accuracy(cell, "mean")
        out[f"{name}_std"] = None if cell is None else _accuracy(cell, "std")
    out["robust_ci95"] = (
        None if worst is None else [_accuracy(worst, "ci95_low"), _accuracy(worst, "ci95_high")]
    )
    out["robust_attack"] = None if worst is None else worst["attack"]
    return out


def training(curves: pd.DataFrame) -> dict[str, Any]:
    """Epochs, seconds and the selected epoch's validation error (%) per seed, averaged."""
    if curves.empty:
        return {}
    per_seed = curves.groupby("seed")
    best = curves[curves["is_best"] & (curves["stage"] == 1)].groupby("seed").tail(1)
    return {
        "epochs": float(per_seed.size().mean()),
        "seconds": round(float(per_seed["seconds"].sum().mean()), 1),
        "selected_epoch": float(best["epoch"].mean()) if len(best) else None,
        "val_error": _pct(best["val_error"].mean()) if len(best) else None,
    }


def model_record(
    run: str, entry: dict[str, Any], attack: pd.DataFrame, curves: pd.DataFrame, provenance: dict
) -> dict[str, Any]:
    """The record of one trained run: ``entry`` holds its model and regime specs and its headline eps,
    ``attack`` and ``curves`` its rows of every seed, ``provenance`` the metadata of its results files."""
    spec = model_spec_from_dict(entry["model"])
    results = attack_results(attack)
    return {
        "record_version": RECORD_VERSION,
        "name": run,
        "dataset": spec.dataset,
        "threat_model": THREAT_MODEL,
        "architecture": architecture(spec),
        "parameters": n_parameters(spec),
        "regime": entry["regime"],
        "model": entry["model"],
        "additional_data": False,
        "number_forward_passes": 1,
        "seeds": sorted(int(s) for s in attack["seed"].unique()),
        **headline(results, entry["eps"]),
        "results": results,
        "training": training(curves),
        "provenance": provenance,
    }


def model_card(record: dict[str, Any]) -> str:
    """A Hugging Face model card: ``model-index`` metadata (clean accuracy and every attack at the
    record's eps) above a Markdown summary of the record."""
    meta = yaml.safe_dump(_card_metadata(record), sort_keys=False)
    return "---\n" + meta + "---\n\n" + "\n".join(_card_body(record))


def _card_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """The card's ``model-index``: clean accuracy and each attack's at the record's eps and clipping."""
    cells = [
        r
        for r in record["results"]
        if math.isclose(r["eps"], record["eps"]) and r["clipped"] == record["clipped"]
    ]
    metrics = [{"type": "accuracy", "value": record["clean_acc"], "name": "Clean accuracy"}] + [
        {
            "type": "accuracy",
            "value": _accuracy(r, "mean"),
            "name": f"{r['attack']} accuracy (Linf eps {r['eps']:g}, {_clipping(r['clipped'])})",
        }
        for r in cells
    ]
    result = {
        "task": {"type": "image-classification", "name": "Image Classification"},
        "dataset": {"type": record["dataset"], "name": record["dataset"].upper(), "split": "test"},
        "metrics": metrics,
        "source": {"name": "advbench"},
    }
    return {
        "library_name": "pytorch",
        "tags": ["adversarial-robustness", "advbench", record["threat_model"]],
        "datasets": [record["dataset"]],
        "model-index": [{"name": f"advbench-{record['dataset']}-{record['name']}", "results": [result]}],
    }


def _card_body(record: dict[str, Any]) -> list[str]:
    """The card's Markdown lines: the model, its accuracies, every attack cell, and what made them."""
    rows = [
        f"| {r['attack']} | {r['eps']:g} | {'yes' if r['clipped'] else 'no'} | {_cell(r)} | {r['n_seeds']} |"
        for r in record["results"]
    ]
    return [
        f"# {record['name']} ({record['dataset']})",
        "",
        f"{record['architecture']}, {record['parameters']} parameters, regime `{record['regime']['name']}` "
        f"({record['regime']['kind']}), seeds {record['seeds']}.",
        "",
        f"Clean accuracy {_fmt(record['clean_acc'])}%; robust accuracy {_fmt(record['robust_acc'])}% "
        f"({record['robust_attack']}, L-inf eps {record['eps']:g}), the weakest of its attacks.",
        "",
        "| attack | eps | clipped | error (%) mean ± sd [95% interval] | seeds |",
        "|---|---|---|---|---|",
        *rows,
        "",
        _made_by(record["provenance"].get("attack", {})),
        "",
    ]


def _made_by(meta: dict[str, Any]) -> str:
    """The commit, config and machines of the attack results a card reports."""
    commit, config = meta.get("git_commit", "unknown"), meta.get("config_hash", "unknown")
    machines = meta.get("machines")
    on = f", computed on {'; '.join(machines)}" if machines else ""
    return f"Results of commit `{commit}`, config `{config}`{on}."


def _clipping(clipped: bool) -> str:
    return "clipped" if clipped else "unclipped"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _cell(r: dict[str, Any]) -> str:
    sd = "" if r["error_std"] is None else f" ± {r['error_std']:.2f}"
    ci = "" if r["error_ci95_low"] is None else f" [{r['error_ci95_low']:.2f}, {r['error_ci95_high']:.2f}]"
    return f"{_fmt(r['error_mean'])}{sd}{ci}"


def write_records(
    job: dict[str, Any], attack: Sequence[Path], curves: Sequence[Path], out_dir: Path
) -> list[Path]:
    """``<dataset>/<run>.json`` and ``.md`` (its card) under ``out_dir`` for every run with rows in the
    ``attack`` files; ``job`` holds each run's specs (``runs``) and each dataset's headline eps (``eps``)."""
    trained = {_run_of(rows): rows for rows in _frames(curves, "curves")}
    written = []
    for path, rows in zip(attack, _frames(attack, "attack"), strict=True):
        if rows.empty:
            continue
        dataset, run = _run_of(rows)
        entry = job["runs"][run] | {"eps": job["eps"][dataset]}
        curves_rows = trained.get((dataset, run), pd.DataFrame())
        record = model_record(run, entry, rows, curves_rows, {"attack": read_meta(path)})
        stem = out_dir / dataset / run
        for suffix, text in ((".json", json.dumps(record, indent=2) + "\n"), (".md", model_card(record))):
            with atomic_path(stem.with_suffix(suffix)) as tmp:
                tmp.write_text(text)
            written.append(stem.with_suffix(suffix))
    return written


def _frames(paths: Sequence[Path], kind: str) -> list[pd.DataFrame]:
    return [read_table(Path(p), kind).to_pandas() for p in paths]


def _run_of(rows: pd.DataFrame) -> tuple[str, str]:
    """(dataset, run id) of the rows of one run's results file."""
    if rows.empty:
        return ("", "")
    first = rows.iloc[0]
    return str(first["dataset"]), f"{first['model']}-{first['regime']}"


def read_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The records in ``paths`` (JSON files, or folders searched for ``*.json``), checked."""
    files = [f for p in map(Path, paths) for f in (sorted(p.rglob("*.json")) if p.is_dir() else [p])]
    out = []
    for file in files:
        try:
            record = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise RecordError(f"{file}: not a readable JSON record ({err})") from None
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise RecordError(f"{file}: fields {missing} missing; is it an advbench model record?")
        if record["record_version"] != RECORD_VERSION:
            raise RecordError(
                f"{file}: record_version {record['record_version']!r}, expected {RECORD_VERSION}"
            )
        out.append(record)
    return out


def leaderboard(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per record, ranked within its dataset by robust accuracy (then clean accuracy), in %."""
    rows = [
        {
            "dataset": r["dataset"], "name": r["name"], "architecture": r["architecture"],
            "parameters": r.get("parameters"), "eps": r["eps"], "clipped": r.get("clipped"),
            "clean_acc_mean": r["clean_acc"], "clean_acc_std": r.get("clean_acc_std"),
            "robust_acc_mean": r["robust_acc"], "robust_acc_std": r.get("robust_acc_std"),
            "robust_ci95_low": (r.get("robust_ci95") or [None, None])[0],
            "robust_ci95_high": (r.get("robust_ci95") or [None, None])[1],
            "robust_attack": r.get("robust_attack"), "n_seeds": len(r.get("seeds", [])),
        }
        for r in records
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=[c for c in LEADERBOARD_COLUMNS if c != "rank"])
    numeric = [c for c in table.columns if c.endswith(("_mean", "_std", "_low", "_high"))]
    table[numeric] = table[numeric].astype(float)
    table = table.sort_values(
        ["dataset", "robust_acc_mean", "clean_acc_mean"], ascending=[True, False, False], na_position="last"
    )
    table.insert(1, "rank", table.groupby("dataset").cumcount() + 1)
    return table.reset_index(drop=True)[LEADERBOARD_COLUMNS]
