"""The record contracts that travel between stages: :class:`Reading` in, :class:`Point` out.

Both are frozen pydantic models that reject unknown fields, and both have a one-line JSON form
(``to_json`` / ``from_json``) used by ``replay``, ``tail --json``, the file sink and Kafka topics.
All timestamps are timezone-aware and normalised to UTC; a naive timestamp is an error, because
guessing the zone of a PLC clock is how peer tools end up hours off (docs/references.md [FIELD-TIMESTAMPS]).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from types import MemberDescriptorType
from typing import Annotated, Any, NamedTuple

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from plantstream.textcache import remember

__all__ = [
    "EPOCH",
    "QUALITY_TEXT",
    "DeadLetter",
    "FieldValue",
    "Point",
    "Quality",
    "Reading",
    "ReadingRow",
    "ReadingTuple",
    "RecordError",
    "Value",
    "as_reading",
    "decode_reading",
    "reading_row_json",
    "reading_row_point",
    "reading_tuple",
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


QUALITY_TEXT: dict[Quality, str] = {quality: quality.value for quality in Quality}
"""Each quality as a plain str: cheaper than ``.value`` (a descriptor), and unlike the member
itself not tracked by the garbage collector, so tuples holding it can be untracked."""


class RecordError(ValueError):
    """A record could not be decoded; the message names the field and the reason."""


def _describe(error: ValidationError) -> str:
    """One short phrase per bad field; the alternatives of a union are summed up, not listed."""
    by_field: dict[str, str] = {}
    for item in error.errors(include_url=False):
        loc = item["loc"]
        where = str(loc[0]) if loc else "record"
        if where == "value" and len(loc) > 1:
            by_field[where] = "must be a number, a string or true/false"
            continue
        by_field.setdefault(where, str(item["msg"]).removeprefix("Value error, "))
    return "; ".join(f"{where}: {message}" for where, message in by_field.items())


def _slot_setter(name: str) -> Callable[[BaseModel, Any], None]:
    """How the trusted constructors fill one of pydantic's per-instance slots.

    The slot's own descriptor sets it at a fraction of ``object.__setattr__``'s cost (the name
    is not looked up per call); a pydantic without that slot gets ``object.__setattr__``.
    """
    descriptor = BaseModel.__dict__.get(name)
    if isinstance(descriptor, MemberDescriptorType):
        return descriptor.__set__
    return lambda instance, value: object.__setattr__(instance, name, value)


_SET_FIELDS_SET = _slot_setter("__pydantic_fields_set__")
_SET_EXTRA = _slot_setter("__pydantic_extra__")
_SET_PRIVATE = _slot_setter("__pydantic_private__")
_SET_STATE = object.__setattr__  # the models are frozen; this is how pydantic's own constructors fill them
_NEW = object.__new__

_TRUSTED_FIELDS = frozenset(("ts", "machine", "signal", "value", "source", "seq", "ingest_ts"))
_ALL_FIELDS = _TRUSTED_FIELDS | {"quality", "status_code", "server_ts"}
_POINT_FIELDS = frozenset(("measurement", "tags", "fields", "time"))


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
    value: Value | None = Field(description="None only with quality bad: a source that has no value")
    quality: Quality = Quality.GOOD
    status_code: int | None = Field(default=None, ge=0, le=0xFFFFFFFF, description="raw OPC UA StatusCode")
    server_ts: UtcDatetime | None = None
    ingest_ts: UtcDatetime | None = None
    source: str | None = None
    seq: int | None = Field(default=None, ge=0)
    backfilled: bool = Field(
        default=False,
        description="read back from the server's history after an outage (left out of JSON when false)",
    )

    @model_validator(mode="after")
    def _value_unless_bad(self) -> Reading:
        if self.value is None and self.quality is not Quality.BAD:
            raise ValueError("value: only a reading of quality bad may have no value")
        return self

    @classmethod
    def trusted(
        cls,
        *,
        ts: datetime,
        machine: str,
        signal: str,
        value: Value | None,
        source: str,
        seq: int,
        ingest_ts: datetime,
        quality: Quality = Quality.GOOD,
        status_code: int | None = None,
        server_ts: datetime | None = None,
        backfilled: bool = False,
    ) -> Reading:
        """A reading built from values a decoder has already checked, without validation.

        For the collectors' hot paths, where validation cost more than everything else per
        message. The caller guarantees what validation would check: ``ts``, ``ingest_ts`` and
        ``server_ts`` are UTC datetimes, ``machine`` and ``signal`` are not empty, ``value`` is
        exactly a bool, an int, a float or a str (not a subclass), and ``None`` only with quality
        bad, ``status_code`` is a 32-bit unsigned integer and ``seq`` >= 0. The result equals
        ``Reading(...)`` of the same arguments (a property test holds the two together).
        """
        reading = _NEW(cls)
        _SET_STATE(
            reading,
            "__dict__",
            {
                "ts": ts,
                "machine": machine,
                "signal": signal,
                "value": value,
                "quality": quality,
                "status_code": status_code,
                "server_ts": server_ts,
                "ingest_ts": ingest_ts,
                "source": source,
                "seq": seq,
                "backfilled": backfilled,
            },
        )
        fields_set = _TRUSTED_FIELDS
        if quality is not Quality.GOOD or status_code is not None or server_ts is not None:
            fields_set = _ALL_FIELDS
        if backfilled:
            fields_set = fields_set | {"backfilled"}
        _SET_FIELDS_SET(reading, set(fields_set))
        _SET_EXTRA(reading, None)
        _SET_PRIVATE(reading, None)
        return reading

    def to_json(self) -> str:
        """Encode as one JSON line (no newline), leaving out fields that are not set."""
        # Optional fields that are not set are left out, and so is ``backfilled`` when false (the
        # JSON of a live reading is what it was before the field existed); the missing value of a
        # bad reading is null.
        data = {
            name: v
            for name, v in self.__dict__.items()
            if (v is not None and v is not False) or name == "value"
        }
        try:
            # orjson writes what pydantic's serializer writes for these types (a property test
            # holds them together) in a quarter of the time: every reading is encoded once.
            return orjson.dumps(data, option=orjson.OPT_UTC_Z).decode()
        except orjson.JSONEncodeError:  # an integer value beyond 64 bits
            unset = {
                name for name, v in self.__dict__.items() if (v is None or v is False) and name != "value"
            }
            return self.model_dump_json(exclude=unset)

    @classmethod
    def from_json(cls, line: str | bytes) -> Reading:
        """Decode one JSON line; raise :class:`RecordError` naming each bad field."""
        try:
            return cls.model_validate_json(line)
        except ValidationError as exc:
            raise RecordError(_describe(exc)) from None


class ReadingTuple(NamedTuple):
    """A reading as a collector hands it to the embedded runtime: :class:`Reading`'s fields in a tuple.

    The same fields, in the same order and by the same names, so a consumer that only reads them
    takes either. A collector builds one where its decoder has already checked what validation
    would (the conditions of :meth:`Reading.trusted`, which the collectors' hot paths called per
    value before): a tuple costs about a seventh of a trusted :class:`Reading` (0.11 against
    0.79 µs here; a Reading also carries a dict and a set of the fields set). Build one on a hot
    path with :func:`reading_tuple`, which skips the keyword handling of the class call.
    :meth:`reading` gives the :class:`Reading` to a consumer that needs one (the live views), and
    :meth:`to_json` the JSON line the Reading would write (a dead letter, the kafka readings topic).
    """

    ts: datetime
    machine: str
    signal: str
    value: Value | None
    quality: Quality
    status_code: int | None
    server_ts: datetime | None
    ingest_ts: datetime
    source: str
    seq: int
    backfilled: bool

    def reading(self) -> Reading:
        """The :class:`Reading` of these fields, equal to ``Reading(...)`` of them."""
        return Reading.trusted(
            ts=self.ts,
            machine=self.machine,
            signal=self.signal,
            value=self.value,
            quality=self.quality,
            status_code=self.status_code,
            server_ts=self.server_ts,
            ingest_ts=self.ingest_ts,
            source=self.source,
            seq=self.seq,
            backfilled=self.backfilled,
        )

    def to_json(self) -> str:
        """:meth:`Reading.to_json` of the reading these fields make, without making it."""
        data = {
            name: v
            for name, v in zip(self._fields, self, strict=True)
            if (v is not None and v is not False) or name == "value"
        }
        try:
            return orjson.dumps(data, option=orjson.OPT_UTC_Z).decode()
        except orjson.JSONEncodeError:  # an integer value beyond 64 bits: as the Reading writes it
            return self.reading().to_json()


reading_tuple: Callable[
    [tuple[datetime, str, str, Value | None, Quality, int | None, datetime | None, datetime, str, int, bool]],
    ReadingTuple,
] = partial(tuple.__new__, ReadingTuple)
"""``reading_tuple((ts, machine, ..., backfilled))``: a :class:`ReadingTuple` of its eleven fields in
order, at a tuple's cost (the class call parses keywords in Python; this does not check the count,
so a caller passes all eleven)."""


def as_reading(reading: Reading | ReadingTuple) -> Reading:
    """``reading`` as a :class:`Reading`: itself, or the one its tuple stands for."""
    return reading if isinstance(reading, Reading) else reading.reading()


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

    @classmethod
    def trusted(
        cls, *, measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], time: datetime
    ) -> Point:
        """A point built by the calculators from values they made, without validation.

        The caller guarantees what validation would check: ``measurement`` is not empty, tags
        are strings, field values are bools, ints, floats or strings, and ``time`` is a UTC
        datetime. The result equals ``Point(...)`` of the same arguments (a property test holds
        the two together); it costs a fraction of pydantic's ``model_construct``.
        """
        point = _NEW(cls)
        _SET_STATE(
            point, "__dict__", {"measurement": measurement, "tags": tags, "fields": fields, "time": time}
        )
        _SET_FIELDS_SET(point, set(_POINT_FIELDS))
        _SET_EXTRA(point, None)
        _SET_PRIVATE(point, None)
        return point

    def to_json(self) -> str:
        """Encode as one JSON line (no newline)."""
        data = self.__dict__
        try:
            # orjson writes exactly what pydantic's serializer writes for these types (a property
            # test holds them together), four times as fast; every point is written at least once.
            return orjson.dumps(
                {
                    "measurement": data["measurement"],
                    "tags": data["tags"],
                    "fields": data["fields"],
                    "time": data["time"],
                },
                option=orjson.OPT_UTC_Z,
            ).decode()
        except orjson.JSONEncodeError:  # an integer field beyond 64 bits
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


class DeadLetter(BaseModel):
    """Input a stage could not use, kept with its reason instead of being lost.

    ``raw`` is the input as text (bytes that are not UTF-8 are escaped); ``where`` says what it
    came from: a topic, a node id, a file line.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    ts: UtcDatetime
    source: str
    where: str
    reason: str
    error: str
    raw: str

    def to_json(self) -> str:
        """Encode as one JSON line (no newline)."""
        return self.model_dump_json()


