"""Checkpoints: safetensors round trip; pickles and foreign architectures are refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from advbench.config.specs import model_spec
from advbench.models.architectures import build
from advbench.results.checkpoints import CheckpointError, load_into, save


def _maxout(units: int = 8):
    return build(model_spec("maxout", {"arch": "maxout", "units": units, "pieces": 2}))


def test_round_trip(tmp_path):
    model = _maxout()
    save(model.state_dict(), tmp_path / "m.safetensors", {"seed": "0"})
    other = load_into(_maxout(), tmp_path / "m.safetensors")
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    )


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"net.1.linear.weight": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="evil.safetensors: not a readable safetensors checkpoint"):
        load_into(_maxout(), evil)
    assert not marker.exists()


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    save(_maxout(units=8).state_dict(), tmp_path / "small.safetensors", {})
    with pytest.raises(CheckpointError, match="small.safetensors: does not fit model MaxoutMLP"):
        load_into(_maxout(units=16), tmp_path / "small.safetensors")
    softmax = build(model_spec("softmax", {"arch": "softmax"}))
    with pytest.raises(CheckpointError, match="does not fit model SoftmaxRegression"):
        load_into(softmax, tmp_path / "small.safetensors")


SAVE_IN_A_FRESH_PROCESS = """
import sys, torch
from pathlib import Path
from advbench.results.checkpoints import save
meta = {"model": "maxout", "regime": "clean", "seed": "0", "member": "None", "spec": "{}"}
save({"w": torch.arange(6.0).reshape(2, 3)}, Path(sys.argv[1]), meta)
"""


def test_a_checkpoint_has_the_same_bytes_from_process_to_process(tmp_path):
    """safetensors orders a header's metadata keys differently in every process; one key does not move."""
    import subprocess
    import sys

    paths = [tmp_path / f"{i}.safetensors" for i in range(4)]
    for path in paths:
        subprocess.run([sys.executable, "-c", SAVE_IN_A_FRESH_PROCESS, str(path)], check=True)
    assert len({p.read_bytes() for p in paths}) == 1
