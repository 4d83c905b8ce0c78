"""Sparkplug B through the MQTT collector and a real Mosquitto: birth, data by alias, death, rebirth."""

from __future__ import annotations

import asyncio
import threading

import paho.mqtt.client as paho
from services import Broker

from collectors import sparkplug as spb
from collectors.backoff import Backoff
from collectors.mqtt import MqttCollector
from plantstream.plant import parse_plant
from plantstream.plant.schema import MqttSource
from plantstream.records import Quality

PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - {{id: E1, signals: {{power_kw: power_kw}}}}
          - {{id: press1, signals: {{power_kw: power_kw, good_count: good_count}}, ideal_cycle_s: 1}}
sources:
  - type: mqtt
    id: scada
    url: {url}
    client_id: plantstream-spb
    subscriptions:
      - topic: spBv1.0/G1/#
        payload: sparkplug_b
        metrics: {{Power: power_kw, Good: good_count}}
"""
T = 1_772_438_400_000  # 2026-03-02T08:00:00Z in ms


def metric(name: str | None, alias: int | None, datatype: spb.DataType, value: object) -> spb.Metric:
    return spb.Metric(name=name, alias=alias, timestamp_ms=T, datatype=datatype, value=value)  # type: ignore[arg-type]


class Publisher:
    """A paho client that publishes Sparkplug messages and records the NCMDs it receives."""

    def __init__(self, port: int) -> None:
        self.commands: list[bytes] = []
        self.got_command = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="edge-E1")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("spBv1.0/G1/NCMD/E1", qos=0)
        self.client.loop_start()

    def _on_message(self, _client: object, _userdata: object, message: paho.MQTTMessage) -> None:
        self.commands.append(message.payload)
        self.got_command.set()

    def send(self, kind: str, seq: int | None, metrics: list[spb.Metric], device: str | None = None) -> None:
        topic = f"spBv1.0/G1/{kind}/E1" + (f"/{device}" if device else "")
        payload = spb.encode_payload(spb.Payload(timestamp_ms=T, seq=seq, metrics=tuple(metrics)))
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def source(url: str) -> MqttSource:
    [src] = parse_plant(PLANT.format(url=url)).model.sources
    assert isinstance(src, MqttSource)
    return src


async def test_birth_data_by_alias_death_and_rebirth_on_a_sequence_gap(broker: Broker) -> None:
    readings = []
    async with MqttCollector(
        source(broker.url), {"E1": "l1", "press1": "l1"}, backoff=Backoff(0.05, 0.5)
    ) as c:
        for _ in range(200):
            if c.health.connected:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        edge = await asyncio.to_thread(Publisher, broker.port)
        try:
            await asyncio.to_thread(
                edge.send,
                "NBIRTH",
                0,
                [
                    metric("bdSeq", None, spb.DataType.INT64, 0),
                    metric("Power", 1, spb.DataType.DOUBLE, 5.0),
                    metric("Node Control/Rebirth", None, spb.DataType.BOOLEAN, False),
                ],
            )
            await asyncio.to_thread(
                edge.send, "DBIRTH", 1, [metric("Good", 2, spb.DataType.UINT32, 100)], "press1"
            )
            await asyncio.to_thread(edge.send, "NDATA", 2, [metric(None, 1, spb.DataType.UNKNOWN, 6.5)])
            await asyncio.to_thread(
                edge.send, "DDATA", 3, [metric(None, 2, spb.DataType.UNKNOWN, 101)], "press1"
            )
            # seq 4 is lost: 5 is a gap, and the host must ask the node for a rebirth.
            await asyncio.to_thread(edge.send, "NDATA", 5, [metric(None, 1, spb.DataType.UNKNOWN, 7.0)])
            assert await asyncio.to_thread(edge.got_command.wait, 10)
            await asyncio.to_thread(edge.send, "NDEATH", None, [metric("bdSeq", None, spb.DataType.INT64, 0)])
            async for reading in c.readings():
                readings.append(reading)
                if reading.quality is Quality.BAD and reading.machine == "press1":
                    break
        finally:
            edge.close()
        assert c.health.rebirths == 1
        assert c.health.bad["sequence_gap"] == 1
    values = [(r.machine, r.signal, r.value, r.quality.value) for r in readings]
    assert values[:5] == [
        ("E1", "power_kw", 5.0, "good"),
        ("press1", "good_count", 100, "good"),
        ("E1", "power_kw", 6.5, "good"),
        ("press1", "good_count", 101, "good"),
        ("E1", "power_kw", 7.0, "good"),
    ]
    assert ("E1", "power_kw", None, "bad") in values[5:]
    assert ("press1", "good_count", None, "bad") in values[5:]
    [command] = edge.commands
    decoded = spb.decode_payload(command)
    assert [(m.name, m.value) for m in decoded.metrics] == [("Node Control/Rebirth", True)]
