"""The pure parts of the MQTT collector: topic templates, payload decoders, queue policies, back-off."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random

import aiomqtt
import pytest

from collectors.backoff import Backoff
from collectors.mqtt import MqttCollector, _Inbox, _sparkplug_reason
from collectors.payloads import PayloadError, decode_json, decode_number
from collectors.queue import BoundedQueue
from collectors.topics import TopicTemplate
from plantstream.plant import PlantError, parse_plant
from plantstream.plant.schema import JsonField, JsonTimestamp, MqttSource
from plantstream.records import DeadLetter

RECEIVED = dt.datetime(2026, 3, 2, 8, 0, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("plant/{line}/{machine}/meter", "plant/l1/m1/meter", {"line": "l1", "machine": "m1"}),
        ("plant/{line}/{machine}/meter", "plant/l1/m1/meter/x", None),
        ("plant/{line}/{machine}/meter", "plant/l1//meter", None),
        ("plant/+/{machine}/#", "plant/a/m2/b/c", {"machine": "m2"}),
        ("plant/+/{machine}/#", "plant/a/m2", {"machine": "m2"}),
        ("factory/{machine}", "plant/m1", None),
    ],
)
def test_topic_templates(pattern: str, topic: str, expected: dict[str, str] | None) -> None:
    assert TopicTemplate(pattern).match(topic) == expected


def test_topic_template_filter() -> None:
    assert TopicTemplate("plant/{line}/{machine}/meter").filter == "plant/+/+/meter"
    assert TopicTemplate("plant/+/{machine}/#").filter == "plant/+/+/#"


FIELDS = [
    JsonField(path="meter.power_w", signal="power_kw", scale=0.001),
    JsonField(path="state", signal="state"),
]


def test_json_dotted_paths_scaling_and_text_values() -> None:
    payload = b'{"meter": {"power_w": 12500}, "state": "running"}'
    samples = decode_json(payload, FIELDS, None, RECEIVED)
    assert [(s.signal, s.value, s.ts) for s in samples] == [
        ("power_kw", 12.5, RECEIVED),
        ("state", "running", RECEIVED),
    ]


@pytest.mark.parametrize(
    ("fmt", "raw", "expected"),
    [
        ("iso8601", "2026-03-02T15:00:00+07:00", dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)),
        ("epoch_s", 1772438400, dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)),
        ("epoch_ms", 1772438400250, dt.datetime(2026, 3, 2, 8, 0, 0, 250_000, tzinfo=dt.UTC)),
        ("epoch_ns", 1772438400000000000, dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)),
    ],
)
def test_json_timestamp_formats(fmt: str, raw: object, expected: dt.datetime) -> None:
    import json

    payload = json.dumps({"t": raw, "meter": {"power_w": 1}, "state": "idle"}).encode()
    samples = decode_json(payload, FIELDS, JsonTimestamp(path="t", format=fmt), RECEIVED)  # type: ignore[arg-type]
    assert samples[0].ts == expected


@pytest.mark.parametrize(
    ("payload", "reason", "fragment"),
    [
        (b"{nope", "not_json", "not JSON"),
        (b'{"state": "idle"}', "missing_field", "meter.power_w"),
        (b'{"meter": {"power_w": "high"}, "state": "idle"}', "wrong_type", "meter.power_w"),
        (b'{"meter": {"power_w": null}, "state": "idle"}', "wrong_type", "None"),
    ],
)
def test_json_errors_name_the_field(payload: bytes, reason: str, fragment: str) -> None:
    with pytest.raises(PayloadError, match=fragment) as caught:
        decode_json(payload, FIELDS, None, RECEIVED)
    assert caught.value.reason == reason


def test_json_naive_or_garbled_timestamps_are_refused() -> None:
    for raw in ('"2026-03-02T08:00:00"', '"soon"', "true"):
        payload = f'{{"t": {raw}, "meter": {{"power_w": 1}}, "state": "idle"}}'.encode()
        with pytest.raises(PayloadError) as caught:
            decode_json(payload, FIELDS, JsonTimestamp(path="t"), RECEIVED)
        assert caught.value.reason == "bad_timestamp"


@pytest.mark.parametrize(("payload", "value"), [(b"42", 42), (b" -7.5\n", -7.5), (b"1e3", 1000.0)])
def test_bare_numbers(payload: bytes, value: float) -> None:
    assert decode_number(payload) == value


@pytest.mark.parametrize("payload", [b"twelve", b"nan", b"inf", b"", b"\xff"])
def test_not_numbers(payload: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        decode_number(payload)
    assert caught.value.reason == "not_a_number"


async def test_queue_policies_count_what_they_drop() -> None:
    newest: BoundedQueue[int] = BoundedQueue(2, "drop_newest")
    oldest: BoundedQueue[int] = BoundedQueue(2, "drop_oldest")
    for i in range(5):
        await newest.put(i)
        await oldest.put(i)
    assert (newest.dropped, oldest.dropped) == (3, 3)
    assert [await newest.get(), await newest.get()] == [0, 1]
    assert [await oldest.get(), await oldest.get()] == [3, 4]
    blocking: BoundedQueue[int] = BoundedQueue(1, "block")
    await blocking.put(1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(blocking.put(2), 0.05)
    assert blocking.dropped == 0


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    backoff = Backoff(first_s=0.5, cap_s=4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [min(4.0, 0.5 * 2**i) for i in range(10)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 10
    backoff.reset()
    assert backoff.next_delay() <= 0.5


SOURCE = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - {{id: m1, signals: {{power_kw: power_kw}}}}
sources:
  - type: mqtt
    id: meters
    url: {url}
    subscriptions:
      - {sub}
"""


