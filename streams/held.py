"""A machine's readings held for ordering, in columns: about 40 bytes a reading instead of about 170.

Pure. The engine holds each reading for ``allowed_lateness`` of event time, so that one arriving
a little late is still applied in order (:mod:`streams.engine`). At 20 000 readings a second and
5 s of lateness that is 100 000 readings; as a heap of tuples (the tuple 80 B, its event time
and sequence number ints 32 B each, the value) they held about 16 MiB of the embedded
pipeline's memory (docs/benchmarks.md, issue 18).

:class:`Held` keeps the event times and sequence numbers in 8-byte :mod:`array` columns and the
signal and quality as references in lists (the engine's shared strings). Values are kept as
8-byte doubles while every value held is a float (a meter's readings: no float object a reading);
the first value of another type turns the column into a list of references to the objects
pushed until the machine holds nothing again, so each value comes back of the type it went in
with. It gives them out in the heap's order, event time then sequence number. The engine's
readings almost always come in that order (a new reading has the newest sequence number, and a
source's times rise), so a push is an append; one older than the newest held is inserted in its
place. Taken readings only move a start index; the columns are compacted every few taken readings.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

from streams.history import Row

__all__ = ["Held"]

_COMPACT_AT = 16
"""Taken readings are cut from the columns once there are this many: a taken reading's value stays
referenced until then, so few (a machine holds about 50 at 10 Hz and 5 s of lateness)."""


class Held:
    """Readings ordered by ``(event time, sequence number)``, taken from the oldest."""

    __slots__ = ("_qualities", "_seq", "_signals", "_start", "_ts", "_values")

    def __init__(self, rows: Iterable[Row] = ()) -> None:
        self._ts = array("q")
        self._seq = array("q")
        self._signals: list[str] = []
        # array("d") while every value held is a float, else a list (see the module).
        self._values: array[float] | list[Any] = array("d")
        self._qualities: list[str] = []
        # Column index of the first reading still held: the ones before it are taken.
        self._start = 0
        for row in sorted(rows):
            self.push(row)

    def __len__(self) -> int:
        return len(self._ts) - self._start

    def __bool__(self) -> bool:
        return len(self._ts) > self._start

    def __repr__(self) -> str:
        return f"<Held of {len(self)} readings>"

    def push(self, row: Row) -> None:
        """Add ``row`` in its place: after every held reading of an earlier time or sequence number.

        Raises:
            OverflowError, TypeError: its event time or sequence number is not a 64-bit int.
        """
        ts, seq, signal, value, quality = row
        times = self._ts
        if len(times) == self._start or times[-1] < ts or (times[-1] == ts and self._seq[-1] < seq):
            times.append(ts)
            try:
                self._seq.append(seq)
            except (OverflowError, TypeError):
                times.pop()
                raise
            if value.__class__ is not float and self._values.__class__ is array:
                self._values = list(self._values)
            self._signals.append(signal)
            self._values.append(value)
            self._qualities.append(quality)
            return
        at = bisect_right(times, ts, self._start)  # after every reading of the same time or earlier ...
        while at > self._start and times[at - 1] == ts and self._seq[at - 1] > seq:
            at -= 1  # ... but before those of the same time with a later sequence number
        times.insert(at, ts)
        try:
            self._seq.insert(at, seq)
        except (OverflowError, TypeError):
            del times[at]
            raise
        if value.__class__ is not float and self._values.__class__ is array:
            self._values = list(self._values)
        self._signals.insert(at, signal)
        self._values.insert(at, value)
        self._qualities.insert(at, quality)

    def oldest_time(self) -> int:
        """The event time of the first reading to be taken.

        Raises:
            IndexError: nothing is held.
        """
        if len(self._ts) == self._start:
            raise IndexError("nothing is held")
        return self._ts[self._start]

    def up_to(self, watermark: int | None) -> list[Row]:
        """The held readings of event time ``<= watermark`` (all if ``None``), oldest first; still held."""
        lo = self._start
        times = self._ts
        if lo == len(times):
            return []
        if watermark is None:
            hi = len(times)
        elif lo + 1 == len(times) or times[lo + 1] > watermark:
            # The common case: one reading due (each new one moves the watermark by one reading).
            if times[lo] > watermark:
                return []
            return [(times[lo], self._seq[lo], self._signals[lo], self._values[lo], self._qualities[lo])]
        else:
            hi = bisect_right(times, watermark, lo)
        return list(
            zip(
                times[lo:hi],
                self._seq[lo:hi],
                self._signals[lo:hi],
                self._values[lo:hi],
                self._qualities[lo:hi],
                strict=True,
            )
        )

    def drop(self, count: int) -> None:
        """Stop holding the first ``count`` readings (those :meth:`up_to` gave and were released)."""
        start = self._start + count
        if start >= _COMPACT_AT:
            for column in (self._ts, self._seq, self._signals, self._values, self._qualities):
                del column[:start]
            start = 0
        elif start == len(self._ts):
            # Nothing left: empty the columns now (cheap), so an idle machine holds no references.
            for column in (self._ts, self._seq, self._signals, self._qualities):
                del column[:]
            self._values = array("d")  # floats again, until a value of another type comes
            start = 0
        self._start = start

    def rows(self) -> list[Row]:
        """Every held reading, oldest first (the order ``sorted`` gave the heap's tuples)."""
        return self.up_to(None)
