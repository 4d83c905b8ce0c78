"""The record contracts that travel between stages: :class:`Reading` in, :class:`Point` out.

Both are frozen pydantic models that reject unknown fields, and both have a one-line JSON form
(``to_json`` / ``from_json``) used by ``replay``, ``tail --json``, the file sink and Kafka topics.
All timestamps are timezone-aware and normalised to UTC; a naive timestamp is an error, because
guessing the zone of a PLC clock is how peer tools end up hours off (shared/peers.md §3c).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "EPOCH",
    "FieldValue",
    "Point",
    "Quality",
    "Reading",
    "RecordError",
    "Value",
    "to_utc",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""The Unix epoch, timezone-aware; event times in the core are integer microseconds since it."""


def to_utc(moment: datetime) -> datetime:
    """Return ``moment`` converted to UTC; raise ``ValueError`` if it has no time zone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must carry a time zone (e.g. a trailing Z)")
    return moment.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(to_utc)]

Value = bool | int | float | str
"""What a tag can carry: a number, a flag, or a code or product name."""

FieldValue = bool | int | float | str
"""What an InfluxDB field can carry."""


class Quality(StrEnum):
    """The OPC UA StatusCode class of a sample; MQTT payloads are ``good`` unless they say otherwise."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


class RecordError(ValueError):
    """A record could not be decoded; the message names the field and the reason."""


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "record"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class Reading(BaseModel):
    """One sample of one tag of one machine, as a collector saw it.

    ``ts`` is the time the value is about (the source timestamp, or the fallback the source's
    timestamp policy chose); ``server_ts`` and ``ingest_ts`` are kept where known so skew can be
    reported. ``seq`` numbers readings per ``source`` so gaps are detectable downstream.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts: UtcDatetime
    machine: str = Field(min_length=1)
    signal: str = Field(min_length=1)
    value: Value
    quality: Quality = Quality.GOOD
    status_code: int | None = Field(default=None, ge=0, le=0xFFFFFFFF, description="raw OPC UA StatusCode")
    server_ts: UtcDatetime | None = None
    ingest_ts: UtcDatetime | None = None
    source: str | None = None
    seq: int | None = Field(default=None, ge=0)

    def to_json(self) -> str:
        """Encode as one JSON line (no newline), leaving out fields that are not set."""
        return self.model_dump_json(exclude_none=True, exclude_defaults=False)

    @classmethod
    def from_json(cls, line: str | bytes) -> Reading:
        """Decode one JSON line; raise :class:`RecordError` naming each bad field."""
        try:
            return cls.model_validate_json(line)
        except ValidationError as exc:
            raise RecordError(_describe(exc)) from None


class Point(BaseModel):
    """One row for a time-series sink, in the InfluxDB data model.

    A point's identity is (measurement, tags, time): writing the same identity again overwrites,
    which is what makes replays, retries and late-data corrections idempotent downstream.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    measurement: str = Field(min_length=1)
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: UtcDatetime

    def to_json(self) -> str:
        """Encode as one JSON line (no newline)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, line: str | bytes) -> Point:
        """Decode one JSON line; raise :class:`RecordError` naming each bad field."""
        try:
            return cls.model_validate_json(line)
        except ValidationError as exc:
            raise RecordError(_describe(exc)) from None

    def identity(self) -> tuple[str, tuple[tuple[str, str], ...], datetime]:
        """Return the (measurement, sorted tags, time) triple that a sink overwrites on."""
        return (self.measurement, tuple(sorted(self.tags.items())), self.time)
