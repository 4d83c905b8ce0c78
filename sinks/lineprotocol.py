"""Points as InfluxDB line protocol (the v2 write API's body), one line per point.

Escaping follows the InfluxDB 2 line-protocol reference: in the measurement a comma and a space
are escaped; in tag keys, tag values and field keys also an equals sign; in string field values a
double quote; and a backslash everywhere, so that a name ending in a backslash cannot swallow the
separator after it. Tags are written sorted by key (the order InfluxDB stores them in), empty
tag values are left out (the protocol cannot express them), and the time is an integer at the
chosen precision, truncated towards the past so a point never moves into the next second or
window. What the protocol cannot carry at all (a newline in any name or value, NaN or infinity, an
integer outside 64 bits, a point without fields) raises :class:`Unencodable` naming the part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Literal

from plantstream.records import EPOCH, FieldValue, Point, ReadingRow, reading_row_point
from plantstream.textcache import remember

__all__ = ["PRECISIONS", "Precision", "Unencodable", "encode", "encode_many", "timestamp"]

Precision = Literal["s", "ms", "us", "ns"]
PRECISIONS: tuple[Precision, ...] = ("s", "ms", "us", "ns")

_ONE_US = timedelta(microseconds=1)
_INT64 = 2**63
# Microseconds per unit of each precision (ns is finer than a datetime and multiplies instead).
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}

_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ "})
_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", "=": "\\="})
_STRING = str.maketrans({"\\": "\\\\", '"': '\\"'})


class Unencodable(ValueError):
    """A point that line protocol cannot express; the message names the part and why."""


def timestamp(point: Point, precision: Precision) -> int:
    """The point's time as an integer count of ``precision`` units since the epoch (floor)."""
    micros = (point.time - EPOCH) // _ONE_US
    if precision == "ns":
        return micros * 1000
    return micros // _US_PER_UNIT[precision]


def encode(point: Point, precision: Precision) -> str:
    """One line of line protocol for ``point`` (no trailing newline).

    Raises:
        Unencodable: the point has something line protocol cannot carry.
    """
    groups, failed = encode_many((point,), lambda _: precision)
    if failed:
        raise failed[0][1]
    return groups[precision][0]


