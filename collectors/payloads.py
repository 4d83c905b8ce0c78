"""Payload decoders for MQTT: JSON with dotted paths, and bare numbers. Pure: bytes in, values out.

Each raises :class:`PayloadError` with a short ``reason`` (for counting) and a message naming the
field; the collector dead-letters the message and goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from plantstream.plant.schema import JsonField, JsonTimestamp
from plantstream.records import to_utc

__all__ = ["PayloadError", "Sample", "decode_json", "decode_number"]


class PayloadError(ValueError):
    """A payload that cannot become readings.

    ``reason`` is one of not_json, missing_field, wrong_type, bad_timestamp, not_a_number.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Sample:
    """One value for one signal at one time."""

    signal: str
    value: float | int | bool | str
    ts: datetime


def _lookup(document: Any, path: str) -> Any:
    node = document
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise PayloadError("missing_field", f"no field {path!r} in the payload")
    return node


def _timestamp(document: Any, spec: JsonTimestamp) -> datetime:
    raw = _lookup(document, spec.path)
    try:
        if spec.format == "iso8601":
            if not isinstance(raw, str):
                raise TypeError
            return to_utc(datetime.fromisoformat(raw))
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise TypeError
        divisor = {"epoch_s": 1, "epoch_ms": 1e3, "epoch_ns": 1e9}[spec.format]
        return datetime.fromtimestamp(raw / divisor, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError) as exc:
        detail = f": {exc}" if str(exc) else ""
        raise PayloadError(
            "bad_timestamp", f"field {spec.path!r} = {raw!r} is not a {spec.format} timestamp{detail}"
        ) from None


def decode_json(
    payload: bytes, fields: list[JsonField], timestamp: JsonTimestamp | None, received: datetime
) -> list[Sample]:
    """Take ``fields`` out of a JSON payload, scaled, at the payload's time (or ``received``)."""
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise PayloadError("not_json", f"not JSON: {exc}") from None
    ts = _timestamp(document, timestamp) if timestamp is not None else received
    samples = []
    for field in fields:
        value = _lookup(document, field.path)
        if isinstance(value, bool | str) and field.scale == 1.0:
            samples.append(Sample(field.signal, value, ts))  # a state code or a product name
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            if field.scale != 1.0:
                try:
                    value = value * field.scale
                except OverflowError:  # an int too large for a float
                    value = math.inf
                if not math.isfinite(value):
                    raise PayloadError(
                        "wrong_type", f"field {field.path!r} is out of range after scaling by {field.scale}"
                    )
            samples.append(Sample(field.signal, value, ts))
        else:
            raise PayloadError("wrong_type", f"field {field.path!r} = {value!r} is not a number")
    return samples


def decode_number(payload: bytes) -> float | int:
    """A bare number (``42``, ``17.5``) as the whole payload."""
    text = payload.strip()
    try:
        value: float | int = int(text) if text.lstrip(b"-+").isdigit() else float(text)
    except (ValueError, UnicodeDecodeError):
        raise PayloadError("not_a_number", f"payload {payload[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise PayloadError("not_a_number", f"payload {payload[:40]!r} is not a finite number")
    return value
