"""Process-wide settings for the long-running ``up`` process, applied once it is ready.

Why each one (measured on the chat path, docs/performance.md):

- ``gc.freeze()``: everything built during start-up (modules, compiled rules, amqtt's
  classes) moves to a permanent generation, so full collections stop walking it.
- A larger generation-0 threshold: one read of 256 KiB carries thousands of messages, and
  each allocates a few short-lived containers; with the default (700) the collector ran
  several times per read, each time walking the batch still alive. Objects without cycles
  are freed by reference counting as before; only cyclic garbage waits a little longer.
- glibc's trim threshold: the same batches grow the heap and free it again every loop
  turn; returning the top of the heap to the kernel each time made the next turn pay page
  faults (a fifth of the broker's CPU time went to the kernel). Keeping up to
  ``TRIM_THRESHOLD`` bytes of free heap removes that; RSS after a burst stays that much
  higher at most.

Only the ``up`` command calls ``apply``: tests and embedders keep their interpreter's
defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

log = logging.getLogger(__name__)

GC_GEN0_THRESHOLD = 20_000
TRIM_THRESHOLD = 32 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>


def apply() -> None:
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    if sys.platform.startswith("linux"):
        _keep_free_heap(TRIM_THRESHOLD)


def _keep_free_heap(size: int) -> bool:
    """mallopt(M_TRIM_THRESHOLD, size) when the C library is glibc; True when it took."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    if mallopt(_M_TRIM_THRESHOLD, size) != 1:
        log.debug("mallopt(M_TRIM_THRESHOLD) refused; allocator defaults kept")
        return False
    return True
