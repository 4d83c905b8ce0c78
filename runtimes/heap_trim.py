"""Give the C heap's free pages back to the operating system (glibc's ``malloc_trim``).

The embedded pipeline frees megabytes every few seconds: the correction history's columns when
it is cut at a window close, the encoded checkpoint once written. glibc keeps freed memory in its
heap for reuse, and returns it only from the heap's top, so after the history's first cuts the
process's RSS stood about 20 MiB above what it held, for good (docs/benchmarks.md, issue 18).
``malloc_trim(0)`` releases every free page in every arena; it took 2-3 ms at about 230 MiB of
RSS, once a checkpoint (every 5 s by default).

Only where the C library is glibc: elsewhere (musl, macOS, Windows) :func:`trim` does nothing
and never fails, since the memory is then only less compact, not wrong.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

__all__ = ["trim"]


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


def trim() -> bool:
    """Return the free pages of the C heap to the system; whether any were returned (False without glibc)."""
    function = _malloc_trim()
    return function is not None and bool(function(0))
