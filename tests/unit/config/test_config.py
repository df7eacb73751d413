"""Config validation: the schema fills defaults and rejects bad values naming the key."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from conftest import REPO

from advbench.config.loading import load_config
from advbench.config.runs import EXPERIMENTS, budget_notes, run_model_spec, runs_alone
from advbench.config.specs import (
    ConfigError,
    ModelSpec,
    RegimeSpec,
    TrainSpec,
    model_spec,
    model_spec_from_json,
    regime_spec,
    spec_to_json,
)
from advbench.config.validation import validate_config
from advbench.plan.workflow import Plan


@pytest.fixture()
def config() -> dict:
    return load_config(REPO / "config.yaml")


@pytest.mark.parametrize("preset", ["smoke", "paper", "gpu", "headline", "chaos", "paper240", "paper1600"])
def test_default_and_presets_validate(config, preset):
    merged = load_config(REPO / "config.yaml", REPO / "presets" / f"{preset}.yaml")
    validate_config(merged)
    assert merged["models"]["maxout"]["train"]["momentum_saturate_epoch"] == 250  # kept from the default


def test_defaults_are_filled(config):
    validate_config(config)
    assert config["models"]["maxout"]["max_col_norm"] == 1.9365
    assert config["regimes"]["adversarial"]["alpha"] == 0.5
    assert 0.0 in config["attack"]["eps"] and 0.25 in config["attack"]["eps"]


@pytest.mark.parametrize(
    ("mutate", "names"),
    [
        (lambda c: c["regimes"]["adversarial"].update(alpha=1.5), "alpha"),
        (lambda c: c["attack"].update(eps=[0.1, -0.2]), "eps"),
        (lambda c: c["attack"].update(eps=["big"]), "eps"),
        (lambda c: c.update(seeds=[]), "seeds"),
        (lambda c: c.update(seeds=[1, 1]), "seeds"),
        (lambda c: c.update(seeds=[0, 2**63]), "9223372036854775808 is greater than the maximum of 922337"),
        (lambda c: c.update(epochs=3), "epochs"),
        (lambda c: c["models"]["maxout"].update(arch="resnet"), "arch"),
        (lambda c: c["models"]["maxout"]["train"].update(lr=0), "lr"),
        (lambda c: c["models"].update({"../evil": {"arch": "softmax"}}), "../evil"),
        (lambda c: c["models"]["logistic37"].update(classes=[3, 7, 9]), "models.logistic37.classes: arch"),
        (
            lambda c: c["models"]["maxout"]["train"].update(n_train=60_000),
            "models.maxout.train.n_train: 60000 is more than the 50000 training examples of mnist",
        ),
        (
            lambda c: c["runs"][0].update(train={"n_train": 10**9}),
            "runs[0].train.n_train: 1000000000 is more than the 50000",
        ),
        (lambda c: c["models"]["maxout"]["train"].update(lr=float("nan")), "lr"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(config, mutate, names):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError, match=re.escape(names)):
        validate_config(bad)


def test_unknown_references_are_rejected(config):
    bad = copy.deepcopy(config)
    bad["runs"].append({"model": "maxout", "regime": "noise"})
    index = len(bad["runs"]) - 1
    with pytest.raises(ConfigError, match=rf"runs\[{index}\]\.regime: unknown regime 'noise'"):
        validate_config(bad)
    bad = copy.deepcopy(config)
    bad["transfer"]["pairs"] = [{"source": "maxout-clean", "target": "rbf-adversarial"}]
    with pytest.raises(ConfigError, match=r"transfer\.pairs\[0\]\.target"):
        validate_config(bad)
    bad = copy.deepcopy(config)
    bad["ray"] = {"num_gpus_per_task": 0.25, "cpu_models": ["softmax", "svm"]}
    with pytest.raises(ConfigError, match=r"ray\.cpu_models: 'svm' is not a model; expected one of \["):
        validate_config(bad)


def test_spec_json_round_trip(config):
    validate_config(config)
    spec = model_spec("maxout", config["models"]["maxout"])
    assert model_spec_from_json(spec_to_json(spec)) == spec


def test_noise_and_l1_regimes_are_config_entries(config):
    cfg = copy.deepcopy(config)
    cfg["regimes"]["noise"] = {"kind": "noise_uniform", "eps": 0.25}
    cfg["regimes"]["l1"] = {"kind": "clean", "l1_first_layer": 0.0025}
    cfg["runs"] += [{"model": "maxout", "regime": "noise"}, {"model": "maxout", "regime": "l1"}]
    validate_config(cfg)
    assert regime_spec("l1", cfg["regimes"]["l1"]).l1_first_layer == 0.0025
    assert regime_spec("noise", cfg["regimes"]["noise"]).alpha == 0.5  # the adversarial-training mixture
    cfg["regimes"]["l1"]["l1_first_layer"] = -1
    with pytest.raises(ConfigError, match="l1_first_layer"):
        validate_config(cfg)


def test_paper_preset_restores_the_full_schedule_for_every_run():
    from advbench.config.runs import run_entries, run_model_spec

    config = validate_config(load_config(REPO / "config.yaml", REPO / "presets/paper.yaml"))
    for run, entry in run_entries(config).items():
        train, arch = run_model_spec(config, run).train, config["models"][entry["model"]]["arch"]
        assert train.n_train is None, run
        if arch == "mp_dbm":  # pylearn2 mpdbm.yaml at its size, then galatea's stage 2 on 60k
            spec = run_model_spec(config, run)
            assert spec.dbm_units == (2087, 3200) and spec.dbm_iterations == 14, run
            assert train.max_epochs == 1000 and train.patience == 100 and train.retrain, run
        if arch == "conv_maxout":  # pylearn2 cifar10_no_aug.yaml: a fixed 785 epochs
            assert train.max_epochs == 785, run
        elif arch in {"softmax", "logistic", "rbf", "maxout"}:  # the paper's MNIST models (not the demo)
            assert train.max_epochs == 1000 and train.patience == 100, run
            assert train.retrain == (arch == "maxout"), run
        if arch == "maxout":  # pylearn2 mnist_pi.yaml: U(-.005, .005), early stopping on all 10k
            assert run_model_spec(config, run).init_range == 0.005 and train.monitor_val is None, run
    assert run_entries(config)["maxout_member-clean"]["members"] == 12
    assert run_model_spec(config, "maxout1600-adversarial").train.select_on == "adversarial"
    assert "attack" not in run_entries(config)["maxout1600-clean"]  # the full eps grid


DEFAULTS = {
    "agreement": {"eps"},
    "sweep": {"label", "eps_max", "steps"},
    "ensemble": {"eps"},
    "rubbish": {"n", "threshold"},
    "rotation": {"angles"},
    "saliency": {"n", "samples", "noise", "maps"},
}


@pytest.mark.parametrize("section", sorted(DEFAULTS))
def test_optional_experiments_switch_off_with_null(section):
    config = load_config(REPO / "config.yaml", REPO / "presets/paper.yaml")  # every section on
    off = copy.deepcopy(config)
    off[section] = None
    assert validate_config(off)[section] is None
    on = copy.deepcopy(config)
    on[section] = {k: v for k, v in on[section].items() if k in {"source", "observers", "run", "runs"}}
    assert DEFAULTS[section] <= validate_config(on)[section].keys()  # defaults filled when switched on
    bad = copy.deepcopy(config)
    bad[section]["unknown_key"] = 1
    with pytest.raises(ConfigError, match=section):
        validate_config(bad)


def test_rotation_takes_trained_runs_of_one_pixel_space_dataset(config):
    cifar = copy.deepcopy(config)
    cifar["runs"].append({"model": "conv_maxout", "regime": "clean", "attack": {"clip": [False]}})
    for runs, message in [
        (["maxout-l1_tiny"], r"rotation\.runs\[0\]: 'maxout-l1_tiny' is not a"),
        (["conv_maxout-clean"], r"rotation\.runs\[0\]: 'conv_maxout-clean' sees cifar10 in a whitened space"),
    ]:
        bad = copy.deepcopy(cifar)
        bad["rotation"] = {"runs": runs}
        with pytest.raises(ConfigError, match=message):
            validate_config(bad)
    bad = copy.deepcopy(config)
    bad["rotation"] = {"runs": ["maxout-clean"], "angles": [-5]}
    with pytest.raises(ConfigError, match="rotation"):
        validate_config(bad)


def test_report_images_take_runs_of_any_dataset(config):
    cifar = copy.deepcopy(config)
    cifar["runs"].append({"model": "conv_maxout", "regime": "clean", "attack": {"clip": [False]}})
    cifar["report"] = {"examples": ["maxout-clean", "conv_maxout-clean"], "weights": ["conv_maxout-clean"]}
    validate_config(cifar)
    assert cifar["report"]["example_eps_by_dataset"] == {"cifar10": 0.1}  # F3's eps, a schema default
    for key, run, message in [
        ("examples", "conv_maxout-adversarial", r"report\.examples\[0\]: 'conv_maxout-adversarial' is not a"),
        (
            "weights",
            "rbf-clean",
            r"report\.weights\[0\]: 'rbf-clean' \(arch rbf\) has no first layer",
        ),
    ]:
        bad = copy.deepcopy(config)
        bad["report"] = {key: [run]}
        with pytest.raises(ConfigError, match=message):
            validate_config(bad)
    bad = copy.deepcopy(config)
    bad["report"] = {"example_eps_by_dataset": {"svhn": 0.1}}
    with pytest.raises(ConfigError, match=r"report\.example_eps_by_dataset: unknown dataset 'svhn'"):
        validate_config(bad)


def _notes(*presets: str) -> dict[str, str]:
    paths = [REPO / "config.yaml", *(REPO / "presets" / f"{p}.yaml" for p in presets)]
    return budget_notes(validate_config(load_config(*paths)))


def test_budget_notes_say_how_each_maxout_run_differs_from_the_papers_schedule():
    default = _notes()
    assert (
        "at most 5 epochs" in default["maxout-adversarial"] and "no stage 2" in default["maxout-adversarial"]
    )
    assert "maxout1600-adversarial" not in default  # the default does not train the 1600-unit maxouts
    smoke = _notes("smoke")
    assert "first 2000 training examples" in smoke["maxout1600-adversarial"]
    assert "init U(+-0.05)" in smoke["maxout1600-adversarial"]
    assert all(note.endswith("needs presets/paper.yaml") for note in default.values())
    assert "softmax-clean" not in default  # the paper gives the regressions no schedule to compare with
    headline = _notes("headline")
    assert "at most 43 epochs" in headline["maxout-clean"] and "stage 2 at most 3" in headline["maxout-clean"]
    assert "init" not in headline["maxout-clean"]  # the headline keeps the paper's init
    paper = _notes("paper")
    assert not any(run.startswith("maxout") for run in paper)  # the paper preset is the paper's schedule
    assert _notes("paper", "paper240") == {}  # the 240-unit pair alone, on the paper's schedule
    assert _notes("paper", "paper1600") == {}  # F7-F11's models alone, on the paper's schedule


def test_the_paper1600_preset_trains_the_models_of_f7_to_f11_as_the_paper_does():
    presets = [REPO / "presets" / f"{name}.yaml" for name in ("paper", "paper1600")]
    merged = validate_config(load_config(REPO / "config.yaml", *presets))
    runs = {f"{r['model']}-{r['regime']}" for r in merged["runs"]}
    assert runs == {"maxout-clean", "maxout1600-clean", "maxout1600-adversarial"}
    f8 = run_model_spec(merged, "maxout1600-adversarial")
    assert f8.units == 1600 and f8.train.select_on == "adversarial" and f8.train.retrain
    pairs = {(p["source"], p["target"]) for p in merged["transfer"]["pairs"]}
    for naive in ("maxout-clean", "maxout1600-clean"):  # F10 read with either naive model
        assert {(naive, "maxout1600-adversarial"), ("maxout1600-adversarial", naive)} <= pairs


def test_a_dataset_outside_the_registry_is_refused_by_key(config):
    bad = copy.deepcopy(config)
    bad["models"]["softmax"]["dataset"] = "svhn"
    with pytest.raises(ConfigError, match=r"models.softmax.dataset: unknown dataset 'svhn'.*'cifar10'"):
        validate_config(bad)
    bad = copy.deepcopy(config)
    bad["dataset"] = "svhn"
    with pytest.raises(ConfigError, match=r"^dataset: unknown dataset 'svhn'"):
        validate_config(bad)


def test_the_config_reference_is_generated_from_the_schema():
    """docs/config.md is the schema's: every key of the default config has a row, and the file is current."""
    from advbench.config.reference import markdown
    from advbench.config.schema import SCHEMA_PATH

    text = markdown(yaml.safe_load(SCHEMA_PATH.read_text()))
    documented = (REPO / "docs/config.md").read_text()
    assert documented == text, "docs/config.md is stale: python -m advbench.config.reference docs/config.md"
    for key in ("models.<name>.train.max_epochs", "attack.eps", "ray.num_cpus_per_task", "data.source"):
        assert f"| `{key}` |" in text, key


