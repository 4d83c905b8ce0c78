"""Smoke test of the MQTT benchmark (bench/mqtt.py) against a Mosquitto the test starts.

No timing is asserted anywhere: the machine is shared and noisy. These tests only check that both
consumers receive every message published at QoS 1 while they were away, that the collector turns
each into two readings, and that rounds do not leak messages into each other.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import Broker, free_port

from bench.mqtt import (
    BenchResult,
    Consumed,
    Published,
    Settings,
    measure,
    meter_message,
    meter_source,
    run_round,
    table_row,
)

SMALL = Settings(messages=200, machines=5, idle_s=2.0, timeout_s=20.0)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(port=free_port(), directory=tmp_path)
    b.start()
    yield b
    b.stop()


def test_the_source_is_the_example_subscription_with_the_url_and_client_id_substituted() -> None:
    source, machines = meter_source("mqtt://127.0.0.1:1234", "bench-x", 5)
    assert (source.url, source.client_id, source.persistent_session) == (
        "mqtt://127.0.0.1:1234",
        "bench-x",
        True,
    )
    [sub] = source.subscriptions
    assert (sub.topic, sub.qos, sub.payload) == ("plant/{line}/{machine}/meter", 1, "json")
    assert [(f.path, f.signal, f.scale) for f in sub.fields] == [
        ("power_w", "power_kw", 0.001),
        ("energy_wh", "energy_kwh", 0.001),
    ]
    assert machines == {f"m{k}": "l1" for k in range(1, 6)}
    assert meter_message(7, 5)[0] == "plant/l1/m3/meter"


def test_one_round_of_each_consumer_loses_nothing_and_readings_come_out(broker: Broker) -> None:
    log = io.StringIO()
    result = measure(broker.port, SMALL, repeat=1, log=log)
    [raw], [collector] = result.raw, result.collector
    for consumed in (raw, collector):
        assert consumed.stopped == "complete"
        assert (consumed.distinct, consumed.lost, consumed.duplicates, consumed.stray) == (200, 0, 0, 0)
        assert consumed.discarded == 0
        assert consumed.rate > 0
    assert collector.readings == 400
    assert collector.bad == {}
    assert collector.queue_dropped == 0
    assert [p.messages for p in result.published] == [200, 200]
    assert result.failures() in ([], [f"ratio {result.ratio:.2f} < 0.9"])
    assert "| 200 | 200 | unbounded |" in table_row(result, "2026-11-28")
    assert "round 1/1: raw" in log.getvalue()
    assert "round 1/1: collector" in log.getvalue()


def test_backlogs_are_published_and_consumed_in_steps_without_leaking(broker: Broker) -> None:
    settings = Settings(messages=150, machines=3, backlog=60, idle_s=2.0, timeout_s=20.0)
    published, consumed = run_round("collector", "steps", broker.port, settings)
    assert published.messages == 150
    assert (consumed.expected, consumed.distinct, consumed.duplicates, consumed.stray) == (150, 150, 0, 0)
    assert consumed.readings == 300


def test_losses_and_a_low_ratio_are_reported_as_missed_targets() -> None:
    result = BenchResult(Settings(messages=10))
    result.published.append(Published(10, 1.0))
    result.raw.append(Consumed("raw", 10, received=10, distinct=10, seconds=1.0))
    result.collector.append(
        Consumed("collector", 10, received=8, distinct=8, readings=16, seconds=1.0, discarded=2)
    )
    assert result.ratio == pytest.approx(0.8)
    assert result.collector_lost == 2
    assert result.failures() == [
        "ratio 0.80 < 0.9",
        "collector lost 2 messages (2 discarded by aiomqtt's full queue)",
    ]
