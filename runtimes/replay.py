"""``plantstream replay``: recorded readings through the calculators, points out as JSON lines.

The input (one Reading per line, plantstream/records.py) may be in any order within the plant's allowed
lateness: pending readings are released once the newest event time is a lateness past them, in
event-time order (ties broken by machine, signal and line number), so the same set of readings
gives byte-identical output. Readings later than that are
corrections, exactly as in the live pipeline. Bad lines are reported with their line number,
counted, written to the dead-letter file if one is given, and skipped; they are reported in line
order, whichever stage refused them.

The input may be bytes (:func:`read_lines`): the replay decodes them itself, so a line that is not
UTF-8, or longer than :data:`MAX_LINE_BYTES`, is one more bad line with its number, whether it
comes from a file or from stdin.
"""

from __future__ import annotations

import heapq
import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, BinaryIO, TextIO

from plantstream.records import Point, RecordError, decode_reading
from runtimes.gc_tuning import fewer_collections
from sinks.deadletters import bounded_payload
from streams.engine import Engine, ReadingRejected
from streams.plausibility import EARLIEST_US, LATEST_US, REBASE_AFTER, plausible_time

__all__ = ["MAX_LINE_BYTES", "OverlongLine", "ReplayAborted", "ReplaySummary", "read_lines", "replay"]

MAX_REPORTED = 100
"""Bad lines reported one by one before the rest are only counted."""

MAX_LINE_BYTES = 1 << 20
"""A longer line is refused without being held in memory (a reading's line is well under 1 KiB)."""

_HEAD_BYTES = 200
"""How much of an over-long line is kept for the report and the dead letter."""

_MAX_HELD_REPORTS = 10_000
"""Refusals held back to be reported in line order; past this, the oldest is reported at once."""

_MAX_HELD_BYTES = 16 << 20
"""The same bound on the held refusals' raw lines, which may each be up to a mebibyte."""


@dataclass(frozen=True)
class OverlongLine:
    """A line longer than :data:`MAX_LINE_BYTES`: its length and its first bytes, nothing more."""

    length: int
    head: bytes


def read_lines(stream: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes | OverlongLine]:
    """The lines of ``stream``, undecoded; a line longer than ``max_bytes`` as an :class:`OverlongLine`.

    The rest of an over-long line is read and dropped in ``max_bytes`` pieces, so memory stays
    bounded whatever the file holds (one line of a gigabyte without a newline included).
    """
    readline = stream.readline
    while line := readline(max_bytes + 1):
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield line
            continue
        length = len(line)
        while piece := readline(max_bytes):
            length += len(piece)
            if piece.endswith(b"\n"):
                break
        yield OverlongLine(length, line[:_HEAD_BYTES])


class ReplayAborted(Exception):
    """``--strict`` and a bad line: the message names the line and the reason."""


@dataclass
class ReplaySummary:
    """What a replay read, refused and wrote."""

    lines: int = 0
    blank: int = 0
    readings: int = 0
    """Lines the calculators used: neither blank nor refused."""
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
    lines: Iterable[str | bytes | OverlongLine],
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
    ``replay --to-sinks``). ``lines`` may be text or, from :func:`read_lines`, bytes.

    Raises:
        ReplayAborted: ``strict`` and a bad line.
    """
    run = _Replay(engine, out, source, strict, report, dead_letter, on_points)
    with fewer_collections():
        return run.run(lines, lateness_us)


_Item = tuple[int, str, str, int, Any, str, str | bytes]
_BATCH = 4096
"""Readings decoded between two orderings of the pending ones; sorting batches is cheaper than a heap."""

_PARTS = itemgetter(0, 1, 2, 4, 5)
"""A pending reading's parts as :meth:`Engine.push_many` takes them."""

_NO_TIME = -(2**62)
"""The newest event time before the first reading."""


