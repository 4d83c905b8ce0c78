"""A machine's correction history in columns: about 18 bytes a reading instead of about 172.

Pure. The engine keeps, per machine, the readings released since its oldest snapshot, so that a
late reading can be put in its place and the readings after it applied again
(:mod:`streams.engine`). Kept as a list of tuples of Python objects, a reading cost about 172 B
and the history's bound (``correction_history_max``, 2 million readings) more than 340 MB.

:class:`History` keeps the same readings in parallel :mod:`array` columns instead:

- event time and sequence number, 4 bytes each: offsets from a base of the history's own, as
  long as its readings span less than about 35 minutes of event time (2**31 µs) and of sequence
  numbers; a column whose values do not fit so is widened to 8 bytes, and narrowed again when
  pruning leaves values that fit (an empty history starts narrow);
- the value as a double, 8 bytes, with a tag byte saying how to give it back: a float, an int
  (exact in a double up to 2**53), a bool, or ``None`` (a tick, a bad-quality sample). The
  tag's two low bits hold the quality (``good``, ``uncertain``, ``bad``);
- the signal, 1 byte: its index in the history's own table of signal names (a machine has a
  few; 2 bytes once it has more than 256).

Any other value, rare in a plant (a text such as a state name or product code, an int beyond
2**53), is kept aside as it is, the rest of its reading in the columns; a reading whose quality
or signal the tables do not hold is kept aside whole. So every reading comes back exactly as it
went in: ints as ints, bools as bools, a float that is an integer as a float, ``-0.0`` as
``-0.0``.

It supports what the engine does with the list: :meth:`History.append`, ``len``, a slice from an
index (the readings a correction applies again, as tuples), deleting a prefix (pruning) or a
suffix (a correction), and :meth:`History.bisect_time`. Deleting a prefix only moves a start
offset; the columns are compacted once the deleted part is a quarter of them, so pruning costs a
bounded number of moved readings per pruned reading, and the dead part at most a third of the
live one.

:attr:`History.nbytes` is what the history counts its readings as costing, the bound the engine
prunes it to (``correction_history_bytes``): the column bytes of each reading kept, and
:data:`ASIDE_BYTES` more for each one kept aside.
"""

from __future__ import annotations

import operator
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from plantstream.records import QUALITY_TEXT

__all__ = ["ASIDE_BYTES", "History", "Row"]

Row = tuple[int, int, str, Any, str]
"""One released reading: ``(event time in µs, sequence number, signal, value, quality)``."""

_QUALITY_NAMES = tuple(QUALITY_TEXT.values())
# The engine's own quality strings, so a row comes back holding the very same objects.
_QUALITY_CODE = {quality: code for code, quality in enumerate(_QUALITY_NAMES)}
_FLOAT, _INT, _BOOL, _NONE, _VALUE_ASIDE, _ROW_ASIDE = range(6)
_EXACT_INT = 2**53
"""Every int of at most this magnitude is exact in a double."""
_MAX_SIGNALS = 1 << 16
"""Signal codes are unsigned 16-bit ('H'); a reading of a signal beyond that many is kept aside."""
_COMPACT_AT = 4
"""Compact the columns once the deleted prefix is 1/_COMPACT_AT of them."""
_NARROW = range(-(2**31), 2**31)
"""The offsets a narrow ('i', 4-byte) time or sequence column holds."""
ASIDE_BYTES = 160
"""What :attr:`History.nbytes` counts for a value or reading kept aside, besides its columns: its
position (8 B), its list slot (8 B) and the object, a text of at most 64 characters (the engine's
``MAX_TEXT``, up to 113 B as a ``str``) or a big int, rounded up."""


def _none(_: float) -> None:
    return None


# Indexed by a tag: the value's decoder (the kept-aside ones are filled in from aside), the
# quality text, and whether the value is not a plain float.
_DECODE: tuple[Callable[[float], Any], ...] = tuple(
    (float, int, bool, _none, _none, _none)[min(tag >> 2, _ROW_ASIDE)] for tag in range(256)
)
_QUALITY_OF = tuple(_QUALITY_NAMES[tag & 3] if tag & 3 < len(_QUALITY_NAMES) else "" for tag in range(256))
_NOT_FLOAT = bytes(int(tag >> 2 != _FLOAT) for tag in range(256))