@pytest.mark.parametrize(
    ("url", "sub", "fragment"),
    [
        ("http://x", "{topic: 'a/{machine}', payload: number, signal: power_kw}", "is not mqtt://host"),
        ("mqtt://x", "{topic: 'a/b', payload: number, signal: power_kw}", "name the machine"),
        ("mqtt://x", "{topic: 'a/{machine}', payload: json}", "need `fields`"),
        ("mqtt://x", "{topic: 'a/{machine}', payload: number}", "{signal}"),
        ("mqtt://x", "{topic: 'a/#/{machine}', payload: number, signal: s}", "'#' may only"),
        ("mqtt://x", "{topic: 'a/m{machine}', payload: number, signal: s}", "whole level"),
        ("mqtt://x", "{topic: 'a/{machine}', payload: protobuf, signal: s}", "payload"),
    ],
)
def test_source_config_errors_point_at_the_line(url: str, sub: str, fragment: str) -> None:
    with pytest.raises(PlantError) as caught:
        parse_plant(SOURCE.format(url=url, sub=sub))
    text = str(caught.value)
    assert fragment in text
    assert text.startswith("plant.yaml:1")


async def test_a_dropping_queue_lets_its_reader_run_before_it_drops() -> None:
    queue: BoundedQueue[int] = BoundedQueue(10, "drop_oldest")
    taken: list[int] = []

    async def reader() -> None:
        while len(taken) < 100:
            taken.append(await queue.get())

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    for i in range(100):  # a producer that never waits for anything else
        await queue.put(i)
    await asyncio.wait_for(task, 5)
    assert taken == list(range(100))
    assert queue.dropped == 0


def _message(topic: str, payload: bytes) -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, qos=1, retain=False, mid=1, properties=None)


def _raw_collector(queue_size: int = 10) -> tuple[MqttCollector, list[DeadLetter]]:
    text = SOURCE.format(
        url="mqtt://127.0.0.1:1",
        sub="{topic: 'plant/{line}/{machine}/raw', payload: number, signal: power_kw}",
    ).replace("    subscriptions:", f"    queue: {{size: {queue_size}, overflow: block}}\n    subscriptions:")
    [src] = parse_plant(text).model.sources
    assert isinstance(src, MqttSource)
    letters: list[DeadLetter] = []
    return MqttCollector(src, {"m1": "l1"}, on_dead_letter=letters.append, clock=lambda: RECEIVED), letters


