"""The OPC UA collector's values in batches: one Publish response's values become readings in one pass.

No server: the fast path's take (``_take_values``) is called with the value tuples it would get
(collectors/opcua_publish.py's ``Value``: handle, value, code, SourceTimestamp, SourcePicoseconds,
ServerTimestamp, ServerPicoseconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import ua

from collectors import opcua
from collectors.opcua import OpcUaCollector
from collectors.opcua_publish import Value
from plantstream.plant import parse_plant
from plantstream.plant.schema import OpcUaSource
from plantstream.records import DeadLetter, Quality, Reading, ReadingTuple

PLANT = """
sites:
  - id: s
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: press
            ideal_cycle_s: 1
            signals: {{good_count: good_count, state: state, power_kw: power_kw}}
sources:
  - type: opcua
    id: plc
    endpoint: opc.tcp://127.0.0.1:4840
    security: {{mode: None, allow_insecure: true}}
    timestamps: {policy}
    queue: {{size: {size}, overflow: {overflow}}}
    groups:
      - tags:
          - {{node: "ns=2;s=press.good", machine: press, signal: good_count}}
          - {{node: "ns=2;s=press.state", machine: press, signal: state}}
          - {{node: "ns=2;s=press.power", machine: press, signal: power_kw}}
"""
# The collector numbers its items' client handles from 100, in the plant file's order.
GOOD, STATE, POWER = 100, 101, 102
T0 = datetime(2026, 12, 3, 8, 0, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
INGEST = T0 + 10 * SECOND


class Clock:
    """The ingest time, counting how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return INGEST


def collector(
    policy: str = "source", size: int = 100, overflow: str = "block"
) -> tuple[OpcUaCollector, Clock, list[DeadLetter]]:
    [source] = parse_plant(PLANT.format(policy=policy, size=size, overflow=overflow)).model.sources
    assert isinstance(source, OpcUaSource)
    clock = Clock()
    letters: list[DeadLetter] = []
    return OpcUaCollector(source, clock=clock, on_dead_letter=letters.append), clock, letters


def value(handle: int, v: Any, at: datetime | None, code: int = 0, server: datetime | None = None) -> Value:
    return (handle, v, code, at, None, server, None)


async def take(plc: OpcUaCollector, values: list[Value]) -> None:
    pending: Awaitable[None] | None = plc._take_values(values)
    if pending is not None:
        await pending


def _drain(plc: OpcUaCollector) -> list[ReadingTuple]:
    out = []
    while plc._queue.qsize():
        out.append(plc._queue.get_nowait())
    return out


async def test_a_batch_becomes_readings_in_order_with_one_ingest_time() -> None:
    plc, clock, _ = collector()
    values = [value(GOOD, 1, T0), value(STATE, "run", T0 + SECOND), value(POWER, 2.5, T0 + 2 * SECOND)]
    await take(plc, values)
    readings = _drain(plc)
    assert [(r.signal, r.value, r.ts) for r in readings] == [
        ("good_count", 1, T0),
        ("state", "run", T0 + SECOND),
        ("power_kw", 2.5, T0 + 2 * SECOND),
    ]
    assert [r.seq for r in readings] == [1, 2, 3]
    assert {r.ingest_ts for r in readings} == {INGEST}
    assert clock.calls == 1  # once per batch, not per value
    assert (plc.health.notifications, plc.health.readings, plc.health.last_data) == (3, 3, INGEST)


async def test_a_batch_is_what_the_values_make_one_at_a_time() -> None:
    values = [
        value(GOOD, 1, T0, server=T0 + SECOND),
        value(STATE, None, T0, code=ua.StatusCodes.BadCommunicationError),
        value(POWER, 2.5, None, code=0x40000000, server=T0 + 2 * SECOND),  # uncertain, no source time
        value(GOOD, 2, T0 + SECOND),
    ]
    batched, _, _ = collector()
    await take(batched, values)
    single, _, _ = collector()
    for handle, v, code, source_ts, _, server_ts, _ in values:
        await single._emit_value(single._by_handle[handle], v, code, source_ts, server_ts)
    assert _drain(batched) == _drain(single)
    assert batched.health.timestamp_fallbacks == single.health.timestamp_fallbacks == 1
    assert batched.health.skew_server_minus_source_s == single.health.skew_server_minus_source_s == 1.0
    assert batched.health.skew_ingest_minus_server_s == single.health.skew_ingest_minus_server_s == (10 - 2)