ReadingRow = tuple[int, datetime, str, str, str, str, float | str | None, str, int | None]
"""A raw reading on its way to the sinks as a ``reading`` point, without building the :class:`Point`.

(time in µs since the epoch, the same time as a datetime, site, line, machine, signal, value,
quality, status_code): the value as the point's field holds it (a float for numbers and flags, a
str for text, ``None`` for a bad reading without one). A pipeline writes one of these per reading,
most of all it writes, so sinks encode them directly (:func:`reading_row_json`,
``sinks.lineprotocol.encode_many``); :func:`reading_row_point` makes the equal :class:`Point` for
any other consumer.
"""


def reading_row_json(row: ReadingRow) -> str:
    """The JSON line of ``row``'s ``reading`` point: exactly what ``Point.to_json`` writes for it."""
    _, time, site, line, machine, signal, value, quality, status_code = row
    key = (site, line, machine, signal)
    head = _ROW_HEADS.get(key)
    if head is None:
        head = remember(_ROW_HEADS, key, _row_json_head(site, line, machine, signal))
    stamp = _ROW_TIMES.get(time)
    if stamp is None:
        stamp = remember(_ROW_TIMES, time, orjson.dumps(time, option=orjson.OPT_UTC_Z).decode())
    text = _ROW_QUALITIES.get(quality)
    if text is None:
        text = orjson.dumps(quality).decode()
    if value is not None:
        name = ',"value_str":' if isinstance(value, str) else ',"value":'
        text = f"{text}{name}{orjson.dumps(value).decode()}"
    if status_code is not None:
        try:
            text = f'{text},"status_code":{orjson.dumps(status_code).decode()}'
        except orjson.JSONEncodeError:  # beyond 64 bits, as Point.to_json falls back for
            return reading_row_point(row).to_json()
    return f'{head}{text}}},"time":{stamp}}}'