class _JumpGuard:
    """Keeps a far-future reading from moving replay's watermark past everything else.

    Replay has no receipt time to judge an event time by, so a reading more than ``max_jump_us``
    ahead of the newest one is held here instead of joining the pending readings, unless
    :data:`~streams.plausibility.REBASE_AFTER` readings in a row agree on the new time: a clock
    that really was set forward moves the watermark then, and the held readings join the pending
    ones in time order. A reading that breaks the run (back in time, or ahead by another jump)
    has the held ones refused as ``clock_jump`` at once, so they are reported near their own line,
    not at the end of the file. (Event times outside the plausible years never get here: the
    engine refuses them as ``bad_time`` whatever comes after them.)
    """

    def __init__(self, max_jump_us: int) -> None:
        self.max_jump_us = max_jump_us
        self.ahead: list[_Item] = []

    @property
    def first_line(self) -> int | None:
        """The line number of the first reading held here."""
        return self.ahead[0][3] if self.ahead else None

    def offer(self, item: _Item, newest: int) -> tuple[bool, list[_Item], list[_Item]]:
        """Take ``item`` (``newest`` is the newest event time so far).

        Returns whether it goes on as usual; the held readings whose run it broke, to be refused;
        and those it confirmed, which join the pending readings while it goes on with its new time.
        """
        ts = item[0]
        if ts <= newest + self.max_jump_us or newest == _NO_TIME:
            broken, self.ahead = self.ahead, []
            return True, broken, []
        broken = []
        if self.ahead and abs(ts - self.ahead[-1][0]) > self.max_jump_us:
            broken, self.ahead = self.ahead, []
        if len(self.ahead) + 1 < REBASE_AFTER:
            self.ahead.append(item)
            return False, broken, []
        confirmed, self.ahead = self.ahead, []
        return True, broken, confirmed

    def give_up(self) -> list[_Item]:
        """The held readings, no longer held (the input ended, or ``--strict`` stops)."""
        held, self.ahead = self.ahead, []
        return held


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
        self.held: list[tuple[int, str, str, str]] = []
        """Refusals not yet reported: (line, reason, message, raw), a heap by line number."""
        self.held_bytes = 0
        self.reported = 0

    def run(self, lines: Iterable[str | bytes | OverlongLine], lateness_us: int) -> ReplaySummary:
        """Decode, order and feed every line; flush the engine at the end.

        Readings wait in ``pending`` until the newest event time is ``lateness_us`` past them, as
        behind a watermark; they are sorted and released in batches, which is cheaper than a heap
        and releases the same sequence. A reading that arrives already behind the watermark
        releases everything before it at once, so it reaches the engine exactly as late as it is.

        A refusal is held until no pending reading has a smaller line number, so refusals are
        reported in line order although the calculators see the readings in time order.
        """
        summary = self.summary
        pending: list[_Item] = []
        first_pending: int | None = None  # the smallest line number in pending
        next_batch = _BATCH
        newest = _NO_TIME
        jumps = _JumpGuard(self.engine.spec.max_clock_jump_us)
        max_jump = jumps.max_jump_us
        lineno = 0
        for lineno, line in enumerate(lines, 1):
            try:
                if isinstance(line, OverlongLine):
                    raise RecordError(f"{line.length} bytes long, over the limit of {MAX_LINE_BYTES}")
                ts, machine, signal, value, quality, _ = decode_reading(line)
            except RecordError as exc:
                self.malformed(lineno, line, exc, pending, _earliest(first_pending, jumps.first_line), jumps)
                continue
            item = (ts, machine, signal, lineno, value, quality, line)
            if jumps.ahead or not (EARLIEST_US <= ts < LATEST_US and ts <= newest + max_jump):
                # Only such a reading (or the very first) can be refused or held for its time, or
                # decide on readings held before it: the others skip the check.
                held_from = jumps.first_line
                if self.sidelined(item, newest, jumps, pending):
                    self.report_held(_earliest(first_pending, jumps.first_line))
                    continue
                if held_from is not None:  # the held readings may have joined the pending ones
                    first_pending = _earliest(first_pending, held_from)
            if ts > newest:
                newest = ts
            elif ts <= newest - lateness_us:
                # Behind the watermark: what a stream would have released by now goes first.
                pending = self.release(pending, newest - lateness_us)
                self.release([item], None)
                first_pending = min((it[3] for it in pending), default=None)
                if self.held:
                    self.report_held(_earliest(first_pending, jumps.first_line))
                continue
            pending.append(item)
            if first_pending is None:
                first_pending = lineno
            if len(pending) >= next_batch:
                pending = self.release(pending, newest - lateness_us)
                first_pending = min((it[3] for it in pending), default=None)
                # Grow the batch when little could be released, so sorting stays linear overall.
                next_batch = max(_BATCH, 2 * len(pending))
            if self.held:
                self.report_held(_earliest(first_pending, jumps.first_line))
        summary.lines = lineno
        self.release(pending + jumps.give_up(), None)
        self.report_held(None)
        self.engine.flush()
        self.write()
        summary.readings = lineno - summary.blank - summary.rejected_total
        summary.engine = self.engine.stats
        return summary

    def sidelined(self, item: _Item, newest: int, jumps: _JumpGuard, pending: list[_Item]) -> bool:
        """Whether a reading is refused or held back for its time (``newest`` is the newest so far).

        What its arrival decides about the readings held back before it is done here: refused as a
        ``clock_jump`` if it broke their run, added to ``pending`` if it confirmed their new time.
        """
        if not plausible_time(item[0]):
            self.release([item], None)  # refused whatever comes after it (bad_time), state untouched
            return True
        goes_on, broken, confirmed = jumps.offer(item, newest)
        for ts, machine, signal, lineno, _, _, line in broken:
            refused = self.engine.clock_jump(f"{machine}.{signal}", ts, newest, "the newest so far")
            self.refuse(lineno, refused.reason, str(refused), _text(line))
        pending.extend(confirmed)  # a clock set forward: in time order with the rest
        return not goes_on

    def malformed(
        self,
        lineno: int,
        line: str | bytes | OverlongLine,
        error: Exception,
        pending: list[_Item],
        first_unfed: int | None,
        jumps: _JumpGuard,
    ) -> None:
        """A line that did not decode: skipped, and reported once no reading before it can be.

        ``first_unfed`` is the smallest line number of a reading not yet fed to the engine.
        """
        if self.skip(lineno, line, error) and self.strict:
            # The line is the first bad one unless a pending reading before it is refused.
            self.release(pending + jumps.give_up(), None)
            self.report_held(None)
        if self.held:
            self.report_held(first_unfed)

    def skip(self, lineno: int, line: str | bytes | OverlongLine, error: Exception) -> bool:
        """Count a line that did not decode: blank, or refused as malformed (True)."""
        if isinstance(line, OverlongLine):
            self.refuse(lineno, "malformed", str(error), _text(line.head) + "...")
            return True
        if not line.strip():
            self.summary.blank += 1
            return False
        message = str(error)
        if isinstance(line, bytes):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                message = f"not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"
        self.refuse(lineno, "malformed", message, _text(line))
        return True

    def release(self, pending: list[_Item], watermark: int | None) -> list[_Item]:
        """Feed, in order, the pending readings at or before ``watermark`` (all if ``None``)."""
        pending.sort()
        cut = len(pending) if watermark is None else bisect_right(pending, watermark, key=itemgetter(0))
        batch = pending[:cut] if cut < len(pending) else pending
        if self.strict:
            # One at a time: a refusal reported at once (past the held bound) stops the replay there.
            push = self.engine.push_raw
            for ts, machine, signal, lineno, value, quality, line in batch:
                try:
                    push(ts, machine, signal, value, quality)
                except ReadingRejected as exc:
                    self.refuse(lineno, exc.reason, str(exc), _text(line))
        else:
            for i, error in self.engine.push_many(map(_PARTS, batch)):
                _, _, _, lineno, _, _, line = batch[i]
                self.refuse(lineno, error.reason, str(error), _text(line))
        self.write()
        return pending[cut:]

    def refuse(self, lineno: int, reason: str, message: str, raw: str) -> None:
        """Count one refused line now; report and dead-letter it in line order (:meth:`report_held`)."""
        self.summary.rejected[reason] += 1
        heapq.heappush(self.held, (lineno, reason, message, raw))
        self.held_bytes += len(raw)
        while len(self.held) > _MAX_HELD_REPORTS or self.held_bytes > _MAX_HELD_BYTES:
            self.report_one(*heapq.heappop(self.held))

    def report_held(self, before: int | None) -> None:
        """Report the held refusals of lines before ``before`` (all if ``None``), in line order."""
        held = self.held
        while held and (before is None or held[0][0] < before):
            self.report_one(*heapq.heappop(held))

    def report_one(self, lineno: int, reason: str, message: str, raw: str) -> None:
        """Report and dead-letter one refused line, or stop when strict."""
        self.held_bytes -= len(raw)
        text = f"{self.source}:{lineno}: {reason}: {message}"
        if self.strict:
            raise ReplayAborted(text)
        self.reported += 1
        if self.reported <= MAX_REPORTED:
            self.report(text)
        elif self.reported == MAX_REPORTED + 1:
            self.report(f"{self.source}: more bad lines; counting them without reporting each")
        if self.dead_letter is not None:
            # A bounded prefix of the line, with its length and SHA-256 when it is longer.
            record = {
                "line": lineno,
                "reason": reason,
                "error": message,
                **bounded_payload(raw.rstrip("\r\n")),
            }
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


def _earliest(first: int | None, second: int | None) -> int | None:
    """The smaller of two line numbers that may be missing."""
    if first is None or second is None:
        return first if second is None else second
    return min(first, second)


def _text(line: str | bytes) -> str:
    """A line as text for a report: bytes that are not UTF-8 shown as escapes."""
    return line if isinstance(line, str) else line.decode("utf-8", "backslashreplace")
