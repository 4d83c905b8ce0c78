"""The file sink's disk bounds: raw readings left out (``readings: false``), old days deleted."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from plantstream.records import EPOCH, Point, ReadingRow
from sinks.files import JsonLinesSink

DAY = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def row(at: datetime) -> ReadingRow:
    return ((at - EPOCH) // timedelta(microseconds=1), at, "s", "l", "m", "power_kw", 1.5, "good", None)


def point(measurement: str, at: datetime) -> Point:
    return Point(measurement=measurement, tags={"machine": "m"}, fields={"v": 1.0}, time=at)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "points").iterdir())


def test_without_readings_raw_readings_are_left_out_rows_and_points_alike(tmp_path: Path) -> None:
    hooked: list[int] = []
    sink = JsonLinesSink(tmp_path, readings=False, on_write=lambda batch, _: hooked.append(len(batch)))
    sink.write([row(DAY), point("reading", DAY), point("oee", DAY), row(DAY)])
    sink.close()
    lines = (tmp_path / "points" / "2026-11-28.jsonl").read_text(encoding="utf-8").splitlines()
    assert [line.split('"measurement":"')[1].split('"')[0] for line in lines] == ["oee"]
    assert sink.points_written == 1
    assert hooked == [4]  # the hook still sees the whole batch (the other sinks got it)


def test_keep_days_deletes_older_day_files_once_a_day_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    today = [date(2026, 12, 3)]
    (tmp_path / "points").mkdir()
    for name in ("notes.jsonl", "20261101.jsonl"):  # not day files of ours: left alone
        (tmp_path / "points" / name).write_text("not a day file\n", encoding="utf-8")
    writer = JsonLinesSink(tmp_path)
    # Day files of 2026-11-28 ... 2026-12-03 (six days), written before the bound was set.
    writer.write([point("oee", DAY + timedelta(days=k)) for k in range(6)])
    writer.close()
    sink = JsonLinesSink(tmp_path, keep_days=2, today=lambda: today[0])
    with caplog.at_level(logging.INFO, logger="plantstream.sinks.files"):
        sink.write([point("oee", DAY + timedelta(days=5))])
    # Today 12-03 and the two days before it are kept: 12-01, 12-02, 12-03.
    others = ["20261101.jsonl", "notes.jsonl"]
    assert names(tmp_path) == ["2026-12-01.jsonl", "2026-12-02.jsonl", "2026-12-03.jsonl", *others]
    assert sink.days_deleted == 3
    assert "2026-11-28.jsonl, older than keep_days 2" in caplog.text
    # A late point of an old day opens its file again; the next day's check deletes it.
    sink.write([point("oee", DAY)])
    assert "2026-11-28.jsonl" in names(tmp_path)
    today[0] = date(2026, 12, 4)
    sink.write([point("oee", DAY + timedelta(days=6))])
    sink.close()
    assert names(tmp_path) == ["2026-12-02.jsonl", "2026-12-03.jsonl", "2026-12-04.jsonl", *others]
    assert sink.days_deleted == 5


@pytest.mark.parametrize("keep_days", [0, -1])
def test_keep_days_below_one_is_refused(tmp_path: Path, keep_days: int) -> None:
    with pytest.raises(ValueError, match="keep_days must be at least 1"):
        JsonLinesSink(tmp_path, keep_days=keep_days)