def _row_json_head(site: str, line: str, machine: str, signal: str) -> str:
    tags = {"site": site, "line": line, "machine": machine, "signal": signal}
    prefix = orjson.dumps({"measurement": "reading", "tags": tags}).decode()
    return prefix[:-1] + ',"fields":{"quality":'


def reading_row_point(row: ReadingRow) -> Point:
    """The ``reading`` point of ``row``, equal to what ``streams.points.reading_point`` makes.

    Tags site, line, machine and signal; fields ``quality``, then ``value`` (a number) or
    ``value_str`` (text) where there is a value, then ``status_code`` where there is one.
    """
    _, time, site, line, machine, signal, value, quality, status_code = row
    fields: dict[str, FieldValue] = {"quality": quality}
    if value is not None:
        fields["value_str" if isinstance(value, str) else "value"] = value
    if status_code is not None:
        fields["status_code"] = status_code
    tags = {"site": site, "line": line, "machine": machine, "signal": signal}
    return Point.trusted(measurement="reading", tags=tags, fields=fields, time=time)


# Rows come many to a series and to a time (every tag of a sampling tick): their texts are kept.
_ROW_HEADS: dict[tuple[str, str, str, str], str] = {}
_ROW_TIMES: dict[datetime, str] = {}
_ROW_QUALITIES = {quality.value: f'"{quality.value}"' for quality in Quality}


