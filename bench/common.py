"""Helpers every benchmark script shares: revision, profiles, report tail, children that die with it.

The scripts are run as ``.venv/bin/python bench/<name>.py`` and imported by the smoke tests as
``bench.<name>``. Both work because the editable install puts the repository root on
``sys.path`` (the project's root ``.pth``), so ``bench`` is importable as a namespace package from
anywhere; a script imports these helpers as ``from bench.common import ...`` either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import ctypes
import functools
import io
import math
import os
import pstats
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

__all__ = [
    "ROOT",
    "code_revision",
    "count_each_second",
    "dies_with_bench",
    "print_report_tail",
    "profile_text",
    "start_child",
    "stop_on_sigterm",
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


_PR_SET_PDEATHSIG = 1  # prctl's option number, from linux/prctl.h


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """Linux's ``prctl``, or ``None`` elsewhere (the kernel's parent-death signal is Linux's)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Resolved here, in the bench, so that the child between fork and exec only calls it.
        function = ctypes.CDLL(None).prctl
    except (OSError, AttributeError, TypeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    function.restype = ctypes.c_int
    return function


def dies_with_bench() -> dict[str, Any]:
    """``Popen`` keyword arguments that make the child die with the bench, whatever kills the bench.

    On Linux the child asks the kernel, before it runs its program, for SIGKILL when its parent
    dies: a SIGKILL of the bench cannot run any cleanup of its own, and a server left behind holds
    a port, a core and a temporary folder until someone kills it by hand. The kernel sends it when
    the *thread* that forked the child ends, so fork from the main thread (an asyncio subprocess
    of a loop run by ``asyncio.run``) or use :func:`start_child`. Elsewhere: no arguments, and
    the child is stopped only by the bench's own cleanup.
    """
    prctl = _prctl()
    if prctl is None:
        return {}
    bench = os.getpid()

    def ask_for_sigkill_when_the_bench_dies() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != bench:
            # The bench died between the fork and the request: nobody will send the signal.
            os.kill(os.getpid(), signal.SIGKILL)

    return {"preexec_fn": ask_for_sigkill_when_the_bench_dies}


@functools.cache
def _forker() -> ThreadPoolExecutor:
    """The thread that forks :func:`start_child`'s children: it lives until the interpreter exits."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-children")


def start_child(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(args, **kwargs)`` for a child that dies with the bench (:func:`dies_with_bench`).

    Forked from a thread of its own that lives as long as the bench, from whichever thread this is
    called: servers are started in ``asyncio.to_thread`` too, whose worker threads end when their
    loop closes, and the kernel would kill a child forked there with them.
    """
    options = {**kwargs, **dies_with_bench()}

    def fork() -> subprocess.Popen[Any]:
        return subprocess.Popen(args, **options)

    return _forker().submit(fork).result()


def stop_on_sigterm() -> None:
    """Make SIGTERM stop the bench as Ctrl-C does, so its ``finally`` blocks stop its servers.

    Without it a SIGTERM (``kill``, ``pkill``) ends Python at once: no cleanup runs, temporary
    folders stay, and children live on unless :func:`dies_with_bench` was asked. From the main
    thread (where Python handles signals), at the start of a bench's ``main``.
    """
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        # Python's (a KeyboardInterrupt) or asyncio.run's, which cancels the main task so that
        # the coroutines' cleanup runs.
        handler(signal.SIGINT, frame)
    else:
        # SIGINT ignored, as in a script started in the background by a shell (``cmd &``): a
        # KeyboardInterrupt all the same (asyncio.run then cancels its tasks on the way out).
        signal.default_int_handler(signal.SIGINT, frame)
