"""``plantstream replay``: recorded readings through the calculators, points out as JSON lines.

The input (one Reading per line, design.md §3) may be in any order within the plant's allowed
lateness: pending readings are released once the newest event time is a lateness past them, in
event-time order (ties broken by machine, signal and line number), so the same set of readings
gives byte-identical output. Readings later than that are
corrections, exactly as in the live pipeline. Bad lines are reported with their line number,
counted, written to the dead-letter file if one is given, and skipped.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, TextIO

from plantstream.records import Point, RecordError, decode_reading
from runtimes.gc_tuning import fewer_collections
from streams.engine import Engine, ReadingRejected
from streams.plausibility import REBASE_AFTER, plausible_time

__all__ = ["ReplayAborted", "ReplaySummary", "replay"]

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
    out: TextIO | None,
    *,
    source: str,
    lateness_us: int,
    strict: bool = False,
    report: Callable[[str], None] = lambda _: None,
    dead_letter: TextIO | None = None,
    on_points: Callable[[list[Point]], None] | None = None,
) -> ReplaySummary:
    """Run ``lines`` through ``engine`` (built with ``reorder=False``), writing points to ``out``.

    ``on_points``, if given, also receives every batch of points (a CBAM ledger, the sinks of
    ``replay --to-sinks``).

    Raises:
        ReplayAborted: ``strict`` and a bad line.
    """
    run = _Replay(engine, out, source, strict, report, dead_letter, on_points)
    with fewer_collections():
        return run.run(lines, lateness_us)


_Item = tuple[int, str, str, int, Any, str, str]
_BATCH = 4096
"""Readings decoded between two orderings of the pending ones; sorting batches is cheaper than a heap."""


class _Replay:
    """One replay: ordering, feeding, refusing and writing."""

    def __init__(
        self,
        engine: Engine,
        out: TextIO | None,
        source: str,
        strict: bool,
        report: Callable[[str], None],
        dead_letter: TextIO | None,
        on_points: Callable[[list[Point]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.out = out
        self.on_points = on_points
        self.source = source
        self.strict = strict
        self.report = report
        self.dead_letter = dead_letter
        self.summary = ReplaySummary()

    def run(self, lines: Iterable[str], lateness_us: int) -> ReplaySummary:
        """Decode, order and feed every line; flush the engine at the end.

        Readings wait in ``pending`` until the newest event time is ``lateness_us`` past them, as
        behind a watermark; they are sorted and released in batches, which is cheaper than a heap
        and releases the same sequence. A reading that arrives already behind the watermark
        releases everything before it at once, so it reaches the engine exactly as late as it is.
        """
        summary = self.summary
        pending: list[_Item] = []
        next_batch = _BATCH
        newest = -(2**62)
        # One far-future reading must not move the watermark past everything else (the engine
        # refuses it as a clock jump): the watermark follows a jump once readings in a row confirm it.
        max_jump = self.engine.spec.max_clock_jump_us
        ahead: list[int] = []
        lineno = skipped = 0
        for lineno, line in enumerate(lines, 1):
            try:
                ts, machine, signal, value, quality, _ = decode_reading(line)
            except RecordError as exc:
                skipped += 1
                if line.strip():
                    self.refuse(lineno, "malformed", str(exc), line)
                continue
            item = (ts, machine, signal, lineno, value, quality, line)
            if not plausible_time(ts):
                pending.append(item)  # the engine refuses it (bad_time); it moves no watermark
                continue
            if ts > newest + max_jump and newest > -(2**62):
                if ahead and abs(ts - ahead[-1]) > max_jump:
                    ahead.clear()
                ahead.append(ts)
                if len(ahead) < REBASE_AFTER:
                    pending.append(item)  # held to the end, where the engine refuses or takes it
                    continue
                ahead.clear()
            elif ahead:
                ahead.clear()
            if ts > newest:
                newest = ts
            elif ts <= newest - lateness_us:
                # Behind the watermark: what a stream would have released by now goes first.
                pending = self.release(pending, newest - lateness_us)
                self.release([item], None)
                continue
            pending.append(item)
            if len(pending) >= next_batch:
                pending = self.release(pending, newest - lateness_us)
                # Grow the batch when little could be released, so sorting stays linear overall.
                next_batch = max(_BATCH, 2 * len(pending))
        summary.lines = lineno
        summary.readings = lineno - skipped
        self.release(pending, None)
        self.engine.flush()
        self.write()
        summary.engine = self.engine.stats
        return summary

    def release(self, pending: list[_Item], watermark: int | None) -> list[_Item]:
        """Feed, in order, the pending readings at or before ``watermark`` (all if ``None``)."""
        pending.sort()
        cut = len(pending) if watermark is None else bisect_right(pending, watermark, key=itemgetter(0))
        push = self.engine.push_raw
        for ts, machine, signal, lineno, value, quality, line in pending[:cut]:
            try:
                push(ts, machine, signal, value, quality)
            except ReadingRejected as exc:
                self.refuse(lineno, exc.reason, str(exc), line)
        self.write()
        return pending[cut:]

    def refuse(self, lineno: int, reason: str, message: str, raw: str) -> None:
        """Count, report and dead-letter one refused line (or stop, when strict)."""
        summary = self.summary
        summary.rejected[reason] += 1
        text = f"{self.source}:{lineno}: {reason}: {message}"
        if self.strict:
            raise ReplayAborted(text)
        if summary.rejected_total <= MAX_REPORTED:
            self.report(text)
        elif summary.rejected_total == MAX_REPORTED + 1:
            self.report(f"{self.source}: more bad lines; counting them without reporting each")
        if self.dead_letter is not None:
            record = {"line": lineno, "reason": reason, "error": message, "raw": raw.rstrip("\n")}
            self.dead_letter.write(json.dumps(record) + "\n")

    def write(self) -> None:
        """Write the points the engine has produced."""
        if not self.engine.has_points:
            return
        points = self.engine.take_points()
        if self.on_points is not None:
            self.on_points(points)
        out = self.out
        for point in points:
            if out is not None:
                out.write(point.to_json())
                out.write("\n")
            if point.measurement == "oee" and point.tags.get("window") == "shift":
                self.summary.shift_points.append(point)
        self.summary.points += len(points)
