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
from datetime import timedelta
from typing import Literal

from plantstream.records import EPOCH, Point

__all__ = ["PRECISIONS", "Precision", "Unencodable", "encode", "timestamp"]

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
    tags = point.tags
    # A pipeline writes the same few series over and over: their escaped prefixes are remembered.
    key = (point.measurement, *tags.items())
    prefix = _PREFIXES.get(key)
    if prefix is None:
        prefix = _prefix(point.measurement, tags)
        if len(_PREFIXES) >= _CACHE_SIZE:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    fields = point.fields
    if not fields:
        raise Unencodable("a point needs at least one field")
    parts = []
    for name, value in fields.items():
        escaped = _FIELD_KEYS.get(name)
        if escaped is None:
            escaped = _name(name, _KEY, "field key") + "="
            if len(_FIELD_KEYS) >= _CACHE_SIZE:
                _FIELD_KEYS.clear()
            _FIELD_KEYS[name] = escaped
        parts.append(escaped + _value(name, value))
    return f"{prefix} {','.join(parts)} {timestamp(point, precision)}"


_CACHE_SIZE = 4096
_PREFIXES: dict[tuple[str, ...] | tuple[object, ...], str] = {}
_FIELD_KEYS: dict[str, str] = {}


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
