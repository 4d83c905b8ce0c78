"""``plantstream replay``: recorded readings through the calculators, points out as JSON lines.

The input (one Reading per line, design.md §3) may be in any order within the plant's allowed
lateness: a bounded heap puts it in event-time order (ties broken by machine, signal and line
number), so the same set of readings gives byte-identical output. Readings later than that are
corrections, exactly as in the live pipeline. Bad lines are reported with their line number,
counted, written to the dead-letter file if one is given, and skipped.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

from plantstream.records import EPOCH, Point, Reading, RecordError
from streams.engine import Engine, ReadingRejected

__all__ = ["ReplayAborted", "ReplaySummary", "replay"]

_ONE_US = timedelta(microseconds=1)
MAX_REPORTED = 100
"""Bad lines reported one by one before the rest are only counted."""


class ReplayAborted(Exception):
    """``--strict`` and a bad line: the message names the line and the reason."""


@dataclass
class ReplaySummary:
    """What a replay read, refused and wrote."""

    lines: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    points: int = 0
    shift_points: list[Point] = field(default_factory=list)
    engine: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        """All lines that were not used."""
        return sum(self.rejected.values())


def replay(
    engine: Engine,
    lines: Iterable[str],
    out: TextIO,
    *,
    source: str,
    lateness_us: int,
    strict: bool = False,
    report: Callable[[str], None] = lambda _: None,
    dead_letter: TextIO | None = None,
) -> ReplaySummary:
    """Run ``lines`` through ``engine`` (built with ``reorder=False``), writing points to ``out``."""
    summary = ReplaySummary()
    heap: list[tuple[int, str, str, int, Reading]] = []
    newest = None

    def refuse(lineno: int, reason: str, message: str, raw: str) -> None:
        summary.rejected[reason] += 1
        text = f"{source}:{lineno}: {reason}: {message}"
        if strict:
            raise ReplayAborted(text)
        if summary.rejected_total <= MAX_REPORTED:
            report(text)
        elif summary.rejected_total == MAX_REPORTED + 1:
            report(f"{source}: more bad lines; counting them without reporting each")
        if dead_letter is not None:
            dead_letter.write(
                json.dumps({"line": lineno, "reason": reason, "error": message, "raw": raw}) + "\n"
            )

    def release(item: tuple[int, str, str, int, Reading]) -> None:
        try:
            engine.push(item[4])
        except ReadingRejected as exc:
            refuse(item[3], exc.reason, str(exc), item[4].to_json())

    def write(points: list[Point]) -> None:
        for point in points:
            out.write(point.to_json())
            out.write("\n")
            if point.tags.get("window") == "shift" and point.measurement == "oee":
                summary.shift_points.append(point)
        summary.points += len(points)

    for lineno, line in enumerate(lines, 1):
        summary.lines = lineno
        if not line.strip():
            continue
        try:
            reading = Reading.from_json(line)
        except RecordError as exc:
            refuse(lineno, "malformed", str(exc), line.rstrip("\n"))
            continue
        summary.readings += 1
        ts = (reading.ts - EPOCH) // _ONE_US
        heapq.heappush(heap, (ts, reading.machine, reading.signal, lineno, reading))
        if newest is None or ts > newest:
            newest = ts
        watermark = newest - lateness_us
        while heap and heap[0][0] <= watermark:
            release(heapq.heappop(heap))
        write(engine.take_points())
    while heap:
        release(heapq.heappop(heap))
    engine.flush()
    write(engine.take_points())
    summary.engine = engine.stats
    return summary
