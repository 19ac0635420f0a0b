"""Handing freed heap memory back to the system (the camera agent's resident memory).

glibc's malloc keeps memory a program has freed inside its heaps for reuse, and gives
the pages back only from a heap's top. Loading the ONNX model frees tens of MiB of
parsing and graph-optimisation buffers in the middle of the heap; until
``malloc_trim`` they stay resident for the agent's whole life (measured: about 19 MiB
after loading the shipped SSD, docs/PERFORMANCE.md "Resident memory").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():  # -> the C function, or None where the C library has none (musl, macOS)
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim") if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc ``malloc_trim(0)``: all arenas,
    not only the top). Costs about a millisecond on the agent's heap; call it after
    large, one-off allocations are freed (a model loaded), not per frame. False where
    the C library cannot do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
