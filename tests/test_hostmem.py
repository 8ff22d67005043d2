"""Host memory reuse: after `reuse_host_memory`, a freed big buffer's pages serve the next one of
the same size, instead of the kernel mapping and zeroing fresh pages (page faults) every window."""

from __future__ import annotations

import ctypes
import resource
import sys

import pytest

from vsrup import hostmem

MIB = 1 << 20
pytestmark = pytest.mark.skipif(hostmem._glibc() is None, reason="glibc's malloc only")


def faults_to_fill(nbytes: int) -> int:
    """Minor page faults taken to malloc and write a buffer of `nbytes` (then freed). Straight
    through the C library: numpy would ask for huge pages, which hide the per-page faults."""
    libc = hostmem._glibc()
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = libc.malloc(nbytes)
    ctypes.memset(buffer, 1, nbytes)
    libc.free(buffer)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_freed_window_buffer_is_reused_without_page_faults():
    assert sys.platform.startswith("linux") and hostmem.reuse_host_memory()
    size = 96 * MIB  # above glibc's own dynamic mmap threshold (at most 32 MiB)
    faults_to_fill(size)  # the first time the heap has to grow
    pages = size // 4096
    assert faults_to_fill(size) < pages // 20  # reused: was one fault per page on a fresh mapping
    hostmem.release_host_memory()
    assert faults_to_fill(size) > pages // 2  # trimmed: the pages went back and come again
