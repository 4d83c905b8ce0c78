"""The OPC UA collector repeats quiet subscribed values, so an idle machine's windows still close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asyncua import ua

from collectors.opcua import OpcUaCollector
from plantstream.plant import parse_plant
from plantstream.plant.schema import OpcUaSource
from plantstream.records import Reading

PLANT = """
sites:
  - id: s
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - {{id: oven, signals: {{state: state}}}}
          - {{id: press, ideal_cycle_s: 2, signals: {{good_count: good_count}}}}
sources:
  - type: opcua
    id: plc
    endpoint: opc.tcp://127.0.0.1:4840
    security: {{mode: None, allow_insecure: true}}
    {hold}
    groups:
      - tags:
          - {{node: "ns=2;s=oven.state", machine: oven, signal: state}}
          - {{node: "ns=2;s=press.good", machine: press, signal: good_count}}
"""
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
INGEST = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def collector(hold: str = "") -> OpcUaCollector:
    [source] = parse_plant(PLANT.format(hold=hold)).model.sources
    assert isinstance(source, OpcUaSource)
    return OpcUaCollector(source, clock=lambda: INGEST)


def value(v: int, seconds: float) -> ua.DataValue:
    return ua.DataValue(ua.Variant(v, ua.VariantType.Int32), SourceTimestamp=T0 + timedelta(seconds=seconds))


async def emitted(c: OpcUaCollector, feed: list[tuple[int, int, float]]) -> list[Reading]:
    oven, press = c._items
    for index, v, seconds in feed:
        await c._emit((oven, press)[index], value(v, seconds))
    return [c._queue._queue.get_nowait() for _ in range(c._queue.qsize())]


async def test_a_quiet_value_is_repeated_at_the_source_clock_after_hold_s() -> None:
    c = collector()  # hold_s defaults to 30 s
    # The oven reports state 2 once; the press counts every 10 s.
    readings = await emitted(c, [(0, 2, 0), (1, 100, 10), (1, 101, 20), (1, 102, 30), (1, 103, 40)])
    repeats = [r for r in readings if r.machine == "oven"]
    # Sweeps run every hold_s / 2 of source time (at 0, 20 and 40 s); at 40 s the oven's value is
    # older than 30 s and is repeated, unchanged, at the source's newest time.
    assert [(r.ts, r.value) for r in repeats] == [(T0, 2), (T0 + timedelta(seconds=40), 2)]
    assert repeats[1].server_ts is None
    assert (repeats[1].seq or 0) > (repeats[0].seq or 0)
    assert c.health.held == 1
    assert [r.value for r in readings if r.machine == "press"] == [100, 101, 102, 103]  # nothing repeated


async def test_hold_off_and_no_hold_across_a_new_session() -> None:
    off = collector("hold_s: null")
    readings = await emitted(off, [(0, 2, 0), (1, 100, 10), (1, 101, 100)])
    assert [r.machine for r in readings] == ["oven", "press", "press"]
    c = collector()
    await emitted(c, [(0, 2, 0)])
    c._last.clear()  # what a new session does: the gap between sessions stays unknown
    c._source_now = c._swept = None
    readings = await emitted(c, [(1, 100, 100)])
    assert [r.machine for r in readings] == ["press"]
