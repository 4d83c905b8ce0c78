"""Raw readings travel to the sinks as rows (records.ReadingRow), not Points: held equal to the points.

A row must come out of every sink byte for byte as the ``reading`` point that
``streams.points.reading_point`` makes of the same reading: its JSON line, its line protocol (or
the same refusal with the same message), its file, and the point itself for the live views.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantstream.records import EPOCH, Point, Reading, reading_row_json, reading_row_point
from sinks.files import JsonLinesSink
from sinks.lineprotocol import Precision, encode_many
from streams.points import reading_point, reading_row
from tests.unit.sinks.test_lineprotocol_reading import T0, odd_text, precisions, readings

_ONE_US = timedelta(microseconds=1)
sites = st.sampled_from(["", "plant 1", "a,b", "Hồ"])


def row_of(reading: Reading, site: str, line: str) -> tuple:
    return reading_row(reading, (reading.ts - EPOCH) // _ONE_US, site, line)


def encoded(items: list, precision: Precision) -> tuple[object, list[tuple[str, str]]]:
    groups, failed = encode_many(items, lambda _: precision)
    return groups, [(point.to_json(), str(exc)) for point, exc in failed]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(readings(), sites, odd_text.filter(bool))
def test_a_row_is_its_reading_point_and_writes_the_same_json(reading: Reading, site: str, line: str) -> None:
    point = reading_point(reading, site, line)
    row = row_of(reading, site, line)
    assert reading_row_point(row) == point
    assert reading_row_json(row) == point.to_json()


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(readings(), max_size=8), sites, precisions)
def test_rows_encode_to_line_protocol_as_their_points_do(
    batch: list[Reading], site: str, precision: Precision
) -> None:
    other = Point.trusted(measurement="oee", tags={}, fields={"v": 1.0}, time=T0)
    points: list = [reading_point(reading, site, "line=1") for reading in batch]
    rows: list = [row_of(reading, site, "line=1") for reading in batch]
    # Mixed with a point of another measurement, so the groups and their order are compared too.
    points.insert(len(points) // 2, other)
    rows.insert(len(rows) // 2, other)
    assert encoded(rows, precision) == encoded(points, precision)


def test_a_status_code_beyond_64_bits_falls_back_to_the_points_encoding() -> None:
    reading = Reading.trusted(
        ts=T0,
        machine="m",
        signal="s",
        value=None,
        quality="bad",
        status_code=2**70,
        source="x",
        seq=0,
        ingest_ts=T0,
    )
    row = row_of(reading, "site", "line")
    assert reading_row_json(row) == reading_point(reading, "site", "line").to_json()
    [(failed, why)] = encoded([row], "s")[1]
    assert "status_code" in why
    assert failed == reading_point(reading, "site", "line").to_json()


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(readings(), min_size=1, max_size=6))
def test_the_file_sink_writes_rows_as_it_writes_their_points(tmp_path: Path, batch: list[Reading]) -> None:
    for name, items in (
        ("points", [reading_point(reading, "s", "l") for reading in batch]),
        ("rows", [row_of(reading, "s", "l") for reading in batch]),
    ):
        sink = JsonLinesSink(tmp_path / name)
        sink.write(items)
        sink.close()
    written = {
        name: {path.name: path.read_bytes() for path in (tmp_path / name / "points").iterdir()}
        for name in ("points", "rows")
    }
    assert written["rows"] == written["points"]
    for name in ("points", "rows"):
        for path in (tmp_path / name / "points").iterdir():
            path.unlink()
