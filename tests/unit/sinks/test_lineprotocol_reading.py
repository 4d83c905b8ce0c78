"""The fast path for raw readings' points is held byte-equal to the generic line-protocol encoding.

The generic encoding is the same ``encode_many`` with the fast path switched off (its helper made to
decline every point), so any difference in a line, in a group or in a refusal shows here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantstream.records import FieldValue, Point, Quality, Reading
from sinks import lineprotocol
from sinks.lineprotocol import Precision, encode_many
from streams.points import reading_point

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)

# Names and texts that need escapes, are empty, or hold what line protocol cannot carry.
odd_text = st.one_of(
    st.sampled_from(["m1", "power_kw", "a b", "a,b", "a=b", 'say "hi"', "back\\", "", "x\ny", "r\rz", "Hồ"]),
    st.text(max_size=6),
)
floats = st.one_of(st.floats(), st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, -0.0]))
values = st.one_of(floats, odd_text, st.integers(), st.booleans(), st.integers(min_value=2**63 - 2))
qualities = st.one_of(st.sampled_from(["good", "uncertain", "bad"]), odd_text)
status_codes = st.one_of(st.integers(min_value=0, max_value=0xFFFFFFFF), st.integers(), st.booleans())


@st.composite
def reading_like_points(draw: st.DrawFn) -> Point:
    """Points of measurement ``reading``: mostly the usual shape, sometimes any other."""
    tags = {name: draw(odd_text) for name in ("site", "line", "machine", "signal")}
    if draw(st.booleans()) and draw(st.booleans()):
        tags = draw(st.dictionaries(st.sampled_from(["site", "line", "machine", "signal", "x"]), odd_text))
    fields: dict[str, FieldValue] = {"quality": draw(qualities)}
    kind = draw(st.sampled_from(["value", "value_str", None]))
    if kind is not None:
        fields[kind] = draw(values)
    if draw(st.booleans()):
        fields["status_code"] = draw(status_codes)
    if draw(st.booleans()) and draw(st.booleans()):
        # Another order of the same fields, or an extra one: not the shape the fast path knows.
        names = draw(st.permutations(list(fields)))
        fields = {name: fields[name] for name in names}
        if draw(st.booleans()):
            fields["extra"] = draw(values)
    time = T0 + timedelta(microseconds=draw(st.integers(min_value=0, max_value=10**12)))
    return Point.trusted(measurement="reading", tags=tags, fields=fields, time=time)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    """Readings as a collector makes them, with odd names and every kind of value."""
    quality = draw(st.sampled_from(list(Quality)))
    value = draw(st.one_of(floats, odd_text, st.integers(), st.booleans()))
    if quality is Quality.BAD and draw(st.booleans()):
        value = None
    return Reading.trusted(
        ts=T0 + timedelta(milliseconds=draw(st.integers(min_value=0, max_value=10**9))),
        machine=draw(odd_text.filter(bool)),
        signal=draw(odd_text.filter(bool)),
        value=value,
        quality=quality,
        status_code=draw(st.none() | st.integers(min_value=0, max_value=0xFFFFFFFF)),
        source="s",
        seq=0,
        ingest_ts=T0,
    )


def generic(points: list[Point], precision: Precision) -> tuple[object, list[tuple[Point, str]]]:
    with mock.patch.object(lineprotocol, "_reading_head", return_value=None):
        groups, failed = encode_many(points, lambda _: precision)
    return groups, [(point, str(exc)) for point, exc in failed]


def fast(points: list[Point], precision: Precision) -> tuple[object, list[tuple[Point, str]]]:
    groups, failed = encode_many(points, lambda _: precision)
    return groups, [(point, str(exc)) for point, exc in failed]


precisions = st.sampled_from(["s", "ms", "us", "ns"])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(reading_like_points(), max_size=8), precisions)
def test_reading_points_of_any_shape_encode_as_the_generic_path_does(
    points: list[Point], precision: Precision
) -> None:
    assert fast(points, precision) == generic(points, precision)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(readings(), max_size=8), st.sampled_from(["", "plant 1", "a,b"]), precisions)
def test_points_of_readings_encode_as_the_generic_path_does(
    batch: list[Reading], site: str, precision: Precision
) -> None:
    points = [reading_point(reading, site, "line=1") for reading in batch]
    # Mixed with a point of another measurement, so the groups and their order are compared too.
    points.insert(len(points) // 2, Point.trusted(measurement="oee", tags={}, fields={"v": 1.0}, time=T0))
    assert fast(points, precision) == generic(points, precision)


def test_the_fast_path_takes_the_usual_reading() -> None:
    point = Point.trusted(
        measurement="reading",
        tags={"site": "s 1", "line": "l", "machine": "m", "signal": "power_kw"},
        fields={"quality": "good", "value": 2.5, "status_code": 0},
        time=T0,
    )
    # The line the docs show, written out; the fast path makes it (not the generic fallback).
    expected = 'reading,line=l,machine=m,signal=power_kw,site=s\\ 1 quality="good",value=2.5,status_code=0i'
    assert lineprotocol._reading_head(point.tags, point.fields) == expected
    assert fast([point], "s")[0] == {"s": [f"{expected} 1772438400"]}


def test_what_the_protocol_refuses_is_left_to_the_generic_path() -> None:
    tags = {"site": "s", "line": "l", "machine": "m", "signal": "x"}
    for fields in (
        {"quality": "good", "value": float("nan")},
        {"quality": "good", "value_str": "a\nb"},
        {"quality": "good", "value": 1.0, "status_code": 2**63},
        {"value": 1.0, "quality": "good"},
    ):
        assert lineprotocol._reading_head(tags, fields) is None  # type: ignore[arg-type]
    assert lineprotocol._reading_head({**tags, "signal": "a\nb"}, {"quality": "good"}) is None