def test_spec_defaults_are_the_schemas():
    """A spec built in code equals the one a validated config with the same choices gives."""
    minimal = {
        "models": {"m": {"arch": "maxout"}},
        "regimes": {"r": {"kind": "fgsm"}},
        "runs": [{"model": "m", "regime": "r"}],
        "report": {"examples": ["m-r"], "weights": ["m-r"]},
    }
    config = validate_config(minimal)
    assert model_spec("m", config["models"]["m"]) == ModelSpec(name="m", arch="maxout")
    assert regime_spec("r", config["regimes"]["r"]) == RegimeSpec(name="r", kind="fgsm")
    assert config["models"]["m"]["train"]["lr_decay"] == TrainSpec().lr_decay == 1.000004


def test_the_closed_sets_are_the_schemas_enums():
    from advbench.config.schema import load_schema
    from advbench.config.specs import Arch, Head, Init, LabelSource, Perturb, RegimeKind, SelectOn

    schema = load_schema()
    enums = {
        Arch: schema["definitions"]["model"]["properties"]["arch"],
        Head: schema["definitions"]["model"]["properties"]["output"],
        RegimeKind: schema["definitions"]["regime"]["properties"]["kind"],
        Perturb: schema["definitions"]["regime"]["properties"]["perturb"],
        Init: schema["definitions"]["regime"]["properties"]["init"],
        SelectOn: schema["definitions"]["train"]["properties"]["select_on"],
        LabelSource: schema["properties"]["attack"]["properties"]["label_source"],
    }
    for enum, node in enums.items():
        assert [e.value for e in enum] == node["enum"], enum.__name__
    spec = model_spec("m", {"arch": "maxout", "train": {"select_on": "adversarial"}})
    assert spec.arch is Arch.MAXOUT and spec.train.select_on is SelectOn.ADVERSARIAL
    with pytest.raises(ValueError, match="'resnet' is not a valid Arch"):
        model_spec("m", {"arch": "resnet"})


@pytest.mark.parametrize("preset", ["config.yaml", "presets/headline.yaml"])
def test_runs_alone_trains_those_runs_and_nothing_else(preset, tmp_path):
    """The benchmarks' overlay, merged over the default or the headline preset as Snakemake merges it: only
    its runs and seeds are trained, its training settings merged into the preset's, transfer only between
    its pairs, and no experiment runs."""
    runs = ["maxout-clean", "maxout-adversarial"]
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(runs_alone(runs, (3,), {"max_epochs": 7}, [(runs[0], runs[1])])))
    before = load_config(REPO / "config.yaml", REPO / preset)
    merged = load_config(REPO / "config.yaml", REPO / preset, overlay)
    validate_config(before)
    validate_config(merged)
    plan = Plan(merged)
    assert plan.runs == runs and plan.member_runs == {}
    assert [c.rsplit("/", 1)[1] for c in plan.trained_checkpoints()] == ["seed=3.safetensors"] * 2
    assert merged["models"]["maxout"]["train"] == before["models"]["maxout"]["train"] | {"max_epochs": 7}
    assert plan.experiment_outputs() == [] and len(plan.transfer_outputs()) == 1
    assert all(merged[name] is None for name in EXPERIMENTS)
