"""``plantstream sink``'s raw ``reading`` points, made from the readings topic (as rows).

The points must be the embedded runtime's (``reading_point`` of the model; the sink role hands
them on as rows, records.ReadingRow, which the sinks write as their points), and a record that
``process`` refuses (malformed, unknown machine, another machine's key) must make none, counted,
without a dead letter of the sink's own: ``process`` dead-letters it already.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aiokafka import ConsumerRecord

from plantstream.plant.schema import Kafka
from plantstream.records import Point, Reading, ReadingRow, reading_row_json
from runtimes.kafka.sink import SinkRole
from runtimes.plant import load_and_resolve
from streams.points import reading_point

ROOT = Path(__file__).resolve().parents[3]
GOOD = '{"ts": "2026-03-02T08:00:00.250Z", "machine": "m1", "signal": "power_kw", "value": 12.5, "seq": 3}'


def record(key: bytes | None, value: str | bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    raw = value.encode() if isinstance(value, str) else value
    return ConsumerRecord("readings", 0, offset, 0, 0, key, raw, None, 0, len(raw), ())


def role(recorded: frozenset[str] | None = None) -> SinkRole:
    _, spec = load_and_resolve(ROOT / "examples" / "minimal.yaml")
    if recorded is not None:
        machines = {mid: dataclasses.replace(m, recorded=recorded) for mid, m in spec.machines.items()}
        spec = dataclasses.replace(spec, machines=machines)
    return SinkRole(Kafka(), [], spec=spec)


def test_a_reading_makes_the_embedded_runtimes_raw_point() -> None:
    sink = role()
    points: list[Point | ReadingRow] = []
    sink._raw_points([record(b"m1", GOOD, 0)], points)
    machine = sink.spec.machines["m1"]  # type: ignore[union-attr]
    expected = reading_point(Reading.from_json(GOOD), machine.site, machine.line)
    assert [reading_row_json(p) for p in points if isinstance(p, tuple)] == [expected.to_json()]
    assert (sink.stats.raw_points, sink.stats.readings_skipped) == (1, 0)


def test_what_process_refuses_and_signals_not_recorded_make_no_point() -> None:
    sink = role(recorded=frozenset({"power_kw"}))
    refused = [
        record(b"m1", GOOD[:40], 0),  # cut short
        record(b"m1", b"\xff\xfe not even text", 1),
        record(b"m9", GOOD.replace('"m1"', '"m9"'), 2),  # not in the plant
        record(b"m2", GOOD, 3),  # under another machine's key
        record(b"m1", GOOD.replace("power_kw", "energy_kwh"), 4),  # not recorded
    ]
    points: list[Point | ReadingRow] = []
    sink._raw_points([*refused, record(b"m1", GOOD, 5)], points)
    assert [p[5] for p in points if isinstance(p, tuple)] == ["power_kw"]
    assert len(points) == 1
    assert (sink.stats.raw_points, sink.stats.readings_skipped) == (1, 5)
    assert sink.stats.dead_letters == 0
