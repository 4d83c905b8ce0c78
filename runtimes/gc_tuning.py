"""A larger young-generation threshold for CPython's cyclic garbage collector, while a run lasts.

Replay and the embedded runtime allocate millions of short-lived tuples, readings and points and
create almost no reference cycles, while the engine keeps a large long-lived state (open windows,
held readings, the correction history). With CPython's default threshold (700) the collector
runs so often that its passes over that state took a fifth of a replay and, in the embedded
pipeline at 20 000 readings/s, most of a second at a time (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GC_THRESHOLD", "fewer_collections"]

GC_THRESHOLD = 25_000
"""Allocations (minus deallocations) between two young-generation collections."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the body with a young-generation threshold of at least :data:`GC_THRESHOLD`; restore it after."""
    saved = gc.get_threshold()
    gc.set_threshold(max(saved[0], GC_THRESHOLD), *saved[1:])
    try:
        yield
    finally:
        gc.set_threshold(*saved)
