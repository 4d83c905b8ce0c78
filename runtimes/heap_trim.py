"""Keep the C heap compact: large blocks in mappings of their own, free pages given back.

The embedded pipeline frees megabytes every few seconds: the correction history's columns when
it is cut at a window close, the encoded checkpoint once written. glibc keeps freed memory in its
heap for reuse, and returns it only from the heap's top, so after the history's first cuts the
process's RSS stood about 20 MiB above what it held, for good (docs/benchmarks.md, issue 18).
``malloc_trim(0)`` releases every free page in every arena; it took 2-3 ms at about 230 MiB of
RSS, once a checkpoint (every 5 s by default).

With a trim each checkpoint, 31-36 MiB still stood free in the heap at the end of a soak, in
holes between live blocks that no trim can return. glibc gives a block of at least its "mmap
threshold" (128 KiB at first) a mapping of its own, returned whole when freed; but each time such
a block is freed it raises the threshold to that block's size (up to 32 MiB), so once the first
encoded checkpoint (about 6 MB) was freed, every later one and the history's grown columns came
from the heap, and small objects settled between them. :func:`map_large_blocks` fixes the
threshold at 128 KiB, which also stops its moving: the free heap at the end of a 10-minute soak
was 3.7 MiB instead of 43.7, and 21-25 MiB after 30 minutes instead of 31, in holes between
small blocks (docs/benchmarks.md). A mapping costs a system call and its page faults, a few per
second here.

Only where the C library is glibc: elsewhere (musl, macOS, Windows) both functions do nothing
and never fail, since the memory is then only less compact, not wrong.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

__all__ = ["LARGE_BLOCK", "map_large_blocks", "trim"]

LARGE_BLOCK = 128 * 1024
"""Bytes from which a block gets a mapping of its own: glibc's initial threshold, kept fixed."""
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim``, or ``None`` where there is none (not glibc)."""
    try:
        # The symbols the process already has: no search for the library (which runs a program).
        function = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    """The C library's ``mallopt``, or ``None`` where there is none (not glibc)."""
    try:
        function = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def map_large_blocks() -> bool:
    """Give every later block of :data:`LARGE_BLOCK` bytes or more a mapping of its own, for good.

    Returns whether the threshold was set (False without glibc).
    """
    function = _mallopt()
    return function is not None and bool(function(_M_MMAP_THRESHOLD, LARGE_BLOCK))


def trim() -> bool:
    """Return the free pages of the C heap to the system; whether any were returned (False without glibc)."""
    function = _malloc_trim()
    return function is not None and bool(function(0))
