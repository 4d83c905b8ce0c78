"""The record contracts: Reading and Point, their JSON forms, and the bulk decoder."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from plantstream.records import (
    EPOCH,
    Point,
    Quality,
    Reading,
    ReadingTuple,
    RecordError,
    as_reading,
    decode_reading,
    reading_tuple,
)
from streams.points import decoded_reading_point, reading_point

ONE_US = timedelta(microseconds=1)


def test_reading_json_round_trip_and_defaults() -> None:
    line = json.dumps(
        {
            "ts": "2026-03-02T08:00:00Z",
            "machine": "m1",
            "signal": "good_count",
            "value": 18848,
            "quality": "good",
        }
    )
    reading = Reading.from_json(line)
    assert reading.ts == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert reading.value == 18848
    assert isinstance(reading.value, int)
    assert Reading.from_json(reading.to_json()) == reading
    assert json.loads(reading.to_json()) == json.loads(line)
    minimal = Reading.from_json(
        '{"ts": "2026-03-02T08:00:00Z", "machine": "m1", "signal": "s", "value": "running"}'
    )
    assert minimal.quality is Quality.GOOD


def test_reading_timestamps_are_normalised_to_utc_and_must_have_a_zone() -> None:
    local = Reading(
        ts=datetime(2026, 3, 2, 15, tzinfo=timezone(timedelta(hours=7))), machine="m", signal="s", value=1
    )
    assert local.ts == datetime(2026, 3, 2, 8, tzinfo=UTC)
    assert local.ts.tzinfo is UTC
    with pytest.raises(RecordError, match="ts: timestamp must carry a time zone"):
        Reading.from_json('{"ts": "2026-03-02T08:00:00", "machine": "m1", "signal": "s", "value": 1}')


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"ts": "2026-03-02T08:00:00Z", "machine": "m1", "signal": "s"}', "value: Field required"),
        (
            '{"ts": "2026-03-02T08:00:00Z", "machine": "", "signal": "s", "value": 1}',
            "machine: String should",
        ),
        (
            '{"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": [1]}',
            "value: must be a number",
        ),
        (
            '{"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "qual": "good"}',
            "qual: Extra",
        ),
        (
            '{"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "quality": "fine"}',
            "quality:",
        ),
        ("not json", "Invalid JSON"),
    ],
)
def test_bad_readings_name_the_field_and_the_reason(line: str, fragment: str) -> None:
    with pytest.raises(RecordError, match=fragment):
        Reading.from_json(line)
    with pytest.raises(RecordError, match=fragment):
        decode_reading(line)


def test_records_are_frozen() -> None:
    reading = Reading(ts=datetime(2026, 3, 2, tzinfo=UTC), machine="m", signal="s", value=1)
    with pytest.raises(ValidationError):
        reading.value = 2  # type: ignore[misc]


def test_point_round_trip_and_identity() -> None:
    point = Point(
        measurement="oee",
        tags={"site": "demo", "machine": "m1"},
        fields={"oee": 0.7479, "good_count": 18848, "revision": 0},
        time=datetime(2026, 3, 2, 8, tzinfo=UTC),
    )
    assert Point.from_json(point.to_json()) == point
    assert '"time":"2026-03-02T08:00:00Z"' in point.to_json()
    twin = point.model_copy(update={"fields": {"oee": 0.8}, "tags": {"machine": "m1", "site": "demo"}})
    assert twin.identity() == point.identity()
    with pytest.raises(RecordError, match="fields"):
        Point.from_json(
            '{"measurement": "oee", "tags": {}, "fields": {"a": [1]}, "time": "2026-03-02T08:00:00Z"}'
        )


# hypothesis takes naive bounds and adds the zone itself.
NAIVE_MIN, NAIVE_MAX = (
    datetime(1990, 1, 1, tzinfo=UTC).replace(tzinfo=None),
    datetime(2100, 1, 1, tzinfo=UTC).replace(tzinfo=None),
)
timestamps = st.datetimes(min_value=NAIVE_MIN, max_value=NAIVE_MAX, timezones=st.just(UTC))


@given(
    moment=timestamps,
    digits=st.sampled_from([0, 3, 6]),
    value=st.one_of(
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(),
        st.booleans(),
    ),
    quality=st.sampled_from(["good", "uncertain", "bad", None]),
)
def test_the_bulk_decoder_agrees_with_the_model(
    moment: datetime, digits: int, value: object, quality: str | None
) -> None:
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        stamp += "." + f"{moment.microsecond:06d}"[:digits]
    record = {"ts": stamp + "Z", "machine": "m1", "signal": "s", "value": value}
    if quality is not None:
        record["quality"] = quality
    line = json.dumps(record)
    reading = Reading.from_json(line)
    assert decode_reading(line) == (
        (reading.ts - EPOCH) // ONE_US,
        reading.machine,
        reading.signal,
        reading.value,
        reading.quality.value,
        None,
    )


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-02-30T08:00:00Z",
        "2026-03-02T08:00:60.000Z",
        "2026-03-02T0800:00.00Z",
        "2026-W09-1T08:00:00Z",
        "2026-03-02T08:00:00.1_2Z",
        "2026-03-02 08:00:00Z",
        "2026-03-02T08:00:00.12Z",
        "2026-03-02T08:00:00+07:00",
        "20260302T080000.000Z",
        "2026-03-02T08:00:00.000000000Z",
        # Millisecond lengths that are not three ASCII digits after a dot (the remembered tails).
        "2026-03-02T08:00:00.+12Z",
        "2026-03-02T08:00:00.\u0661\u0662\u0663Z",
        "2026-03-02T08:00:00,123Z",
        "2026-03-02T08:00:00.123z",
    ],
)
def test_the_bulk_decoder_never_accepts_what_the_model_refuses(stamp: str) -> None:
    line = json.dumps({"ts": stamp, "machine": "m1", "signal": "s", "value": 1})
    try:
        reading = Reading.from_json(line)
    except RecordError:
        with pytest.raises(RecordError):
            decode_reading(line)
    else:
        assert decode_reading(line)[0] == (reading.ts - EPOCH) // ONE_US


# hypothesis takes naive bounds and adds the zone itself
_utc_times = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(
    ts=_utc_times,
    ingest_ts=_utc_times,
    machine=st.text(min_size=1, max_size=8),
    signal=st.text(min_size=1, max_size=8),
    value=st.one_of(
        st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
    ),
    source=st.text(max_size=8),
    seq=st.integers(min_value=0, max_value=2**63),
)
def test_a_trusted_reading_equals_the_validated_one(
    ts: datetime,
    ingest_ts: datetime,
    machine: str,
    signal: str,
    value: bool | int | float | str,
    source: str,
    seq: int,
) -> None:
    arguments = {
        "ts": ts, "machine": machine, "signal": signal, "value": value,
        "source": source, "seq": seq, "ingest_ts": ingest_ts,
    }  # fmt: skip
    trusted = Reading.trusted(**arguments)  # type: ignore[arg-type]
    validated = Reading(**arguments)  # type: ignore[arg-type]
    assert trusted == validated
    assert trusted.model_fields_set == validated.model_fields_set
    assert trusted.to_json() == validated.to_json()
    assert hash(trusted) == hash(validated)
    assert type(trusted.value) is type(validated.value)


@given(
    ts=_utc_times,
    server_ts=st.one_of(st.none(), _utc_times),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    quality=st.sampled_from(list(Quality)),
    status_code=st.one_of(st.none(), st.integers(min_value=0, max_value=0xFFFFFFFF)),
    backfilled=st.booleans(),
)
def test_a_trusted_reading_with_quality_and_status_equals_the_validated_one(
    ts: datetime,
    server_ts: datetime | None,
    value: bool | int | float | str | None,
    quality: Quality,
    status_code: int | None,
    backfilled: bool,
) -> None:
    # The OPC UA collector's shape: quality, raw status code and server time as well, and a value
    # read back from history after an outage.
    if value is None:
        quality = Quality.BAD
    arguments = {
        "ts": ts, "machine": "m1", "signal": "state", "value": value, "source": "plc", "seq": 7,
        "ingest_ts": ts, "quality": quality, "status_code": status_code, "server_ts": server_ts,
        "backfilled": backfilled,
    }  # fmt: skip
    trusted = Reading.trusted(**arguments)  # type: ignore[arg-type]
    validated = Reading(**arguments)  # type: ignore[arg-type]
    assert trusted == validated
    assert trusted.to_json() == validated.to_json()
    assert hash(trusted) == hash(validated)


@example(
    ts=datetime(2026, 3, 2, 8, 0, tzinfo=UTC),
    server_ts=None,
    machine="m1",
    value=2**70,
    quality=Quality.GOOD,
    status_code=None,
    seq=0,
    backfilled=False,
)
@given(
    ts=_utc_times,
    server_ts=st.one_of(st.none(), _utc_times),
    machine=st.text(min_size=1, max_size=8),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=8),
    ),
    quality=st.sampled_from(list(Quality)),
    status_code=st.one_of(st.none(), st.integers(min_value=0, max_value=0xFFFFFFFF)),
    seq=st.integers(min_value=0, max_value=2**63),
    backfilled=st.booleans(),
)
def test_a_reading_tuple_stands_for_the_validated_reading(
    ts: datetime,
    server_ts: datetime | None,
    machine: str,
    value: bool | int | float | str | None,
    quality: Quality,
    status_code: int | None,
    seq: int,
    backfilled: bool,
) -> None:
    # What the collectors hand the embedded runtime: the fields in Reading's order, read by name.
    if value is None:
        quality = Quality.BAD
    fields = (ts, machine, "state", value, quality, status_code, server_ts, ts, "plc", seq, backfilled)
    validated = Reading(**dict(zip(ReadingTuple._fields, fields, strict=True)))  # type: ignore[arg-type]
    fast = reading_tuple(fields)  # type: ignore[arg-type]
    assert type(fast) is ReadingTuple
    assert fast == ReadingTuple(*fields)  # type: ignore[arg-type]
    for name in ReadingTuple._fields:
        assert getattr(fast, name) == getattr(validated, name), name
    made = fast.reading()
    assert made == validated
    assert made.to_json() == validated.to_json()
    assert fast.to_json() == validated.to_json()  # integers beyond 64 bits included (pydantic's)
    assert as_reading(fast) == validated
    assert as_reading(validated) is validated


def test_a_reading_tuple_has_the_readings_fields_in_their_order() -> None:
    # The embedded runtime reads either by the same names; a field added to Reading must be here.
    assert ReadingTuple._fields == tuple(Reading.model_fields)


_field_values = st.one_of(
    st.booleans(),
    st.integers(),  # beyond 64 bits too: the fast encoder hands those to pydantic
    st.floats(),  # NaN and infinities included: both encoders write null
    st.text(max_size=12),
)


@example(
    measurement="energy",
    tags={"machine": "m1"},
    fields={"kwh": float("nan"), "kw": float("inf"), "pieces": 2**70, "ok": True},
    time=datetime(2026, 3, 2, 8, 0, 0, 250_000, tzinfo=UTC),
)
@given(
    measurement=st.text(min_size=1, max_size=8),
    tags=st.dictionaries(st.text(max_size=6), st.text(max_size=8), max_size=4),
    fields=st.dictionaries(st.text(max_size=6), _field_values, max_size=5),
    time=_utc_times,
)
def test_a_trusted_point_equals_the_validated_one_and_encodes_as_pydantic_does(
    measurement: str,
    tags: dict[str, str],
    fields: dict[str, bool | int | float | str],
    time: datetime,
) -> None:
    trusted = Point.trusted(measurement=measurement, tags=tags, fields=fields, time=time)
    validated = Point(measurement=measurement, tags=tags, fields=fields, time=time)
    assert trusted.model_fields_set == validated.model_fields_set
    assert trusted.to_json() == validated.model_dump_json()
    if all(not isinstance(v, float) or math.isfinite(v) for v in fields.values()):
        # NaN and the infinities are written as null (by both); NaN is not equal to itself
        assert trusted == validated
        assert Point.from_json(trusted.to_json()) == trusted


@example(
    value=2**70,
    quality=Quality.GOOD,
    status_code=None,
    server_ts=None,
    ingest_ts=None,
    source=None,
    seq=None,
    backfilled=True,
)
@given(
    value=st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)
    ),  # beyond 64 bits and non-finite too
    quality=st.sampled_from(list(Quality)),
    status_code=st.one_of(st.none(), st.integers(min_value=0, max_value=0xFFFFFFFF)),
    server_ts=st.one_of(st.none(), _utc_times),
    ingest_ts=st.one_of(st.none(), _utc_times),
    source=st.one_of(st.none(), st.text(max_size=6)),
    seq=st.one_of(st.none(), st.integers(min_value=0, max_value=2**64)),
    backfilled=st.booleans(),
)
def test_the_reading_encoder_writes_what_pydantic_writes(
    value: bool | int | float | str | None,
    quality: Quality,
    status_code: int | None,
    server_ts: datetime | None,
    ingest_ts: datetime | None,
    source: str | None,
    seq: int | None,
    backfilled: bool,
) -> None:
    if value is None:
        quality = Quality.BAD
    reading = Reading(
        ts=datetime(2026, 3, 2, 8, 0, 0, 250_000, tzinfo=UTC), machine="m1", signal="s", value=value,
        quality=quality, status_code=status_code, server_ts=server_ts, ingest_ts=ingest_ts,
        source=source, seq=seq, backfilled=backfilled,
    )  # fmt: skip
    # ``backfilled`` is left out when false, so a live reading's JSON is what it was before the field
    unset = {name for name, v in reading if (v is None or v is False) and name != "value"}
    assert reading.to_json() == reading.model_dump_json(exclude=unset)
    assert ('"backfilled":true' in reading.to_json()) is backfilled
    if not isinstance(value, float) or math.isfinite(value):  # NaN is not equal to itself
        assert Reading.from_json(reading.to_json()) == reading


# Decoded JSON as a producer might send it: mostly the collectors' shape, with every kind of slip.
_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
_stamps = st.one_of(
    _utc_times.map(lambda t: t.isoformat().replace("+00:00", "Z")),  # canonical: none or 6 digits
    _utc_times.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"),
    _utc_times.map(lambda t: t.isoformat()),  # +00:00: valid, but for the model to judge
    st.sampled_from(["2026-03-02T08:00:00", "2026-02-30T08:00:00Z", "2026-03-02T08:00:00.12Z", "x" * 20]),
    _json_scalars,
)
_reading_fields = {
    "ts": _stamps,
    "machine": st.one_of(st.text(max_size=3), _json_scalars),
    "signal": st.one_of(st.text(max_size=3), _json_scalars),
    "value": _json_scalars,
    "quality": st.one_of(st.sampled_from(["good", "uncertain", "bad", "GOOD"]), _json_scalars),
    "status_code": st.one_of(st.integers(min_value=-1, max_value=2**32), _json_scalars),
    "server_ts": _stamps,
    "ingest_ts": _stamps,
    "source": _json_scalars,
    "seq": st.one_of(st.integers(min_value=-1, max_value=2**63), _json_scalars),
    "backfilled": st.one_of(st.booleans(), _json_scalars),
    "extra": _json_scalars,
}


@st.composite
def _reading_documents(draw: st.DrawFn) -> dict[str, object]:
    names = draw(st.sets(st.sampled_from(sorted(_reading_fields))))
    names |= draw(st.sets(st.sampled_from(["ts", "machine", "signal", "value"]), min_size=3))
    return {name: draw(_reading_fields[name]) for name in sorted(names)}


@example({"ts": "2026-03-02T08:00:00.250Z", "machine": "m", "signal": "s", "value": None, "quality": "bad"})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "status_code": True})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "status_code": 2**32})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "status_code": -1})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "seq": False})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "seq": -1})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "ingest_ts": "2026-03-02"})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": 1, "source": 5})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "value": None})
@example({"ts": "2026-03-02T08:00:00Z", "machine": "m", "signal": "s", "quality": "bad"})
@given(document=_reading_documents())
def test_the_bulk_decoder_takes_what_the_model_takes_and_refuses_what_it_refuses(
    document: dict[str, object],
) -> None:
    line = json.dumps(document)
    try:
        reading: Reading | None = Reading.from_json(line)
    except RecordError as exc:
        reading, refusal = None, str(exc)
    if reading is None:
        with pytest.raises(RecordError, match=f"^{re.escape(refusal)}$"):
            decode_reading(line)
        return
    expected = (
        (reading.ts - EPOCH) // ONE_US,
        reading.machine,
        reading.signal,
        reading.value,
        reading.quality.value,
        reading.status_code,
    )
    decoded = decode_reading(line)
    assert decoded == expected
    # == alone would take True for 1: the model turns a JSON true in an int field into 1
    assert [type(part) for part in decoded] == [type(part) for part in expected]
    # ``process`` makes the reading's raw point from the decoded parts, the embedded runtime from the model
    from_parts = decoded_reading_point(decoded, "site", "line")
    assert from_parts.to_json() == reading_point(reading, "site", "line").to_json()


def test_the_trusted_constructors_slot_setters_fall_back_without_pydantic_slots() -> None:
    from types import SimpleNamespace

    from plantstream.records import _slot_setter

    # Today's pydantic keeps __pydantic_extra__ in a slot: its descriptor sets it.
    assert _slot_setter("__pydantic_extra__").__class__.__name__ == "method-wrapper"
    # A pydantic without such a slot: object.__setattr__ on the instance instead.
    holder = SimpleNamespace()
    _slot_setter("__no_such_slot__")(holder, 7)  # type: ignore[arg-type]
    assert holder.__no_such_slot__ == 7  # type: ignore[attr-defined]