async def test_tuples_batches_and_readings_give_the_same_readings() -> None:
    # The queue holds tuples: tuples() hands them over as they are (the embedded runtime),
    # batches() and readings() as the Reading each stands for (everyone else).
    values = [
        value(GOOD, 1, T0, server=T0 + SECOND),
        value(STATE, None, T0, code=ua.StatusCodes.BadCommunicationError),
        value(POWER, 2.5, None, code=0x40000000, server=T0 + 2 * SECOND),
    ]
    streams: list[list[Any]] = []
    for consume in ("tuples", "batches", "readings"):
        plc, _, _ = collector()
        await take(plc, values)
        if consume == "readings":
            iterator = plc.readings()
            got = [await anext(iterator) for _ in values]
        else:
            got = await anext(plc.tuples(10) if consume == "tuples" else plc.batches(10))
        streams.append(got)
    tuples, batches, readings = streams
    assert [type(r) for r in tuples] == [ReadingTuple] * 3
    assert [type(r) for r in batches + readings] == [Reading] * 6
    assert [r.reading() for r in tuples] == batches == readings
    assert [(r.signal, r.quality, r.status_code) for r in readings] == [
        ("good_count", Quality.GOOD, 0),
        ("state", Quality.BAD, ua.StatusCodes.BadCommunicationError),
        ("power_kw", Quality.UNCERTAIN, 0x40000000),
    ]


async def test_repeats_are_skipped_and_the_newest_source_time_is_remembered() -> None:
    plc, _, _ = collector()
    await take(plc, [value(GOOD, 1, T0), value(GOOD, 2, T0 + SECOND)])
    # The same sample again (source time, value, status), then news.
    await take(plc, [value(GOOD, 2, T0 + SECOND), value(GOOD, 3, T0 + 2 * SECOND)])
    assert [r.value for r in _drain(plc)] == [1, 2, 3]
    assert plc.health.repeats == 1
    assert plc.health.notifications == 4
    item = plc._by_handle[GOOD]
    assert item.last == (T0 + 2 * SECOND, 3, 0)
    assert item.delivered == T0 + 2 * SECOND


async def test_bad_values_quality_node_gone_and_unsupported_types() -> None:
    plc, _, letters = collector()
    gone = ua.StatusCodes.BadNodeIdUnknown
    await take(
        plc,
        [
            value(GOOD, None, T0, code=ua.StatusCodes.BadOutOfService),
            value(STATE, b"\x01", T0),  # a ByteString cannot be a reading
            value(POWER, T0, T0),  # nor a DateTime
            value(POWER, None, T0 + SECOND, code=gone),
            value(999, 1, T0),  # a handle no item has
            value(GOOD, 7, T0 + SECOND),
        ],
    )
    readings = _drain(plc)
    assert [(r.signal, r.value, r.quality) for r in readings] == [
        ("good_count", None, Quality.BAD),
        ("power_kw", None, Quality.BAD),
        ("good_count", 7, Quality.GOOD),
    ]
    assert [(d.reason, d.where) for d in letters] == [
        ("unsupported_type", "ns=2;s=press.state"),
        ("unsupported_type", "ns=2;s=press.power"),
    ]
    assert plc.health.items_failed == {"ns=2;s=press.power": "BadNodeIdUnknown"}
    assert plc.health.items_ok == 3 - 1


async def test_the_null_time_is_no_time_and_the_fallback_is_counted() -> None:
    plc, _, _ = collector()
    null = datetime(1601, 1, 1, tzinfo=UTC)  # what the decoder gives for the OPC UA null DateTime
    await take(plc, [value(GOOD, 1, null, server=T0), value(STATE, "run", None)])
    first, second = _drain(plc)
    assert (first.ts, first.server_ts) == (T0, T0)  # source policy: no source time, the server's
    assert second.ts == INGEST  # neither: the ingest time
    assert plc.health.timestamp_fallbacks == 2


