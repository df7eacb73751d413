"""glibc malloc settings for the processes that train and attack: freed tensor memory is kept for reuse.

With glibc's defaults a large block (above an adaptive threshold, at most 32 MiB) is mapped from the kernel
when allocated and unmapped when freed. A training step allocates and frees its activations and gradients
(the 1600-unit maxout's second-layer weight gradient alone is 49 MiB), so every step pays page faults for
freshly zeroed pages. Raising the mmap and trim thresholds lets freed blocks be reused instead; the
process's resident size then stays at its peak. ``advbench bench`` times an adversarial training step with
the default and the tuned settings (``step_seconds_adversarial_{default,tuned}_malloc`` rows). Elsewhere
(macOS, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks below 1 GiB come from the heap; up to 1 GiB of free heap is kept

_tuned = False


def _libc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def tune_allocator() -> bool:
    """Set this process's malloc thresholds once; whether they are set (False where glibc is absent)."""
    global _tuned
    if _tuned:
        return True
    libc = _libc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES) == 1 and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) == 1
    if not ok:
        log.warning("glibc refused the malloc thresholds (mallopt); keeping its defaults")
    _tuned = ok
    return ok