def encode_many(
    points: Iterable[Point | ReadingRow], precision_of: Callable[[str], Precision]
) -> tuple[dict[Precision, list[str]], list[tuple[Point, Unencodable]]]:
    """Lines for ``points``, grouped by the precision of their measurement, each group in order.

    A :data:`~plantstream.records.ReadingRow` is written as its ``reading`` point would be.

    Returns:
        The lines per precision, and the points that line protocol cannot carry with the reason
        (a row as its point).
    """
    groups: dict[Precision, list[str]] = {}
    failed: list[tuple[Point, Unencodable]] = []
    # Many points of a batch share their time: its text is made once.
    measurement_then: str | None = None
    precision: Precision = "s"
    lines: list[str] = []
    time_then: datetime | int | None = None
    precision_then: Precision | None = None
    stamp = ""
    for item in points:
        if isinstance(item, tuple):
            # A raw reading's row: its series and fields straight from the row, its time from
            # the row's microseconds; a row the fast path declines is judged as its point.
            measurement = "reading"
            if measurement != measurement_then:
                precision = precision_of(measurement)
                lines = groups.setdefault(precision, [])
                measurement_then = measurement
            head = _row_head(item)
            if head is not None:
                micros = item[0]
                if micros != time_then or precision != precision_then:
                    stamp = str(micros * 1000 if precision == "ns" else micros // _US_PER_UNIT[precision])
                    time_then, precision_then = micros, precision
                lines.append(f"{head} {stamp}")
                continue
            point = reading_row_point(item)
        else:
            point = item
        measurement = point.measurement
        if measurement != measurement_then:
            precision = precision_of(measurement)
            lines = groups.setdefault(precision, [])
            measurement_then = measurement
        head = _reading_head(point.tags, point.fields) if measurement == "reading" else None
        if head is None:
            try:
                head = _head(measurement, point.tags, point.fields)
            except Unencodable as exc:
                failed.append((point, exc))
                continue
        time = point.time
        if time != time_then or precision != precision_then:
            stamp = str(timestamp(point, precision))
            time_then, precision_then = time, precision
        lines.append(f"{head} {stamp}")
    return {precision: group for precision, group in groups.items() if group}, failed


def _head(measurement: str, tags: dict[str, str], fields: dict[str, FieldValue]) -> str:
    """A line without its time: the series (measurement and tags), a space and the field set."""
    # A pipeline writes the same few series, field names and string values over and over: they
    # are remembered instead of redone.
    key = (measurement, *tags.items())
    prefix = _PREFIXES.get(key)
    if prefix is None:
        prefix = remember(_PREFIXES, key, _prefix(measurement, tags))
    text = None
    for name, value in fields.items():
        escaped = _FIELD_KEYS.get(name)
        if escaped is None:
            escaped = remember(_FIELD_KEYS, name, _name(name, _KEY, "field key") + "=")
        kind = value.__class__
        if kind is float:
            # Infinity minus itself and NaN minus anything are NaN; any finite number gives 0.
            if value - value != 0.0:  # type: ignore[operator]
                raise Unencodable(f"field {name!r}: {value} is not a finite number")
            part = escaped + repr(value)
        elif kind is str:
            quoted = _STRINGS.get(value)  # type: ignore[arg-type]
            if quoted is None:
                quoted = remember(_STRINGS, str(value), _value(name, value))
            part = escaped + quoted
        else:
            part = escaped + _value(name, value)
        text = part if text is None else f"{text},{part}"
    if text is None:
        raise Unencodable("a point needs at least one field")
    return f"{prefix} {text}"


_PREFIXES: dict[tuple[object, ...], str] = {}
_FIELD_KEYS: dict[str, str] = {}
_STRINGS: dict[str, str] = {}


# The raw readings' points (streams.points.reading_point) are most of what a pipeline writes, and
# all have one shape: these four tags, and fields in one of these orders. Their lines are made
# here without the generic walk over tags and fields; a point of any other shape, or with a value
# the protocol refuses, is left to the generic path, which makes the line or names the refusal.
_READING_PREFIXES: dict[tuple[str, str, str, str], str] = {}
_READING_SHAPES: dict[tuple[str, ...], tuple[str | None, bool]] = {
    ("quality",): (None, False),
    ("quality", "status_code"): (None, True),
    ("quality", "value"): ("value", False),
    ("quality", "value", "status_code"): ("value", True),
    ("quality", "value_str"): ("value_str", False),
    ("quality", "value_str", "status_code"): ("value_str", True),
}
_QUALITY_FIELDS = {quality: f'quality="{quality}"' for quality in ("good", "uncertain", "bad")}


def _reading_head(tags: dict[str, str], fields: dict[str, FieldValue]) -> str | None:
    """Series and fields of a ``reading`` point of the usual shape; ``None`` for the generic path."""
    if len(tags) != 4:
        return None
    site = tags.get("site")
    line = tags.get("line")
    machine = tags.get("machine")
    signal = tags.get("signal")
    if site is None or line is None or machine is None or signal is None:
        return None
    shape = _READING_SHAPES.get(tuple(fields))
    if shape is None:
        return None
    name, has_code = shape
    value = None if name is None else fields[name]
    field_set = _reading_fields(fields["quality"], name, value, fields["status_code"] if has_code else None)
    if field_set is None:
        return None
    prefix = _reading_prefix(site, line, machine, signal)
    return None if prefix is None else f"{prefix} {field_set}"


def _row_head(row: ReadingRow) -> str | None:
    """:func:`_reading_head` of a raw reading's row; ``None`` for the generic path."""
    _, _, site, line, machine, signal, value, quality, status_code = row
    name = None if value is None else "value_str" if isinstance(value, str) else "value"
    field_set = _reading_fields(quality, name, value, status_code)
    if field_set is None:
        return None
    prefix = _reading_prefix(site, line, machine, signal)
    return None if prefix is None else f"{prefix} {field_set}"


def _reading_prefix(site: str, line: str, machine: str, signal: str) -> str | None:
    """The series of a ``reading`` point; ``None`` where a name needs the generic path's refusal."""
    key = (site, line, machine, signal)
    prefix = _READING_PREFIXES.get(key)
    if prefix is None:
        try:
            tags = {"site": site, "line": line, "machine": machine, "signal": signal}
            prefix = remember(_READING_PREFIXES, key, _prefix("reading", tags))
        except Unencodable:
            return None
    return prefix


def _reading_fields(
    quality: FieldValue, name: str | None, value: FieldValue | None, code: FieldValue | None
) -> str | None:
    """The field set of a ``reading`` point; ``None`` where a value needs the generic path.

    ``quality``, then the field ``name`` (``value`` or ``value_str``) if given, then
    ``status_code`` if given.
    """
    text = _QUALITY_FIELDS.get(quality)  # type: ignore[arg-type]
    if text is None:
        return None
    if name is not None:
        text = _reading_value(name, value, text)  # type: ignore[arg-type]
        if text is None:
            return None
    if code is not None:
        if code.__class__ is not int or not -_INT64 <= code < _INT64:
            return None
        text = f"{text},status_code={code}i"
    return text


def _reading_value(name: str, value: FieldValue, quality: str) -> str | None:
    """``quality`` and the value field, or ``None`` where the generic path must judge the value."""
    kind = value.__class__
    if name == "value" and kind is float:
        if value - value != 0.0:  # type: ignore[operator]  # NaN or infinity: refused generically
            return None
        return f"{quality},value={value!r}"
    if name == "value_str" and kind is str:
        quoted = _STRINGS.get(value)  # type: ignore[arg-type]
        if quoted is None:
            try:
                quoted = remember(_STRINGS, str(value), _value(name, value))
            except Unencodable:
                return None
        return f"{quality},value_str={quoted}"
    return None


def _prefix(measurement: str, tags: dict[str, str]) -> str:
    """Measurement and tag set, escaped, tags sorted by key, empty values left out."""
    parts = [_name(measurement, _MEASUREMENT, "measurement")]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue
        parts.append(f",{_name(key, _KEY, 'tag key')}={_name(value, _KEY, f'tag {key!r}')}")
    return "".join(parts)


def _name(text: str, table: dict[int, str], what: str) -> str:
    if not text:
        raise Unencodable(f"{what} is empty")
    if "\n" in text or "\r" in text:
        raise Unencodable(f"{what} {text!r} contains a line break")
    return text.translate(table)


def _value(key: str, value: bool | int | float | str) -> str:
    kind = value.__class__
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise Unencodable(f"field {key!r}: {value} is not a finite number")
        # repr is the shortest text that parses back to the same double.
        return repr(value)
    # bool before int: True is an int to Python, a boolean to InfluxDB.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise Unencodable(f"field {key!r}: {value} does not fit a 64-bit integer")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unencodable(f"field {key!r}: {value} is not a finite number")
        # repr is the shortest text that parses back to the same double.
        return repr(value)
    if "\n" in value or "\r" in value:
        raise Unencodable(f"field {key!r}: a string value cannot contain a line break")
    if "\\" in value or '"' in value:
        value = value.translate(_STRING)
    return f'"{value}"'