@pytest.mark.parametrize(
    ("overflow", "kept"),
    [("drop_oldest", [4, 5, 6, 7]), ("drop_newest", [0, 1, 2, 3])],
)
async def test_a_batch_larger_than_the_queue_keeps_the_policys_readings_and_counts_the_rest(
    overflow: str, kept: list[int]
) -> None:
    plc, _, _ = collector(size=4, overflow=overflow)
    await take(plc, [value(GOOD, n, T0 + n * SECOND) for n in range(8)])
    assert [r.value for r in _drain(plc)] == kept
    assert plc.dropped == 8 - 4
    assert plc.health.readings == 8  # made, then dropped by the queue's policy


async def test_under_block_a_full_queue_holds_the_publish_loop_until_the_reader_takes() -> None:
    plc, _, _ = collector(size=2, overflow="block")
    pending = plc._take_values([value(GOOD, n, T0 + n * SECOND) for n in range(5)])
    assert pending is not None
    putting = asyncio.ensure_future(pending)
    await asyncio.sleep(0)
    assert not putting.done()
    taken: list[Any] = []
    async for batch in plc.batches(10):
        taken += [r.value for r in batch]
        if len(taken) == 5:
            break
    await asyncio.wait_for(putting, 5)
    assert taken == [0, 1, 2, 3, 4]
    assert plc.dropped == 0


async def test_values_before_the_catch_up_is_out_are_held_bounded_then_released_in_order() -> None:
    plc, _, _ = collector(size=2, overflow="drop_oldest")
    plc._held = []  # as a session does until its catch-up is out
    assert plc._take_values([value(GOOD, n, T0 + n * SECOND) for n in range(5)]) is None
    assert plc._take_values([value(GOOD, n, T0 + n * SECOND) for n in range(5, 10)]) is None
    assert plc._queue.qsize() == 0
    # At most four queues' worth (4 x 2) are held: the 2 oldest of the 10 are dropped and counted.
    assert plc.health.dropped_events == 10 - 4 * 2
    await plc._release_held()
    assert [r.value for r in _drain(plc)] == [8, 9]  # the queue holds 2; the rest counted there
    assert plc.dropped == 8 - 2
    assert plc._held is None
    await take(plc, [value(GOOD, 10, T0 + 10 * SECOND)])  # from now on, straight to the queue
    assert [r.value for r in _drain(plc)] == [10]


class _Stop(Exception):
    pass


class _Sub:
    """A subscription as the watchdog sees it: silent for 1000 s."""

    def __init__(self) -> None:
        self.last_publish_at = time.monotonic() - 1000


@pytest.mark.parametrize(("full", "trips"), [(True, 0), (False, 1)])
async def test_the_watchdog_does_not_count_a_wait_for_room_under_block_as_silence(
    monkeypatch: pytest.MonkeyPatch, full: bool, trips: int
) -> None:
    plc, _, _ = collector(size=2, overflow="block")
    if full:
        await plc._queue.put_many([_reading(1), _reading(2)])  # the publish loop would wait now
    plc._watched = [(_Sub(), time.monotonic() - 1000)]  # type: ignore[list-item]
    ticks = 0

    async def tick(_: float) -> None:
        nonlocal ticks
        ticks += 1
        if ticks > 3:
            raise _Stop

    monkeypatch.setattr(opcua.asyncio, "sleep", tick)
    with pytest.raises((_Stop, opcua._Silent)):
        await plc._watchdog()
    assert plc.health.watchdog_trips == trips
    assert ticks == (4 if full else 1)  # three ticks with no trip, then stopped; or a trip at once


def _reading(n: int) -> Reading:
    return Reading.trusted(
        ts=T0, machine="press", signal="good_count", value=n, source="plc", seq=n, ingest_ts=INGEST
    )
