"""Where a process's resident memory is: the kernel's view, glibc's arenas and CPython's pymalloc.

A bench helper (Linux with glibc; elsewhere the parts it cannot read are left out): the soak's
``--account`` prints :func:`account` at the end of the pipeline's run, so an RSS can be split
into what Python objects hold, what pymalloc keeps in its arenas, what glibc's arenas keep free,
and what is mapped from files (the interpreter and its libraries).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import io
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["account", "glibc_arenas", "pymalloc", "smaps"]

_KIB = 1024


def smaps() -> dict[str, int]:
    """Resident bytes by kind of mapping: the brk heap, anonymous mappings, files, stacks."""
    totals: dict[str, int] = {}
    kind = "other"
    try:
        with open("/proc/self/smaps", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                first = line.split(maxsplit=1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split()
                    name = parts[5] if len(parts) > 5 else ""
                    if name == "[heap]":
                        kind = "heap_brk"
                    elif name.startswith("[stack"):
                        kind = "stack"
                    elif name.startswith("["):
                        kind = "other"
                    elif name:
                        kind = "file"
                    else:
                        kind = "anonymous_mmap"
                elif first == "Rss:":
                    totals[kind] = totals.get(kind, 0) + int(line.split()[1]) * _KIB
    except OSError:
        return {}
    return totals


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None or not hasattr(ctypes.CDLL(name), "malloc_info"):
        return None
    return ctypes.CDLL(name)


def glibc_arenas() -> list[dict[str, int]]:
    """The ``malloc_info`` of glibc: per arena, the bytes taken from the system and the free bytes in it."""
    libc = _libc()
    if libc is None:
        return []
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        text = Path(out.name).read_text(encoding="utf-8")
    arenas = []
    for body in re.findall(r'<heap nr="\d+">(.*?)</heap>', text, re.S):
        free = sum(int(m) for m in re.findall(r'<total type="fast" count="\d+" size="(\d+)"', body))
        free += sum(int(m) for m in re.findall(r'<total type="rest" count="\d+" size="(\d+)"', body))
        current = re.search(r'<system type="current" size="(\d+)"', body)
        arenas.append({"system": int(current.group(1)) if current else 0, "free": free})
    mmap = re.search(r'<total type="mmap" count="(\d+)" size="(\d+)"/>\s*<system type="current"', text)
    if mmap:
        arenas.append({"mmapped_chunks": int(mmap.group(1)), "mmapped_bytes": int(mmap.group(2))})
    return arenas


def pymalloc() -> dict[str, int]:
    """The arenas of pymalloc: how many, and the bytes in blocks allocated to objects and free in them."""
    err = io.StringIO()
    fd = 2  # the C library's stderr, whatever sys.stderr is now (a test's capture)
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+") as capture:
        try:
            sys.stderr.flush()
            os.dup2(capture.fileno(), fd)
            sys._debugmallocstats()  # type: ignore[attr-defined]
        finally:
            os.dup2(saved, fd)
            os.close(saved)
        capture.seek(0)
        err.write(capture.read())
    text = err.getvalue()
    found = {}
    for key, label in (
        ("arenas", "# arenas allocated current"),
        ("allocated_blocks", "bytes in allocated blocks"),
        ("available_blocks", "bytes in available blocks"),
        ("unused_pools", "unused pools *"),
    ):
        match = re.search(re.escape(label) + r"[^=]*=\s*([\d,]+)", text)
        if match:
            found[key] = int(match.group(1).replace(",", ""))
    return found


def account() -> dict[str, Any]:
    """Everything above at once, in MiB where a size, with the threads alive."""
    mib = 2**20
    arenas = glibc_arenas()
    kinds = {k: round(v / mib, 1) for k, v in smaps().items()}
    py = pymalloc()
    with contextlib.suppress(KeyError):
        py["arenas_mib"] = py["arenas"]  # 1 MiB each since Python 3.10
    return {
        "rss_by_mapping_mib": kinds,
        "rss_mib": round(sum(smaps().values()) / mib, 1),
        "pymalloc": {k: (round(v / mib, 1) if "blocks" in k else v) for k, v in py.items()},
        "glibc_arenas_mib": [{k: round(v / mib, 1) for k, v in a.items()} for a in arenas],
        "threads": sorted(t.name for t in threading.enumerate()),
        "allocated_blocks": sys.getallocatedblocks(),
    }


def trim_experiment() -> dict[str, Any]:
    """RSS before and after one glibc ``malloc_trim(0)``, and how long the call took."""
    libc = _libc()
    if libc is None:
        return {}
    before = sum(smaps().values())
    began = time.perf_counter()
    libc.malloc_trim(0)
    took = time.perf_counter() - began
    return {
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(sum(smaps().values()) / 2**20, 1),
        "trim_ms": round(took * 1000, 2),
    }


def census(top: int = 15) -> list[tuple[str, int, float]]:
    """The kinds of objects the cyclic GC tracks, by their own sizes: (type, count, MiB), largest first.

    Ints, floats and strings are not tracked, so they show only inside the containers that hold
    them; a bench's view to find which structure grew, not a total.
    """
    sizes: dict[str, list[int]] = {}
    for obj in gc.get_objects():
        entry = sizes.setdefault(type(obj).__name__, [0, 0])
        entry[0] += 1
        entry[1] += sys.getsizeof(obj)
    ranked = sorted(sizes.items(), key=lambda kv: -kv[1][1])[:top]
    return [(name, n, round(size / 2**20, 1)) for name, (n, size) in ranked]
