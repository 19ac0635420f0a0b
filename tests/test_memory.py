"""edge.memory: freed heap pages really go back to the system (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest

from edge.memory import release_freed_memory


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="malloc_trim is glibc's; the agent's devices run glibc (Raspberry Pi OS)")
def test_release_returns_freed_pages_from_the_middle_of_the_heap() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    block = 64 * 1024  # below glibc's mmap threshold: these come from the heap itself
    ptrs = [libc.malloc(block) for _ in range(800)]  # 50 MiB
    for p in ptrs:
        ctypes.memset(p, 1, block)  # touch: resident
    keep = ptrs[-1]  # the heap's top stays in use, so free() alone cannot shrink it
    for p in ptrs[:-1]:
        libc.free(p)
    before = _rss_kib()
    assert release_freed_memory() is True
    after = _rss_kib()
    libc.free(keep)
    assert before - after > 25 * 1024, f"RSS {before} -> {after} KiB: freed heap pages stayed resident"
