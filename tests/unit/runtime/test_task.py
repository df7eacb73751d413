"""Per-task setup: denormal floats flushed to zero in every thread of a task, or computed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from advbench.runtime.task import logged_call, machine, task_seconds

# In a fresh interpreter (the flag is per thread and outlives the call): denormals made by numpy before
# the task starts (torch would start its threads), then init_task, then a product of them large enough
# for torch to split over the task's threads; count the products that stayed nonzero.
PROBE = """
import json, numpy, torch
from advbench.runtime.task import init_task
denormals = numpy.full(4_000_000, 1e-39, dtype=numpy.float32)
init_task({threads}, flush_denormal={flush})
tiny = torch.from_numpy(denormals)
assert (tiny.view(torch.int32) == 0x000AE398).all()  # the bits of float32 1e-39, a denormal
print(json.dumps({{"threads": torch.get_num_threads(), "nonzero": int((tiny * 0.5 != 0).sum())}}))
"""


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("flush", [True, False])
def test_init_task_flushes_denormals_in_every_thread(threads, flush):
    code = PROBE.format(threads=threads, flush=flush)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout.splitlines()[-1])
    assert probe["threads"] == threads
    assert probe["nonzero"] == (0 if flush else 4_000_000)


# Why init_task sets the flag first: set after torch's worker threads exist, it reaches only the calling
# thread, and the workers' share of a product keeps its denormals.
LATE = """
import json, numpy, torch
denormals = numpy.full(4_000_000, 1e-39, dtype=numpy.float32)
torch.set_num_threads(2)
tiny = torch.from_numpy(denormals)
(tiny * 0.5).sum()  # starts the worker threads
torch.set_flush_denormal(True)
print(json.dumps({"nonzero": int((tiny * 0.5 != 0).sum())}))
"""


def test_the_flag_set_after_the_threads_start_misses_the_worker_threads():
    out = subprocess.run([sys.executable, "-c", LATE], capture_output=True, text=True, check=True)
    nonzero = json.loads(out.stdout.splitlines()[-1])["nonzero"]
    assert 0 < nonzero < 4_000_000


@pytest.mark.parametrize(
    ("flags", "says"), [("fpu sse2 amx_bf16 amx_tile", "with AMX"), ("fpu sse2 avx2", "no AMX")]
)
def test_the_machine_line_says_whether_the_cpu_has_amx(tmp_path, flags, says):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n")
    assert machine(cpuinfo).startswith(f"Some CPU, {says}, ")


def _square(x: int, seed: int) -> int:
    return x * x


def _fail(seed: int) -> None:
    raise RuntimeError("no")


def test_a_task_leaves_its_seconds_in_its_jobs_log_and_a_failed_one_none(tmp_path):
    job_log = tmp_path / "job.log"
    assert logged_call(_square, str(job_log), x=3, seed=7) == 9
    with pytest.raises(RuntimeError):
        logged_call(_fail, str(job_log), seed=8)
    text = job_log.read_text()
    assert "task _square seed 7 ran " in text and "_fail" not in text
    (seconds,) = task_seconds(text)
    assert 0 <= seconds < 60
    # another logger's line of the same words is not a task's
    assert task_seconds(text + "2026-12-07 05:00:00,000 INFO other: task x seed 1 ran 5.00 s\n") == [seconds]
