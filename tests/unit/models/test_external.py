"""A model of one's own (arch external): built from a factory and a safetensors file or from TorchScript,
checked against advbench's inputs, taken as given by regime kind none, and refused with the key to fix."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import REPO
from safetensors.torch import save_file

from advbench.config.loading import load_config
from advbench.config.specs import ConfigError, model_spec, regime_spec
from advbench.config.validation import validate_config
from advbench.models.architectures import build
from advbench.models.external import ExternalModelError, check_outputs
from advbench.training.loop import Tensors, train_model

FACTORY = '''
import torch
from torch import nn


class Net(nn.Module):
    """Takes images (N, 1, 28, 28)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 28 * 28, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def make():
    return Net()


def linear():
    return nn.Linear(784, 10)


def probabilities():
    return nn.Sequential(nn.Linear(784, 10), nn.Softmax(dim=1))


def not_a_module():
    return 3
'''


@pytest.fixture()
def factory(tmp_path):
    path = tmp_path / "mynets.py"
    path.write_text(FACTORY)
    return path


def _trained_net(factory, tmp_path):
    """The factory's Net with weights of its own, saved as safetensors (as a user's training would)."""
    spec = model_spec("mine", {"arch": "external", "factory": f"{factory}:make"})
    net = build(spec).net
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(generator=generator)
    weights = tmp_path / "net.safetensors"
    save_file(net.state_dict(), str(weights))
    return net, weights


def test_a_factory_with_weights_is_the_users_module_fed_reshaped_inputs(factory, tmp_path):
    net, weights = _trained_net(factory, tmp_path)
    entry = {
        "arch": "external",
        "factory": f"{factory}:make",
        "weights": str(weights),
        "input_shape": [1, 28, 28],
    }
    model = build(model_spec("mine", entry)).eval()
    x = torch.rand(5, 784)
    torch.testing.assert_close(model(x), net.eval()(x.reshape(5, 1, 28, 28)), rtol=0, atol=0)
    reloaded = build(model_spec("mine", entry))
    reloaded.load_state_dict(model.state_dict())  # advbench's own checkpoints hold the wrapper's keys
    torch.testing.assert_close(reloaded.eval()(x), model(x), rtol=0, atol=0)


def test_a_torchscript_file_is_loaded_with_its_own_weights(factory, tmp_path):
    net, _ = _trained_net(factory, tmp_path)
    path = tmp_path / "net.pt"
    torch.jit.script(net.eval()).save(str(path))
    model = build(
        model_spec("mine", {"arch": "external", "torchscript": str(path), "input_shape": [1, 28, 28]})
    )
    x = torch.rand(4, 784)
    torch.testing.assert_close(model.eval()(x), net(x.reshape(4, 1, 28, 28)))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"factory": "{f}:not_a_module"}, r"models\.mine\.factory: .*returned int, not a Module"),
        ({"factory": "{f}:missing"}, r"models\.mine\.factory: .* has no function 'missing'"),
        ({"factory": "{f}:linear", "weights": "{w}"}, r"models\.mine\.weights: .* does not fit"),
        ({"torchscript": "{w}"}, r"models\.mine\.torchscript: .*not loadable"),
    ],
)
def test_a_module_that_cannot_be_built_names_its_key(factory, tmp_path, entry, message):
    _, weights = _trained_net(factory, tmp_path)
    entry = {k: v.format(f=factory, w=weights) for k, v in entry.items()}
    with pytest.raises(ExternalModelError, match=message):
        build(model_spec("mine", {"arch": "external", **entry}))


def test_outputs_that_do_not_fit_advbench_are_refused_with_what_they_are(factory):
    flat = build(model_spec("mine", {"arch": "external", "factory": f"{factory}:make"})).eval()
    with pytest.raises(ExternalModelError, match=r"batch of shape \(3, 784\).*set input_shape"):
        check_outputs(flat, torch.rand(3, 784), 10, "mine")  # Net wants images
    with pytest.raises(
        ExternalModelError, match=r"output of shape \(3, 10\) for 3 inputs; expected \(3, 2\)"
    ):
        check_outputs(torch.nn.Linear(784, 10), torch.rand(3, 784), 2, "mine")
    probs = build(model_spec("mine", {"arch": "external", "factory": f"{factory}:probabilities"}))
    with pytest.raises(ExternalModelError, match="probabilities .* advbench needs logits"):
        check_outputs(probs.eval(), torch.rand(3, 784), 10, "mine")


def _digits(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs whose class is the one lit pixel (of the first ten): a linear model can know them all."""
    y = torch.arange(n) % 10
    x = torch.zeros(n, 784)
    x[torch.arange(n), y] = 1.0
    return x, y


def test_regime_none_takes_the_model_as_given_and_refuses_one_at_chance(factory, tmp_path):
    lin = torch.nn.Linear(784, 10)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[:, :10] = 10 * torch.eye(10)
        lin.bias.zero_()
    weights = tmp_path / "lin.safetensors"
    save_file(lin.state_dict(), str(weights))
    entry = {"arch": "external", "factory": f"{factory}:linear", "weights": str(weights)}
    spec, none = model_spec("mine", entry), regime_spec("pretrained", {"kind": "none"})
    (xt, yt), (xv, yv) = _digits(200), _digits(100)
    state, curves = train_model(spec, none, Tensors(xt, yt, xv, yv), seed=0)
    assert torch.equal(state["net.weight"], lin.weight) and torch.equal(state["net.bias"], lin.bias)
    (row,) = curves
    assert row["epoch"] == 0 and row["stage"] == 1 and row["is_best"]
    assert row["val_error"] == 0.0 and row["train_error"] == 0.0 and row["train_loss"] < 1e-3
    shuffled = Tensors(xt, yt, xv, (yv + 1) % 10)  # every label wrong: the model cannot be fed this data
    with pytest.raises(ExternalModelError, match=r"validation error 100\.0%, chance's is 90%.*784 values"):
        train_model(spec, none, shuffled, seed=0)


def _config(models: dict, runs: list) -> dict:
    config = load_config(REPO / "config.yaml")
    config["models"] |= models
    config["runs"], config["transfer"]["pairs"] = runs, []
    for key in ("agreement", "sweep", "ensemble", "rubbish", "rotation", "saliency"):
        config[key] = None
    config["report"] = {"examples": [], "weights": []}
    return config


def test_the_config_makes_an_external_models_files_absolute(factory, tmp_path, monkeypatch):
    _, weights = _trained_net(factory, tmp_path)
    monkeypatch.chdir(tmp_path)
    entry = {"arch": "external", "factory": "mynets.py:make", "weights": "net.safetensors"}
    config = validate_config(_config({"mine": entry}, [{"model": "mine", "regime": "pretrained"}]))
    assert config["models"]["mine"]["factory"] == f"{factory}:make"
    assert config["models"]["mine"]["weights"] == str(weights)


EXT, F, W = {"arch": "external"}, "mynets.py:make", "net.safetensors"
WRONG = [
    (EXT, "pretrained", r"models\.mine: .*needs one of factory or torchscript, not neither"),
    (EXT | {"factory": F, "torchscript": W}, "pretrained", "not both"),
    (EXT | {"torchscript": W, "weights": W}, "pretrained", r"models\.mine\.weights: goes with factory"),
    (EXT | {"factory": "absent.py:make"}, "pretrained", r"models\.mine\.factory: no file 'absent\.py'"),
    (EXT | {"factory": "no_such_module_here:make"}, "pretrained", "no module 'no_such_module_here'"),
    (EXT | {"factory": F}, "clean", r"runs\[0\]: mine-clean needs a regime of kind 'none'"),
    ({"arch": "maxout"}, "pretrained", r"runs\[0\]: mine-pretrained needs an arch 'external' model"),
    ({"arch": "maxout", "weights": W}, "clean", r"models\.mine\.weights: only for arch 'external'"),
]


@pytest.mark.parametrize(("entry", "regime", "message"), WRONG)
def test_a_wrong_external_model_entry_names_its_key(factory, tmp_path, monkeypatch, entry, regime, message):
    _trained_net(factory, tmp_path)
    monkeypatch.chdir(tmp_path)
    config = _config({"mine": copy.deepcopy(entry)}, [{"model": "mine", "regime": regime}])
    with pytest.raises(ConfigError, match=message):
        validate_config(config)
