"""The MQTT collector against a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from services import Broker, free_port

from collectors.backoff import Backoff
from collectors.mqtt import MqttCollector
from plantstream.plant import parse_plant
from plantstream.plant.schema import MqttSource
from plantstream.records import DeadLetter, Reading

MACHINES = {"m1": "l1", "m2": "l1", "m3": "l1"}

PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - {{id: m1, signals: {{power_kw: power_kw, energy_kwh: energy_kwh}}}}
          - {{id: m2, signals: {{power_kw: power_kw, energy_kwh: energy_kwh}}}}
          - {{id: m3, signals: {{power_kw: power_kw, energy_kwh: energy_kwh}}}}
sources:
  - type: mqtt
    id: meters
    url: {url}
    client_id: {client_id}
    {tls}
    subscriptions:
      - topic: plant/{{line}}/{{machine}}/meter
        payload: json
        timestamp: {{path: ts, format: iso8601}}
        fields:
          - {{path: power_w, signal: power_kw, scale: 0.001}}
          - {{path: energy_wh, signal: energy_kwh, scale: 0.001}}
      - topic: plant/{{line}}/{{machine}}/raw/{{signal}}
        payload: number
"""


def source(url: str, client_id: str = "plantstream-test", tls: str = "") -> MqttSource:
    text = PLANT.format(url=url, client_id=client_id, tls=tls)
    [src] = parse_plant(text).model.sources
    return src


FAST = Backoff(first_s=0.05, cap_s=0.5)


async def take(collector: MqttCollector, n: int, timeout: float = 15) -> list[Reading]:
    out: list[Reading] = []
    iterator: AsyncIterator[Reading] = collector.readings()

    async def collect() -> None:
        async for reading in iterator:
            out.append(reading)
            if len(out) >= n:
                return

    await asyncio.wait_for(collect(), timeout)
    return out


async def connected(collector: MqttCollector, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if collector.health.connected:
            await asyncio.sleep(0.2)  # the subscriptions follow the connect
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not connected: {collector.health.last_error}")


def meter(ts: str, power_w: float, energy_wh: float) -> str:
    return json.dumps({"ts": ts, "power_w": power_w, "energy_wh": energy_wh})


async def test_json_and_bare_number_payloads_from_mosquitto_pub_and_paho(broker: Broker) -> None:
    async with MqttCollector(source(broker.url), MACHINES, backoff=FAST) as collector:
        await connected(collector)
        await asyncio.to_thread(
            broker.publish, "plant/l1/m1/meter", meter("2026-03-02T08:00:00Z", 12500, 1_000_500)
        )
        # paho, as a second, independent publisher.
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-pub")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.publish("plant/l1/m2/raw/power_kw", b"7.25", qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        readings = await take(collector, 3)
    by_key = {(r.machine, r.signal): r for r in readings}
    m1_power = by_key["m1", "power_kw"]
    assert m1_power.value == pytest.approx(12.5)
    assert m1_power.ts == dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)
    assert by_key["m1", "energy_kwh"].value == pytest.approx(1000.5)
    assert by_key["m2", "power_kw"].value == 7.25
    assert all(r.source == "meters" and r.quality == "good" for r in readings)
    assert [r.seq for r in readings] == [1, 2, 3]


async def test_persistent_session_delivers_what_was_published_while_away(broker: Broker) -> None:
    src = source(broker.url, client_id="plantstream-persist")
    async with MqttCollector(src, MACHINES, backoff=FAST) as collector:
        await connected(collector)
    # The collector is gone; the broker keeps its session and queues QoS 1 messages.
    for i in range(20):
        await asyncio.to_thread(broker.publish, "plant/l1/m3/raw/power_kw", str(i))
    async with MqttCollector(src, MACHINES, backoff=FAST) as collector:
        readings = await take(collector, 20)
    assert sorted(r.value for r in readings) == list(range(20))


