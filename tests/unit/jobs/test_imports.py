"""A training job's imports stay out of the tooling: no psutil, chaos harness or benchmark."""

from __future__ import annotations

import subprocess
import sys

TOOLING = ("psutil", "advbench.reliability.chaos", "advbench.reliability.badinputs", "advbench.bench")


def test_the_cli_and_a_training_job_import_no_tooling():
    code = (
        "import sys, advbench.cli, advbench.jobs.train, advbench.jobs.attack;"
        f"print(sorted(m for m in sys.modules if m.startswith({TOOLING!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