_ONE_US = timedelta(microseconds=1)
_READING_KEYS = frozenset(Reading.model_fields)
_PLAIN_KEYS = frozenset(("ts", "machine", "signal", "value", "quality", "status_code"))
"""The fields the bulk decoder returns: a line with no others has no extras to check."""
_QUALITIES = frozenset(("good", "uncertain", "bad"))
_VALUE_TYPES = (int, float, str, bool)
_STATUS_MAX = 0xFFFFFFFF
_MISSING = object()
# Lengths of the canonical UTC forms: seconds, milliseconds, microseconds, each with a trailing Z.
_PLAIN_TS_LENGTHS = frozenset((20, 24, 27))


def decode_reading(line: str | bytes) -> tuple[int, str, str, Value | None, str, int | None]:
    """Decode one JSON line into (ts in µs since the epoch, machine, signal, value, quality, status_code).

    The same contract as :meth:`Reading.from_json`, for bulk readers that never need the object
    (``replay``, ``process``): the shape the collectors write (canonical UTC timestamps such as
    ``2026-03-02T08:00:00.250Z``, exact JSON types) is checked and decoded directly, in about
    half the time; anything else goes through :class:`Reading`, which accepts or rejects it with
    the exact error. Property tests hold the two together.

    Raises:
        RecordError: as :meth:`Reading.from_json`.
    """
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        data = None
    # The plain fields alone (the common case) are among the model's: one subset check then.
    if data.__class__ is dict and ((plain := data.keys() <= _PLAIN_KEYS) or data.keys() <= _READING_KEYS):
        ts = _canonical_us(data.get("ts"))
        machine = data.get("machine")
        signal = data.get("signal")
        value = data.get("value", _MISSING)
        quality = data.get("quality", "good")
        status_code = data.get("status_code")
        if (
            ts is not None
            and machine.__class__ is str
            and machine
            and signal.__class__ is str
            and signal
            and quality.__class__ is str
            and quality in _QUALITIES
            and (value.__class__ in _VALUE_TYPES or (value is None and quality == "bad"))
            and (status_code is None or (status_code.__class__ is int and 0 <= status_code <= _STATUS_MAX))
            and (plain or _extras_valid(data))
        ):
            return ts, machine, signal, value, quality, status_code
    reading = Reading.from_json(line)
    return (
        (reading.ts - EPOCH) // _ONE_US,
        reading.machine,
        reading.signal,
        reading.value,
        reading.quality.value,
        reading.status_code,
    )


