"""Helpers every benchmark script shares: the code revision measured, profiles, the report's tail.

The scripts are run as ``.venv/bin/python bench/<name>.py`` and imported by the smoke tests as
``bench.<name>``. Both work because the editable install puts the repository root on
``sys.path`` (the project's root ``.pth``), so ``bench`` is importable as a namespace package from
anywhere; a script imports these helpers as ``from bench.common import ...`` either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import math
import pstats
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TextIO

__all__ = [
    "ROOT",
    "code_revision",
    "count_each_second",
    "print_report_tail",
    "profile_text",
    "stop_task",
    "timed_window",
    "today",
]

ROOT = Path(__file__).resolve().parent.parent
"""The repository the benchmark runs from."""


def code_revision(paths: Sequence[str]) -> str:
    """The git commit measured, with ``+dirty`` when any of ``paths`` (the code measured) has changes.

    ``unknown`` outside a git checkout or without git.
    """
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", *paths],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def profile_text(profiler: cProfile.Profile | Path, top: int) -> str:
    """The ``top`` entries of a finished profile (or a profile file) by own time, as pstats prints them."""
    text = io.StringIO()
    source = str(profiler) if isinstance(profiler, Path) else profiler
    pstats.Stats(source, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def today() -> str:
    """Today's UTC date, ``YYYY-MM-DD``, for a results row."""
    return datetime.now(UTC).date().isoformat()


def print_report_tail(table_header: str, row: str, failures: Sequence[str], out: TextIO) -> None:
    """The end of every report: the Markdown table (header and this run's row), then the verdict.

    ``row`` is the run's row for docs/benchmarks.md; ``failures`` the targets missed (empty: met).
    """
    print(file=out)
    print(table_header, file=out)
    print(row, file=out)
    print(file=out)
    print("targets met" if not failures else "targets missed: " + "; ".join(failures), file=out)


async def count_each_second(seconds: float, count: Callable[[], int]) -> list[int]:
    """Sample ``count()`` at every whole second of a ``seconds``-long window; the increments."""
    loop = asyncio.get_running_loop()
    t0, last, out = loop.time(), count(), []
    for tick in range(1, max(1, math.ceil(seconds)) + 1):
        await asyncio.sleep(max(0.0, t0 + min(tick, seconds) - loop.time()))
        now = count()
        out.append(now - last)
        last = now
    return out


class Timeable(Protocol):
    """What a benchmark counts into: it records latencies only while ``timing`` is set."""

    timing: bool


@dataclass(frozen=True)
class TimedWindow:
    """One timed window: what was counted, over how long, and this process's CPU meanwhile."""

    count: int
    wall_s: float
    cpu_s: float
    per_second: list[int]


async def timed_window(
    seconds: float,
    count: Callable[[], int],
    subject: Timeable,
    profiler: cProfile.Profile | None = None,
) -> TimedWindow:
    """Time ``seconds`` of ``count()``, with ``subject.timing`` set and ``profiler`` on meanwhile."""
    loop = asyncio.get_running_loop()
    c0, cpu0, t0 = count(), time.process_time(), loop.time()
    subject.timing = True
    if profiler is not None:
        profiler.enable()
    try:
        per_second = await count_each_second(seconds, count)
    finally:
        if profiler is not None:
            profiler.disable()
        subject.timing = False
    return TimedWindow(count() - c0, loop.time() - t0, time.process_time() - cpu0, per_second)


async def stop_task(task: asyncio.Task[object], stop: asyncio.Event, timeout_s: float) -> None:
    """Set ``stop`` and give ``task`` ``timeout_s`` to end by itself before cancelling it."""
    stop.set()
    done, _ = await asyncio.wait([task], timeout=timeout_s)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
