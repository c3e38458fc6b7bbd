"""Keep freed memory in the process on CPU, so that large tensors do not page-fault again each step.

PyTorch's CPU tensors come from glibc's malloc. By default glibc hands a freed block of a few MB
back to the kernel (mmap'd blocks at once, the top of the heap beyond ``M_TRIM_THRESHOLD``), and the
next tensor of that size then touches fresh pages: one page fault per 4 KB, the kernel zeroing each.
Scoring SmolLM2-135M on 2 cores (24 rows of 256 tokens, batches of 4096 tokens) spent 9-20 s of
system time per call that way, beside 17 s of arithmetic: 11-19 s of wall time against 8.4 s
once freed memory stays in the process (``bench/score.py --profile`` shows the faults).

``retain_freed_memory`` raises glibc's thresholds: blocks up to 32 MiB come from the heap (not
mmap), and the heap keeps up to 1 GiB of free memory at its top instead of returning it. Resident
memory then stays near its peak between calls; the peak itself does not grow. Computation and
results are unchanged. Other allocators (jemalloc, tcmalloc through ``LD_PRELOAD``) and non-glibc
systems are left alone; ``VARREASON_KEEP_MALLOC=1`` leaves glibc's defaults too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks (once per process); True if the settings are in force."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if sys.platform != "linux" or os.environ.get("VARREASON_KEEP_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
