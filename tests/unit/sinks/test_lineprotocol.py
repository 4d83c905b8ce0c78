"""Line protocol: escaping, value types, tag order and time precision, against hand-written lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plantstream.records import Point
from sinks.lineprotocol import Unencodable, encode, encode_many, timestamp

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
T0_S = 1772438400  # 2026-03-02T08:00:00Z: 20 514 days × 86 400 s + 8 × 3 600 s


def point(measurement: str = "oee", tags: dict | None = None, fields: dict | None = None, time=T0) -> Point:
    return Point(measurement=measurement, tags=tags or {}, fields=fields or {"v": 1.0}, time=time)


def test_the_epoch_arithmetic_of_the_vectors() -> None:
    assert T0_S == 20_514 * 86_400 + 8 * 3_600
    assert timestamp(point(), "s") == T0_S


def test_a_plain_point() -> None:
    p = point(tags={"site": "demo", "machine": "m1"}, fields={"oee": 0.7479, "run_s": 20_460})
    assert encode(p, "s") == f"oee,machine=m1,site=demo oee=0.7479,run_s=20460i {T0_S}"


def test_tags_are_sorted_by_key_and_empty_values_left_out() -> None:
    p = point(tags={"z": "1", "a": "2", "m": "", "B": "3"})
    # Byte order, as Go's bytes.Compare: upper case before lower case.
    assert encode(p, "s").startswith("oee,B=3,a=2,z=1 ")


@pytest.mark.parametrize(
    ("measurement", "expected"),
    [
        ("my measurement", "my\\ measurement"),
        ("a,b", "a\\,b"),
        ("a=b", "a=b"),  # an equals sign needs no escape in a measurement
        ('q"x', 'q"x'),
        ("back\\slash", "back\\\\slash"),
        ("trailing\\", "trailing\\\\"),
    ],
)
def test_measurement_escaping(measurement: str, expected: str) -> None:
    assert encode(point(measurement), "s") == f"{expected} v=1.0 {T0_S}"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a b", "a\\ b"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ("a\\b", "a\\\\b"),
        ("ends\\", "ends\\\\"),
        ('say "hi"', 'say\\ "hi"'),
        ("Hồ Chí Minh", "Hồ\\ Chí\\ Minh"),
    ],
)
def test_tag_and_field_key_escaping(raw: str, expected: str) -> None:
    assert encode(point(tags={raw: raw}), "s") == f"oee,{expected}={expected} v=1.0 {T0_S}"
    assert encode(point(fields={raw: 1}), "s") == f"oee {expected}=1i {T0_S}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("running", '"running"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\plc", '"C:\\\\plc"'),
        ("ends\\", '"ends\\\\"'),
        ("a,b=c d", '"a,b=c d"'),  # inside quotes only " and \ are special
        ("", '""'),
    ],
)
def test_string_field_values(value: str, expected: str) -> None:
    assert encode(point(fields={"s": value}), "s") == f"oee s={expected} {T0_S}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0i"),
        (-3, "-3i"),
        (2**63 - 1, "9223372036854775807i"),
        (-(2**63), "-9223372036854775808i"),
        (1.0, "1.0"),
        (0.1, "0.1"),
        (-2.5e-7, "-2.5e-07"),
        (1e16, "1e+16"),
        (0.6592, "0.6592"),
    ],
)
def test_field_value_types(value: object, expected: str) -> None:
    assert encode(point(fields={"f": value}), "s") == f"oee f={expected} {T0_S}"


def test_floats_round_trip_exactly() -> None:
    for value in (0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308):
        text = encode(point(fields={"f": value}), "s").split(" ")[1].removeprefix("f=")
        assert float(text) == value


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"f": float("nan")}, "field 'f': nan is not a finite number"),
        ({"f": float("inf")}, "field 'f': inf is not a finite number"),
        ({"f": 2**63}, "field 'f': 9223372036854775808 does not fit a 64-bit integer"),
        ({"f": "two\nlines"}, "field 'f': a string value cannot contain a line break"),
        ({"a\nb": 1}, "field key 'a\\nb' contains a line break"),
        ({}, "a point needs at least one field"),
    ],
)
def test_what_line_protocol_cannot_carry_is_refused_by_name(fields: dict, message: str) -> None:
    p = Point(measurement="oee", tags={}, fields=fields, time=T0)
    with pytest.raises(Unencodable) as caught:
        encode(p, "s")
    assert str(caught.value) == message


def test_a_line_break_in_a_tag_is_refused() -> None:
    with pytest.raises(Unencodable, match="tag 'site' 'a\\\\rb' contains a line break"):
        encode(point(tags={"site": "a\rb"}), "s")


@pytest.mark.parametrize(
    ("micro", "precision", "expected"),
    [
        (0, "s", T0_S),
        (999_999, "s", T0_S),  # truncated, never rounded into the next second
        (999_999, "ms", T0_S * 1000 + 999),
        (123_456, "us", T0_S * 1_000_000 + 123_456),
        (123_456, "ns", (T0_S * 1_000_000 + 123_456) * 1000),
        (500_000, "ms", T0_S * 1000 + 500),
    ],
)
def test_time_at_each_precision(micro: int, precision: str, expected: int) -> None:
    p = point(time=T0.replace(microsecond=micro))
    assert encode(p, precision).endswith(f" {expected}")  # type: ignore[arg-type]


def test_times_before_the_epoch_floor_towards_the_past() -> None:
    p = point(time=datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC))
    assert timestamp(p, "s") == -1
    assert timestamp(p, "ms") == -500


def test_many_points_are_grouped_by_precision_in_order_and_failures_reported() -> None:
    later = T0.replace(microsecond=250_000)
    a1 = point("a", fields={"v": 1.0})
    b1 = point("b", fields={"v": 2})  # the same time as a1, at another precision
    bad = point("a", fields={"v": float("nan")})
    a2 = point("a", fields={"s": 'say "hi"'}, time=later)
    b2 = point("b", fields={"v": 3, "ok": True}, time=later)
    only_bad = point("c", fields={"v": float("inf")})
    precisions = {"a": "s", "b": "ms", "c": "us"}
    groups, failed = encode_many([a1, b1, bad, a2, b2, only_bad], precisions.__getitem__)  # type: ignore[arg-type]
    assert groups == {
        "s": [f"a v=1.0 {T0_S}", f'a s="say \\"hi\\"" {T0_S}'],
        "ms": [f"b v=2i {T0_S * 1000}", f"b v=3i,ok=true {T0_S * 1000 + 250}"],
    }
    assert [(p, str(exc)) for p, exc in failed] == [
        (bad, "field 'v': nan is not a finite number"),
        (only_bad, "field 'v': inf is not a finite number"),
    ]


def test_remembered_series_names_and_strings_encode_as_the_first_time() -> None:
    p = point("m x", tags={"site": "a b", "empty": ""}, fields={"k=1": 'C:\\"plc"', "n": -1})
    first = encode(p, "s")
    groups, failed = encode_many([p, p], lambda _: "s")
    assert (groups, failed) == ({"s": [first, first]}, [])
    assert first == f'm\\ x,site=a\\ b k\\=1="C:\\\\\\"plc\\"",n=-1i {T0_S}'
    # A remembered good string does not hide a bad one under another field.
    with pytest.raises(Unencodable, match="field 'k': a string value cannot contain a line break"):
        encode(point(fields={"k": "a\nb"}), "s")
