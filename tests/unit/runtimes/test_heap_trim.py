"""Keeping the C heap compact: large blocks mapped apart, free pages returned once a checkpoint;
done with glibc, a quiet no-op without it."""

from __future__ import annotations

import asyncio
import ctypes
import platform
from collections.abc import Callable
from pathlib import Path

import pytest
from support import reading

from runtimes import embedded, heap_trim
from runtimes.embedded import EmbeddedPipeline
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


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): ``hblks`` counts the blocks in mappings of their own."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mapped_blocks() -> int:
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    return int(mallinfo2().hblks)


@pytest.mark.skipif(
    not GLIBC or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="mallopt is glibc's (mallinfo2 2.33+)"
)
def test_a_large_block_keeps_a_mapping_of_its_own_after_a_larger_one_was_freed() -> None:
    assert heap_trim.map_large_blocks() is True
    # glibc on its own would raise its threshold to 8 MiB when this block is freed, and the next
    # 1 MiB block would come from the heap.
    larger = bytearray(8 * 1024 * 1024)
    del larger
    before = _mapped_blocks()
    block = bytearray(1024 * 1024)
    assert _mapped_blocks() == before + 1
    del block
    assert _mapped_blocks() == before


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