async def test_data_flows_again_after_a_broker_restart(broker: Broker) -> None:
    async with MqttCollector(
        source(broker.url, client_id="plantstream-restart"), MACHINES, backoff=FAST
    ) as collector:
        await connected(collector)
        await asyncio.to_thread(broker.publish, "plant/l1/m1/raw/power_kw", "1")
        assert [r.value for r in await take(collector, 1)] == [1]
        await asyncio.to_thread(broker.stop)
        for _ in range(200):
            if not collector.health.connected:
                break
            await asyncio.sleep(0.05)
        assert not collector.health.connected
        await asyncio.to_thread(broker.start)
        await connected(collector)
        await asyncio.to_thread(broker.publish, "plant/l1/m1/raw/power_kw", "2")
        assert [r.value for r in await take(collector, 1)] == [2]
        assert collector.health.reconnects >= 1


async def test_bad_payloads_are_counted_dead_lettered_and_the_good_ones_flow(broker: Broker) -> None:
    letters: list[DeadLetter] = []
    async with MqttCollector(
        source(broker.url), MACHINES, on_dead_letter=letters.append, backoff=FAST
    ) as collector:
        await connected(collector)
        bad = [
            ("plant/l1/m1/meter", "{not json"),
            ("plant/l1/m1/meter", json.dumps({"ts": "2026-03-02T08:00:00Z", "power_w": 1})),
            ("plant/l1/m1/meter", meter("2026-03-02T08:00:00Z", "high", 1)),  # type: ignore[arg-type]
            ("plant/l1/m1/meter", meter("yesterday", 1, 1)),
            ("plant/l1/m1/raw/power_kw", "twelve"),
            ("plant/l1/m9/raw/power_kw", "1"),
            ("plant/l2/m1/raw/power_kw", "1"),
        ]
        for i, (topic, payload) in enumerate(bad):
            await asyncio.to_thread(broker.publish, topic, payload)
            await asyncio.to_thread(broker.publish, "plant/l1/m2/raw/power_kw", str(i))
        readings = await take(collector, len(bad))
        for _ in range(100):
            if len(letters) == len(bad):
                break
            await asyncio.sleep(0.05)
    assert [r.value for r in readings] == list(range(len(bad)))
    assert dict(collector.health.bad) == {
        "not_json": 1,
        "missing_field": 1,
        "wrong_type": 1,
        "bad_timestamp": 1,
        "not_a_number": 1,
        "unknown_machine": 2,
    }
    assert (letters[0].reason, letters[0].where) == ("not_json", "plant/l1/m1/meter")
    assert letters[0].raw == "{not json"
    assert "energy_wh" in letters[1].error
    assert "line 'l2'" in letters[6].error


def _certificates(directory: Path, common_name: str = "127.0.0.1") -> Path:
    """A CA and a server certificate signed by it, for the broker; returns the CA file."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(tz=dt.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, server_key = key(), key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plantstream test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory / "ca.pem"


# paho leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_tls_with_the_right_ca_and_a_clear_error_with_a_wrong_one(tmp_path: Path) -> None:
    ca = _certificates(tmp_path)
    broker = Broker(port=free_port(), directory=tmp_path, tls_port=free_port())
    broker.start()
    try:
        url = f"mqtts://127.0.0.1:{broker.tls_port}"
        good = source(url, tls=f"tls: {{ca_file: {ca}}}")
        async with MqttCollector(good, MACHINES, backoff=FAST) as collector:
            await connected(collector)
            await asyncio.to_thread(broker.publish, "plant/l1/m1/raw/power_kw", "3")
            assert [r.value for r in await take(collector, 1)] == [3]
        other = tmp_path / "other"
        other.mkdir()
        wrong = source(url, client_id="plantstream-wrong", tls=f"tls: {{ca_file: {_certificates(other)}}}")
        async with MqttCollector(wrong, MACHINES, backoff=FAST) as collector:
            for _ in range(100):
                if collector.health.last_error:
                    break
                await asyncio.sleep(0.05)
            assert not collector.health.connected
            assert collector.health.last_error is not None
            assert "check tls.ca_file" in collector.health.last_error
            assert f"127.0.0.1:{broker.tls_port}" in collector.health.last_error
    finally:
        broker.stop()
