"""glibc's malloc told to give large blocks back to the system when they are freed.

Each sign-in hashes a password or PIN with argon2, which takes a block of 19 MiB
(``edge/auth/passwords.py``). glibc serves a block that large with mmap and unmaps it
when it is freed, but then raises its mmap threshold to that size, so the next such
block comes from the heap and stays resident after it is freed: every worker that ever
handled a sign-in kept ~19 MiB it does not use (idle PSS 123.5 MB with four workers
against 98.0 MB with a fixed threshold, measured). A fixed threshold keeps blocks above
128 KiB on mmap; the few that large are argon2's and a burst's big responses.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # <malloc.h>
THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold for this process and the workers it forks; False where it is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked with
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES) == 1
    if not ok:
        log.warning("could not fix the malloc mmap threshold; freed argon2 blocks stay resident")
    return ok
