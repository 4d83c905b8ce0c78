"""The JSON-lines file sink's write hook: called once per flushed batch, after the lines are there."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from plantstream.records import Point
from sinks.files import JsonLinesSink


def point(second: int) -> Point:
    return Point(
        measurement="reading",
        tags={"site": "s", "line": "l", "machine": "m", "signal": "x"},
        fields={"value": float(second), "quality": "good"},
        time=datetime(2026, 11, 28, 8, 0, second, tzinfo=UTC),
    )


def test_the_hook_sees_each_batch_once_after_it_is_flushed(tmp_path: Path) -> None:
    seen: list[tuple[list[int], int, float]] = []
    sink = JsonLinesSink(tmp_path)

    def hook(batch: Sequence[Point], wall: float) -> None:
        # The lines of the batch are already readable when the hook runs (flushed, not synced).
        on_disk = (tmp_path / "points" / "2026-11-28.jsonl").read_text(encoding="utf-8").splitlines()
        seen.append(([int(p.fields["value"]) for p in batch], len(on_disk), wall))

    sink.write([point(1)])  # before the hook is set: not reported
    sink.on_write = hook
    before = time.time()
    sink.write(point(s) for s in (2, 3))  # a generator is consumed once and still reported
    sink.write([point(4)])
    after = time.time()
    sink.close()
    assert [(values, lines) for values, lines, _ in seen] == [([2, 3], 3), ([4], 4)]
    assert all(before <= wall <= after for _, _, wall in seen)
    lines = (tmp_path / "points" / "2026-11-28.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["fields"]["value"] for line in lines] == [1.0, 2.0, 3.0, 4.0]
    assert sink.points_written == 4


def test_the_hook_can_be_given_to_the_constructor(tmp_path: Path) -> None:
    batches: list[int] = []
    sink = JsonLinesSink(tmp_path, on_write=lambda batch, _wall: batches.append(len(batch)))
    sink.write([point(1), point(2)])
    sink.write([])
    sink.close()
    assert batches == [2, 0]


def test_points_go_to_the_file_of_their_utc_day_also_after_a_close(tmp_path: Path) -> None:
    late = point(5).model_copy(update={"time": datetime(2026, 11, 28, 23, 59, 59, tzinfo=UTC)})
    early = point(6).model_copy(update={"time": datetime(2026, 11, 29, 0, 0, 0, tzinfo=UTC)})
    sink = JsonLinesSink(tmp_path)
    sink.write([late, early, point(1)])
    sink.close()
    sink.write([point(2)])  # closed files are opened again, not written through a stale handle
    sink.close()
    days = {p.name: p.read_text(encoding="utf-8").count("\n") for p in (tmp_path / "points").iterdir()}
    assert days == {"2026-11-28.jsonl": 3, "2026-11-29.jsonl": 1}


def test_a_batch_across_days_appends_each_point_s_line_to_its_day_in_order(tmp_path: Path) -> None:
    def at(day: int, second: int) -> Point:
        return Point(
            measurement="oee",
            tags={"machine": "m"},
            fields={"oee": 0.5, "note": 'a "b"\n'},
            time=datetime(2026, 11, day, 23, 59, second, tzinfo=UTC),
        )

    batch = [at(28, 1), at(29, 2), at(28, 3), at(29, 4)]
    sink = JsonLinesSink(tmp_path)
    sink.write(batch[:1])
    sink.write(batch[1:])
    sink.close()
    # Byte for byte what one JSON line per point, each followed by a newline, gives.
    folder = tmp_path / "points"
    assert (folder / "2026-11-28.jsonl").read_text(encoding="utf-8") == "".join(
        p.to_json() + "\n" for p in (batch[0], batch[2])
    )
    assert (folder / "2026-11-29.jsonl").read_text(encoding="utf-8") == "".join(
        p.to_json() + "\n" for p in (batch[1], batch[3])
    )
    assert sink.points_written == 4
    sink.write([])  # nothing to write opens no file
    assert sorted(p.name for p in folder.iterdir()) == ["2026-11-28.jsonl", "2026-11-29.jsonl"]
