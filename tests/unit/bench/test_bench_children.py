"""A bench's children die with it, whatever kills it (bench/common.py: start_child, dies_with_bench).

Each test runs a small bench: a Python process that starts a long-sleeping child through the
helper and prints the child's process id; the test then signals the bench and waits (a bounded
poll, for the event, not for a time) until the child is gone: no longer in /proc, or a zombie
waiting for init to reap it. The kernel's parent-death signal is Linux's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

_SLEEPER = "import time; time.sleep(600)"

# The child says "alive" on SIGUSR1. The bench starts it from its main thread, or from a worker
# thread (asyncio.to_thread starts the benches' servers so) that has ended, and then asks it: the
# kernel sends the parent-death signal while the forking thread exits, before the thread leaves
# /proc, so a child killed with its thread could no longer answer. The bench prints the child's
# pid and the answer ("gone" if the child ended), then waits until the test kills it.
_CHILD = """
import signal, time
signal.signal(signal.SIGUSR1, lambda *_: print("alive", flush=True))
print("ready", flush=True)
while True:
    time.sleep(600)
"""
_BENCH = """
import os, signal, subprocess, sys, threading, time
from bench.common import start_child

def start():
    return start_child([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)

if sys.argv[1] == "main thread":
    child = start()
else:
    started = []
    worker = threading.Thread(target=lambda: started.append(start()))
    worker.start()
    worker.join()
    child = started[0]
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/self/task/{worker.native_id}") and time.monotonic() < deadline:
        time.sleep(0.01)
if child.stdout.readline():
    os.kill(child.pid, signal.SIGUSR1)
print(child.pid, child.stdout.readline().strip() or "gone", flush=True)
sys.stdin.readline()
"""

# A bench with stop_on_sigterm whose cleanup stops its child, in plain Python or under asyncio.run,
# with Python's SIGINT handler or with SIGINT ignored (a script a shell started with `&`).
_CLEANING_BENCH = """
import asyncio, signal, sys, time
from bench.common import start_child, stop_on_sigterm

if sys.argv[2] == "ignored":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
stop_on_sigterm()

async def bench_in_asyncio():
    child = start_child([sys.executable, "-c", SLEEPER])
    try:
        print(child.pid, flush=True)
        await asyncio.sleep(600)
    finally:
        child.kill()
        child.wait()
        print("cleaned up", flush=True)

def bench():
    child = start_child([sys.executable, "-c", SLEEPER])
    try:
        print(child.pid, flush=True)
        time.sleep(600)
    finally:
        child.kill()
        child.wait()
        print("cleaned up", flush=True)

if sys.argv[1] == "asyncio":
    asyncio.run(bench_in_asyncio())
else:
    bench()
"""


def _gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether ``pid`` ends (no longer in /proc, or a zombie) within ``within_s``: waits for the event."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            # The state is the field after the command's closing parenthesis.
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


@contextlib.contextmanager
def _bench(script: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    """Run ``script`` as a bench; yield it, its child's pid and what else it printed on that line.

    Both are killed on the way out if they are still there.
    """
    script = script.replace("SLEEPER", repr(_SLEEPER)).replace("CHILD", repr(_CHILD))
    command = [sys.executable, "-c", script, *args]
    child = 0
    with subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as bench:
        try:
            assert bench.stdout is not None
            first, _, rest = bench.stdout.readline().strip().partition(" ")
            child = int(first)
            yield bench, child, rest
        finally:
            bench.kill()
            bench.wait()
            if child and not _gone(child, within_s=0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)  # the helper failed: leave no sleeper behind


@pytest.mark.parametrize("started_from", ["main thread", "a worker thread that has ended"])
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_child_dies_when_the_bench_is_killed(kill: signal.Signals, started_from: str) -> None:
    with _bench(_BENCH, started_from) as (bench, child, answer):
        assert answer == "alive"  # while the bench lives, whether the thread that started it did or not
        bench.send_signal(kill)
        assert bench.wait() == -kill
        assert _gone(child)


@pytest.mark.parametrize("sigint", ["handled", "ignored"])
@pytest.mark.parametrize("runner", ["plain", "asyncio"])
def test_sigterm_runs_the_benchs_cleanup(runner: str, sigint: str) -> None:
    with _bench(_CLEANING_BENCH, runner, sigint) as (bench, child, _):
        bench.send_signal(signal.SIGTERM)
        out, _ = bench.communicate(timeout=30)  # a bound on waiting for its end, not a measured time
        assert "cleaned up" in out
        assert _gone(child)
