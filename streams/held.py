"""A machine's readings held for ordering, in columns: about 18 bytes a reading instead of about 170.

Pure. The engine holds each reading for ``allowed_lateness`` of event time, so that one arriving
a little late is still applied in order (:mod:`streams.engine`). At 20 000 readings a second and
5 s of lateness that is 100 000 readings; as a heap of tuples of Python objects (the tuple 80 B,
its time and sequence ints 32 B each, a float 24 B) they held about 16 MiB of the embedded
pipeline's memory (docs/benchmarks.md, issue 18).

:class:`Held` keeps them in a :class:`streams.history.History` instead (the same columns, the
same exact round trip of every kind of value), in the order the heap gave them out: event time,
then sequence number. The engine's readings almost always come in that order (a new reading has
the newest sequence number, and a source's times rise), so a push is an append; one older than
the newest held is put in its place by taking the readings after it off and appending them
again, a few dozen at most within the lateness.
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.history import History, Row

__all__ = ["Held"]


class Held:
    """Readings ordered by ``(event time, sequence number)``, taken from the oldest."""

    __slots__ = ("_rows",)

    def __init__(self, rows: Iterable[Row] = ()) -> None:
        self._rows = History()
        for row in sorted(rows):
            self._rows.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    def __bool__(self) -> bool:
        return len(self._rows) > 0

    def __repr__(self) -> str:
        return f"<Held of {len(self)} readings>"

    def push(self, row: Row) -> None:
        """Add ``row`` in its place: after every held reading of an earlier time or sequence number."""
        rows = self._rows
        size = len(rows)
        ts, seq = row[0], row[1]
        if not size or rows.time_at(size - 1) < ts:
            rows.append(row)
            return
        at = rows.bisect_time(ts + 1)  # after every reading of the same time or earlier ...
        while at and rows.time_at(at - 1) == ts and rows[at - 1][1] > seq:
            at -= 1  # ... but before those of the same time with a later sequence number
        if at == size:
            rows.append(row)
            return
        after = rows[at:]
        del rows[at:]
        rows.append(row)
        for moved in after:
            rows.append(moved)

    def oldest_time(self) -> int:
        """The event time of the first reading to be taken.

        Raises:
            IndexError: nothing is held.
        """
        return self._rows.time_at(0)

    def up_to(self, watermark: int | None) -> list[Row]:
        """The held readings of event time ``<= watermark`` (all if ``None``), oldest first; still held."""
        rows = self._rows
        if watermark is None:
            return rows[:]
        return rows[: rows.bisect_time(watermark + 1)]

    def drop(self, count: int) -> None:
        """Stop holding the first ``count`` readings (those :meth:`up_to` gave and were released)."""
        del self._rows[:count]

    def rows(self) -> list[Row]:
        """Every held reading, oldest first (the order ``sorted`` gave the heap's tuples)."""
        return self._rows[:]
