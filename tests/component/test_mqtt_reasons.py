"""The MQTT reason topic: a reason code published to a machine's topic becomes its stop's reason.

A real Mosquitto broker and the embedded runtime: the state and the PLC's reason code arrive as
fields of one JSON payload (collectors/mqtt.py); the reason tree maps the code (docs/plant-file.md,
"Stop reasons").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services import Broker

from plantstream.plant import load_plant
from plantstream.records import Point, Reading
from runtimes.embedded import CHECKPOINT, EmbeddedPipeline
from streams.config import build_spec
from streams.engine import Engine

PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: m1
            signals: {{state: {{role: state, codes: {{1: running, 3: down}}}}, fault: reason}}
reasons:
  groups: {{mechanical: breakdown}}
  codes:
    301: {{reason: motor overload, group: mechanical}}
sources:
  - type: mqtt
    id: plc
    url: {url}
    subscriptions:
      - topic: plant/{{line}}/{{machine}}/status
        payload: json
        timestamp: {{path: ts, format: iso8601}}
        fields:
          - {{path: state, signal: state}}
          - {{path: fault, signal: fault}}
"""
# (second of 08:00 UTC, state code, reason code): two stops, 10-40 s under code 301, 60-65 s
# under 4711, which the tree does not know; the code is cleared (0) as the machine runs again.
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STATUS = [(0, 1, 0), (10, 3, 301), (40, 1, 0), (60, 3, 4711), (65, 1, 0)]


def stamp(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


async def until(condition: Callable[[], bool], timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_reason_code_on_an_mqtt_topic_is_the_stops_reason(broker: Broker, tmp_path: Path) -> None:
    file = tmp_path / "plant.yaml"
    file.write_text(PLANT.format(url=broker.url), encoding="utf-8")
    plant = load_plant(file)
    spec = build_spec(plant.model)
    state_dir = tmp_path / "state"
    points: list[Point] = []
    readings: list[Reading] = []
    pipeline = EmbeddedPipeline(
        plant, spec, state_dir, on_points=points.extend, on_reading=readings.append, checkpoint_every_s=1
    )
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(stop))
    try:
        # QoS 1 to a session that is not yet subscribed is lost: publish the first until it comes.
        first = json.dumps({"ts": stamp(0).isoformat(), "state": 1, "fault": 0})
        for _ in range(100):
            await asyncio.to_thread(broker.publish, "plant/l1/m1/status", first)
            if readings:
                break
            await asyncio.sleep(0.2)
        for second, state, fault in STATUS[1:]:
            payload = json.dumps({"ts": stamp(second).isoformat(), "state": state, "fault": fault})
            await asyncio.to_thread(broker.publish, "plant/l1/m1/status", payload)
        # Each publish ends before the next starts (mosquitto_pub waits for the broker's PUBACK).
        times = {stamp(second) for second, _, _ in STATUS}
        await until(lambda: times <= {r.ts for r in readings if r.signal == "fault"})
    finally:
        stop.set()
        await running
    engine = Engine(spec)
    engine.restore(json.loads((state_dir / CHECKPOINT).read_text()))
    engine.flush()
    stops = {
        (p.tags["reason"], p.tags["reason_group"], p.fields["duration_s"])
        for p in [*points, *engine.take_points()]
        if p.measurement == "stop"
    }
    # 40 - 10 = 30 s under motor overload; 65 - 60 = 5 s under the unknown code, kept as its own.
    assert stops == {("motor overload", "mechanical", 30.0), ("code 4711", "unknown", 5.0)}