def _extras_valid(data: dict[str, Any]) -> bool:
    """Whether the fields a bulk reader does not return (source, seq, times, backfilled) are valid."""
    seq = data.get("seq")
    source = data.get("source")
    ingest_ts = data.get("ingest_ts")
    server_ts = data.get("server_ts")
    backfilled = data.get("backfilled", False)
    return (
        backfilled.__class__ is bool
        and (seq is None or (seq.__class__ is int and seq >= 0))
        and (source is None or source.__class__ is str)
        and (ingest_ts is None or _canonical_us(ingest_ts) is not None)
        and (server_ts is None or _canonical_us(server_ts) is not None)
    )


def _canonical_us(ts: Any) -> int | None:
    """Microseconds since the epoch of a canonical UTC timestamp; ``None`` for anything else.

    Canonical: ``YYYY-MM-DDTHH:MM:SS`` with no fraction, or 3 or 6 fraction digits, and a
    trailing ``Z``. Every other form the model may accept is left to it, so the bulk decoder never
    accepts what the model refuses.
    """
    if ts.__class__ is not str or len(ts) not in _PLAIN_TS_LENGTHS:
        return None
    text: str = ts
    # Whole seconds are parsed once and remembered: readings arrive many to a second.
    second = _SECONDS.get(text[:19])
    # Milliseconds, as the collectors write them: a lookup of the remembered tail too.
    millis = _MILLIS.get(text[19:])
    if second is not None and millis is not None:
        return second + millis
    return _other_canonical_us(text, second)


def _other_canonical_us(text: str, second: int | None) -> int | None:
    """:func:`_canonical_us` of a timestamp of a plain length, but not a remembered second with milliseconds.

    ``second`` is its whole second if remembered.
    """
    if text[-1] != "Z" or text[19] not in "Z.":
        return None
    if second is None:
        second = _parse_second(text[:19])
        if second is None:
            return None
    if len(text) == 20:
        return second
    fraction = text[20:-1]
    if not (fraction.isdigit() and fraction.isascii()):
        return None
    return second + int(fraction) * (1000 if len(fraction) == 3 else 1)


_SECONDS: dict[str, int] = {}
_MILLIS = {f".{ms:03d}Z": ms * 1000 for ms in range(1000)}
"""A canonical timestamp's millisecond tail (``.250Z``) to its microseconds."""


def _parse_second(head: str) -> int | None:
    """Microseconds since the epoch of ``YYYY-MM-DDTHH:MM:SS`` in UTC, remembered; ``None`` if invalid.

    Only this exact layout is accepted (``fromisoformat`` alone would also take ISO basic and week
    forms that the model refuses); a remembered second therefore never needs checking again.
    """
    if not (head[4] == head[7] == "-" and head[10] == "T" and head[13] == head[16] == ":"):
        return None
    try:
        moment = datetime.fromisoformat(head + "+00:00")
    except ValueError:
        return None
    if len(_SECONDS) >= 4096:
        _SECONDS.clear()
    second = _SECONDS[head] = (moment - EPOCH) // _ONE_US
    return second
