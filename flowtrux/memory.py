"""Large blocks go back to the system when they are freed.

glibc serves a block larger than its mmap threshold with `mmap` and unmaps it on `free`, but each
time it frees such a block it raises the threshold to that block's size (up to 32 MiB). After one
large answer, MB-sized strings (an event, its SSE frame) come from the heap, and the heap keeps
them resident once freed: the process's memory then measures its allocation history rather than
what it holds. Measured with 8 observers that stopped reading a 30 MB execution: RSS grew by
91-263 MiB with glibc's default, 48 MiB with the threshold fixed (tests/e2e/test_process_faults.py).
Fixing the threshold with `mallopt` turns that adjustment off.
"""

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold; False where the C library is not glibc (nothing to do)."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # musl and others: they return large blocks already
        return False
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        logger.warning("could not fix the C library's mmap threshold")
        return False
    return True
