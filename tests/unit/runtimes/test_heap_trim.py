"""Returning the C heap's free pages: done with glibc, a quiet no-op without it, once a checkpoint."""

from __future__ import annotations

import ctypes
import platform
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


def test_without_glibc_trim_does_nothing_and_does_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoTrim:
        def __init__(self, name: object) -> None:
            pass  # a C library without malloc_trim (musl, macOS)

    heap_trim._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", NoTrim)
    try:
        assert heap_trim.trim() is False
    finally:
        heap_trim._malloc_trim.cache_clear()


def test_without_a_c_library_at_all_trim_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: object) -> None:
        raise TypeError("no process symbols here")  # what ctypes.CDLL(None) raises on Windows

    heap_trim._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", refuse)
    try:
        assert heap_trim.trim() is False
    finally:
        heap_trim._malloc_trim.cache_clear()


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