def test_refusals_that_need_no_broker_name_their_reason() -> None:
    collector, letters = _raw_collector()
    # The broker delivers on the filter plant/+/+/raw; an empty level fits the filter, not the template.
    assert collector._take_now(_message("plant/l1//raw", b"1"))
    assert [(d.reason, d.where) for d in letters] == [("unmatched_topic", "plant/l1//raw")]
    assert collector._take_now(_message("plant/l1/m1/raw", b"2.5"))
    assert collector._queue.qsize() == 1
    reading = collector._queue._queue.get_nowait()
    assert (reading.machine, reading.signal, reading.value, reading.ts) == ("m1", "power_kw", 2.5, RECEIVED)
    assert collector.health.bad == {"unmatched_topic": 1}
    assert (collector.health.received, collector.health.readings) == (2, 1)
    assert _sparkplug_reason("unknown alias 7 from G1/E1") == "unknown_alias"
    assert _sparkplug_reason("sequence gap: expected 5, got 7 (G1/E1)") == "sequence_gap"
    assert _sparkplug_reason("DDATA from G1/E1/d before its DBIRTH") == "data_before_birth"


def test_refusals_on_many_topics_cost_one_log_line_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    collector, letters = _raw_collector(queue_size=10_000)
    caplog.set_level(logging.WARNING, logger="plantstream.collectors.mqtt")
    topics = [f"plant/l1/ghost{i}/raw" for i in range(1000)]  # a sender that invents a machine per message
    for topic in topics:
        collector._take_now(_message(topic, b"1"))
    # With a receiver, every refusal is its dead letter and the collector itself says nothing.
    assert [d.where for d in letters] == topics
    assert caplog.records == []

    alone = MqttCollector(collector.source, {"m1": "l1"}, clock=lambda: RECEIVED)
    for topic in topics:
        alone._take_now(_message(topic, b"1"))
        alone._take_now(_message("plant/l1/m1/raw", b"not a number"))
    assert alone.health.bad == {"unknown_machine": 1000, "not_a_number": 1000}
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said  # one line per reason, whatever the number of topics
    assert "unknown_machine on plant/l1/ghost0/raw" in said[0]
    assert alone._logged == {"unknown_machine", "not_a_number"}


def test_a_message_is_taken_at_once_only_when_nothing_waits_and_there_is_room() -> None:
    collector, _ = _raw_collector(queue_size=1)
    inbox = _Inbox(take=collector._take_now)
    inbox.put_nowait(_message("plant/l1/m1/raw", b"1"))  # taken: the collector's queue had room
    assert (inbox.qsize(), collector._queue.qsize()) == (0, 1)
    inbox.put_nowait(_message("plant/l1/m1/raw", b"2"))  # no room under block: it waits in the inbox
    collector._queue._queue.get_nowait()
    inbox.put_nowait(_message("plant/l1/m1/raw", b"3"))  # room again, but 2 waits before it: order kept
    assert [m.payload for m in (inbox.get_nowait(), inbox.get_nowait())] == [b"2", b"3"]
    assert collector.health.received == 1  # the waiting ones are counted when the session loop takes them


def test_a_defect_in_decoding_costs_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    collector, letters = _raw_collector()

    def broken(*args: object) -> float:
        raise KeyError("boom")

    monkeypatch.setattr("collectors.mqtt.decode_number", broken)
    assert collector._take_now(_message("plant/l1/m1/raw", b"1"))
    assert [d.reason for d in letters] == ["internal_error"]
    assert "KeyError" in letters[0].error


async def test_closing_a_collector_survives_a_swallowed_cancellation() -> None:
    """Python 3.11's asyncio.wait_for can swallow a cancellation; closing must still end the session."""
    from collectors.base import Collector

    swallowed, ended = asyncio.Event(), asyncio.Event()

    class Stubborn(Collector):
        async def _session_loop(self) -> None:
            try:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    swallowed.set()
                await asyncio.Event().wait()  # as if waiting for messages that never come
            finally:
                ended.set()

    stubborn = Stubborn("stub", 1, "block")
    await stubborn.__aenter__()
    await asyncio.sleep(0)
    closing = asyncio.create_task(stubborn.__aexit__(None, None, None))
    await asyncio.wait({closing}, timeout=30)  # a guard against hanging, not a measurement
    assert swallowed.is_set()
    assert closing.done()
    assert ended.is_set()