class History(Sequence[Row]):
    """The readings a machine released since its oldest snapshot, in release order, kept compactly.

    Behaves as the ``list`` of :data:`Row` tuples it replaces for what the engine does with it;
    items are built on access, equal to (not the same objects as) the tuples appended. Event
    times and sequence numbers must fit in a signed 64-bit integer (µs since 1970 do until 294247).
    """

    __slots__ = (
        "_aside",
        "_aside_at",
        "_base",
        "_codes",
        "_names",
        "_s0",
        "_seq",
        "_signals",
        "_start",
        "_t0",
        "_tags",
        "_ts",
        "_values",
    )

    def __init__(self) -> None:
        # Event times and sequence numbers are kept as offsets from these bases (see the module).
        self._t0 = 0
        self._s0 = 0
        self._ts = array("i")
        self._seq = array("i")
        self._values = array("d")
        self._signals = array("B")
        self._tags = array("B")
        # The column index of the first reading: the ones before it are deleted, not yet compacted.
        self._start = 0
        # Readings compacted away so far: a reading's position, _base + its column index, never
        # changes, so the readings kept aside are found by it.
        self._base = 0
        self._names: list[str] = [""]
        self._codes: dict[str, int] = {"": 0}
        # Positions of the values (or readings) kept aside, ascending, and those values.
        self._aside_at = array("q")
        self._aside: list[Any] = []

    def append(self, row: Row) -> None:
        """Add ``row`` at the end.

        Raises:
            OverflowError, TypeError: its event time or sequence number is not a 64-bit int.
        """
        ts, seq, signal, value, quality = row
        code = self._codes.get(signal)
        if code is None:
            code = self._intern(signal)
        tag = _QUALITY_CODE.get(quality)
        cls = value.__class__
        if cls is float:
            number, kind = value, _FLOAT
        elif cls is int and -_EXACT_INT <= value <= _EXACT_INT:
            number, kind = value, _INT
        elif cls is bool:
            number, kind = value, _BOOL
        elif value is None:
            number, kind = 0.0, _NONE
        else:
            number, kind = 0.0, _VALUE_ASIDE
        # Time and sequence first: a bad one raises before anything else has grown.
        try:
            self._ts.append(ts - self._t0)
        except OverflowError:
            self._ts, self._t0 = _refit(self._ts, self._t0, ts)
            self._ts.append(ts - self._t0)
        try:
            try:
                self._seq.append(seq - self._s0)
            except OverflowError:
                self._seq, self._s0 = _refit(self._seq, self._s0, seq)
                self._seq.append(seq - self._s0)
        except (OverflowError, TypeError):
            self._ts.pop()
            raise
        if tag is None or code is None:
            self._aside_at.append(self._base + len(self._ts) - 1)
            self._aside.append(row)
            number, code, tag = 0.0, 0, _ROW_ASIDE << 2
        else:
            if kind == _VALUE_ASIDE:
                self._aside_at.append(self._base + len(self._ts) - 1)
                self._aside.append(value)
            tag |= kind << 2
        self._values.append(number)
        self._signals.append(code)
        self._tags.append(tag)

    def _intern(self, signal: str) -> int | None:
        """The code of a new signal name, or ``None`` when it cannot have one (kept aside then)."""
        if signal.__class__ is not str or len(self._names) >= _MAX_SIGNALS:
            return None
        code = self._codes[signal] = len(self._names)
        self._names.append(signal)
        if code == 256 and self._signals.typecode == "B":
            self._signals = array("H", self._signals)
        return code

    def __len__(self) -> int:
        return len(self._ts) - self._start

    @property
    def nbytes(self) -> int:
        """What the readings kept cost as counted for the engine's byte bound (see the module)."""
        return self.nbytes_from(0)

    def nbytes_from(self, index: int) -> int:
        """:attr:`nbytes` of the readings from ``index`` (``0 <= index <= len``) on."""
        width = self._ts.itemsize + self._seq.itemsize + 8 + self._signals.itemsize + 1
        at = self._start + index
        aside = len(self._aside_at) - bisect_left(self._aside_at, self._base + at)
        return (len(self._ts) - at) * width + aside * ASIDE_BYTES

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        size = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(size)
            if step == 1:
                return self._rows(self._start + start, self._start + max(start, stop))
            return self._rows(self._start, self._start + size)[index]
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("history index out of range")
        return self._row(self._start + index)

    def __delitem__(self, index: slice) -> None:
        """Delete a prefix (``del history[:cut]``) or a suffix (``del history[index:]``).

        Raises:
            TypeError: ``index`` is not a slice of step 1 from the start or to the end.
        """
        if not isinstance(index, slice):
            raise TypeError("a history deletes slices only")
        size = len(self)
        start, stop, step = index.indices(size)
        if not range(start, stop, step):
            return
        if step != 1 or (start > 0 and stop < size):
            raise TypeError("a history deletes a prefix or a suffix only")
        if start == 0:
            self._drop_front(stop)
        else:
            self._truncate(self._start + start)

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows(self._start, len(self._ts)))

    def __repr__(self) -> str:
        return f"<History of {len(self)} readings>"

    def bisect_time(self, ts: int) -> int:
        """``bisect_left(history, ts, key=itemgetter(0))`` as on the list, without building rows."""
        # A view of the live part: the same probes as on the list, so the same answer even if
        # the times were not in order.
        with memoryview(self._ts) as column, column[self._start :] as live:
            return bisect_left(live, ts - self._t0)

    # -- inside ---------------------------------------------------------------------------------

    def _row(self, at: int) -> Row:
        """The reading at column index ``at``."""
        tag = self._tags[at]
        kind = tag >> 2
        if kind >= _VALUE_ASIDE:
            aside = self._aside[bisect_left(self._aside_at, self._base + at)]
            if kind == _ROW_ASIDE:
                return aside  # type: ignore[no-any-return]
            value = aside
        else:
            value = _DECODE[tag](self._values[at])
        return (
            self._ts[at] + self._t0,
            self._seq[at] + self._s0,
            self._names[self._signals[at]],
            value,
            _QUALITY_OF[tag],
        )

    def _rows(self, lo: int, hi: int) -> list[Row]:
        """The readings at column indexes ``lo`` to ``hi`` (excluded), as tuples, in order."""
        if lo >= hi:
            return []
        tags = self._tags[lo:hi].tobytes()
        values = self._values[lo:hi].tolist()
        # Most values are floats, given back as they are; find the others at C speed.
        odd = tags.translate(_NOT_FLOAT)
        i = odd.find(1)
        while i >= 0:
            values[i] = _DECODE[tags[i]](values[i])
            i = odd.find(1, i + 1)
        at, first = self._aside_at, self._base + lo
        k = bisect_left(at, first)
        end = self._base + hi
        whole = []
        while k < len(at) and at[k] < end:
            i = at[k] - first
            if tags[i] >> 2 == _ROW_ASIDE:
                whole.append((i, self._aside[k]))
            else:
                values[i] = self._aside[k]
            k += 1
        names = self._names
        t0, s0 = self._t0, self._s0
        rows = list(
            zip(
                map(t0.__add__, self._ts[lo:hi]) if t0 else self._ts[lo:hi],
                map(s0.__add__, self._seq[lo:hi]) if s0 else self._seq[lo:hi],
                map(names.__getitem__, self._signals[lo:hi]),
                values,
                map(_QUALITY_OF.__getitem__, tags),
                strict=True,
            )
        )
        for i, row in whole:
            rows[i] = row
        return rows

    def _drop_front(self, count: int) -> None:
        """Delete the first ``count`` readings: move the start; compact now and then."""
        self._start += count
        at = self._aside_at
        if at:
            k = bisect_left(at, self._base + self._start)
            del at[:k]
            del self._aside[:k]
        if self._start * _COMPACT_AT >= len(self._ts):
            self._compact()

    def _truncate(self, at: int) -> None:
        """Delete the readings from column index ``at`` on."""
        for column in (self._ts, self._seq, self._values, self._signals, self._tags):
            del column[at:]
        k = bisect_left(self._aside_at, self._base + at)
        del self._aside_at[k:]
        del self._aside[k:]
        if self._start * _COMPACT_AT >= len(self._ts):
            self._compact()

    def _compact(self) -> None:
        """Free the deleted prefix of the columns."""
        start = self._start
        if not start:
            return
        for column in (self._ts, self._seq, self._values, self._signals, self._tags):
            del column[:start]
        self._base += start
        self._start = 0
        # What is left may fit narrow columns again (a wide one: readings spanning a long time).
        if self._ts.typecode == "q":
            self._ts, self._t0 = _refit(self._ts, self._t0)
        if self._seq.typecode == "q":
            self._seq, self._s0 = _refit(self._seq, self._s0)


def _refit(column: array[int], base: int, new: int | None = None) -> tuple[array[int], int]:
    """``column`` (offsets from ``base``) rebuilt to also hold ``new``: narrow if it can, else wide.

    Narrow ('i'): offsets from the smallest value, when every value (and ``new``) is within
    2**31 - 1 of it; else wide ('q'): the values themselves, base 0. The values are unchanged,
    ``new`` is not added.

    Raises:
        TypeError: ``new`` is not an int (before anything is rebuilt).
    """
    values = [v + base for v in column]
    if new is not None:
        values.append(operator.index(new))
    low = min(values, default=0)
    kept = values[: len(column)]
    if max(values, default=0) - low in _NARROW:
        return array("i", [v - low for v in kept]), low
    return array("q", kept), 0
