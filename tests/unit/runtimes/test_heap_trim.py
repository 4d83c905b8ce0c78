"""Keeping the C heap compact: large blocks mapped apart, free pages returned once a checkpoint
(or a save point of the kafka ``process`` role); done with glibc, a quiet no-op without it."""

from __future__ import annotations

import asyncio
import ctypes
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from support import reading

from plantstream.plant.schema import Kafka
from runtimes import embedded, heap_trim
from runtimes.embedded import EmbeddedPipeline
from runtimes.kafka.process import ProcessRole, ProcessStats, _SavePoint, _Saver
from runtimes.kafka.sink import SinkRole
from runtimes.plant import load_and_resolve

MINIMAL = Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml"
GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_pages_freed_in_the_middle_of_the_heap_are_returned() -> None:
    # 64 blocks of 64 KiB (under glibc's 128 KiB mmap threshold: they come from the heap), all
    # freed but the last, which holds the heap's top: 4 MiB free below it that glibc keeps until
    # asked, and malloc_trim says 1 when it returns any page.
    heap_trim.trim()
    blocks = [bytearray(64 * 1024) for _ in range(64)]
    del blocks[:-1]
    assert heap_trim.trim() is True
    assert len(blocks) == 1


# Run in a fresh interpreter of one thread: in the test process, another test's leftover thread
# (a sink's worker, a checkpoint writer) may map or unmap a block between the two counts.
_MAPPED_AFTER_A_LARGER_FREE = """
import ctypes, sys
from runtimes import heap_trim

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (2.33+); hblks: blocks mapped apart
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
if sys.argv[1] == "fixed":
    assert heap_trim.map_large_blocks()
# On its own glibc raises its threshold to 8 MiB when this block is freed.
larger = bytearray(8 * 1024 * 1024)
del larger
before = mallinfo2().hblks
block = bytearray(1024 * 1024)
print(mallinfo2().hblks - before)
"""


@pytest.mark.skipif(
    not GLIBC or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="mallopt is glibc's (mallinfo2 2.33+)"
)
@pytest.mark.parametrize(("threshold", "mapped"), [("fixed", 1), ("glibc's own", 0)])
def test_a_large_block_keeps_a_mapping_of_its_own_after_a_larger_one_was_freed(
    threshold: str, mapped: int
) -> None:
    # The control ("glibc's own") shows what the fix changes: the 1 MiB block comes from the heap.
    environ = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    run = subprocess.run(
        [sys.executable, "-c", _MAPPED_AFTER_A_LARGER_FREE, threshold],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    assert int(run.stdout) == mapped


@pytest.mark.parametrize("function", [heap_trim.trim, heap_trim.map_large_blocks])
def test_without_glibc_both_do_nothing_and_do_not_fail(
    monkeypatch: pytest.MonkeyPatch, function: Callable[[], bool]
) -> None:
    class NoGlibc:
        def __init__(self, name: object) -> None:
            pass  # a C library without malloc_trim and mallopt (musl, macOS)

    _clear()
    monkeypatch.setattr(ctypes, "CDLL", NoGlibc)
    try:
        assert function() is False
    finally:
        _clear()


@pytest.mark.parametrize("function", [heap_trim.trim, heap_trim.map_large_blocks])
def test_without_a_c_library_at_all_both_do_nothing(
    monkeypatch: pytest.MonkeyPatch, function: Callable[[], bool]
) -> None:
    def refuse(name: object) -> None:
        raise TypeError("no process symbols here")  # what ctypes.CDLL(None) raises on Windows

    _clear()
    monkeypatch.setattr(ctypes, "CDLL", refuse)
    try:
        assert function() is False
    finally:
        _clear()


def _clear() -> None:
    heap_trim._malloc_trim.cache_clear()
    heap_trim._mallopt.cache_clear()


async def test_the_running_pipeline_maps_large_blocks_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    calls: list[str] = []
    monkeypatch.setattr(embedded.heap_trim, "map_large_blocks", lambda: calls.append("mapped") or True)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(pipeline.run(stop), 30)
    assert calls == ["mapped"]


def test_every_checkpoint_written_returns_the_freed_heap_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path)
    pipeline.state_dir.mkdir(parents=True, exist_ok=True)
    pipeline.engine.push(reading(0, "power_kw", 1.0))
    seen: list[int] = []
    monkeypatch.setattr(embedded.heap_trim, "trim", lambda: seen.append(pipeline.stats.checkpoints) or True)
    pipeline._checkpoint()
    pipeline._checkpoint()
    # Each after its checkpoint was counted as written: 1, then 2.
    assert seen == [1, 2]
    pipeline.sink.close()


@pytest.mark.parametrize("role", ["process", "sink"])
async def test_the_kafka_roles_map_large_blocks_apart_before_they_run(
    monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    calls: list[str] = []

    async def run(self: object, stop: asyncio.Event) -> None:
        calls.append("ran")  # the role's loop, which needs a broker: only its start is tested here

    monkeypatch.setattr(heap_trim, "map_large_blocks", lambda: calls.append("mapped") or True)
    if role == "process":
        monkeypatch.setattr(ProcessRole, "_run", run)
        await ProcessRole(Kafka(), load_and_resolve(MINIMAL)[1]).run(asyncio.Event())
    else:
        monkeypatch.setattr(SinkRole, "_run", run)
        await SinkRole(Kafka(), []).run(asyncio.Event())
    assert calls == ["mapped", "ran"]


class _Acknowledged:
    """The state topics' batches and the consumer of a broker that acknowledges everything at once."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def add(self, topic: str, key: bytes, value: bytes, partition: int) -> None:
        """Take a state."""

    async def flush(self) -> list[asyncio.Future[object]]:
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return [done]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(f"commit {offsets[TopicPartition('readings', 0)]}")


async def test_every_save_point_of_the_process_role_returns_the_freed_heap_after_its_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log: list[str] = []
    broker = _Acknowledged(log)
    stats = ProcessStats()
    saver = _Saver(broker, broker, stats)  # type: ignore[arg-type]
    points = [
        _SavePoint([], [("state", b"m1", b"{}", 0)], {TopicPartition("readings", 0): offset})
        for offset in (10, 20)
    ]

    def trim() -> bool:
        # What is known when the trim runs: the save points counted, the states still held.
        held = sum(len(point.states) for point in points)
        log.append(f"trim after {stats.saves} save(s), {held} state(s) held")
        return True

    monkeypatch.setattr(heap_trim, "trim", trim)
    for point in points:
        await saver.until_done(point)
    # Each after its commit, with its states let go (point 2's still held at the first).
    assert log == [
        "commit 10",
        "trim after 1 save(s), 1 state(s) held",
        "commit 20",
        "trim after 2 save(s), 0 state(s) held",
    ]
