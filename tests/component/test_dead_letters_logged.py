"""Bad MQTT payloads through the embedded runtime and a real Mosquitto: the pipeline's log says so
once per (reason, source) and then sums them, the letters keep a bounded prefix of the payload, and
/metrics counts the folder."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from services import Broker

from runtimes.embedded import EmbeddedPipeline
from runtimes.plant import load_and_resolve
from sinks.deadletters import RAW_KEPT_BYTES

MINIMAL = Path(__file__).resolve().parents[2] / "examples" / "minimal.yaml"
BAD = 40
BIG = b"x" * 800_000


def plant_file(directory: Path, broker_url: str) -> Path:
    """examples/minimal.yaml with one MQTT source: JSON payloads with ts and value per signal."""
    plant = yaml.safe_load(MINIMAL.read_text())
    plant["sources"] = [
        {
            "type": "mqtt",
            "id": "meters",
            "url": broker_url,
            "client_id": "plantstream-dead-letters",
            "subscriptions": [
                {
                    "topic": "plant/{line}/{machine}/power_kw",
                    "qos": 1,
                    "payload": "json",
                    "timestamp": {"path": "ts", "format": "iso8601"},
                    "fields": [{"path": "value", "signal": "power_kw"}],
                }
            ],
        }
    ]
    path = directory / "plant.yaml"
    path.write_text(yaml.safe_dump(plant, sort_keys=False))
    return path


def publish(broker: Broker, payloads: list[bytes]) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bad-meter")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        sent = [client.publish("plant/l1/m1/power_kw", payload, qos=1) for payload in payloads]
        for info in sent:
            info.wait_for_publish(30)
            assert info.is_published(), "the broker did not acknowledge a payload"
    finally:
        client.loop_stop()
        client.disconnect()


async def test_a_stream_of_bad_payloads_is_one_log_line_then_a_digest_with_the_count(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plantstream.runtime")
    caplog.set_level(logging.INFO, logger="plantstream.collectors.mqtt")
    plant, spec = load_and_resolve(plant_file(tmp_path, broker.url))
    state = tmp_path / "state"
    pipeline = EmbeddedPipeline(plant, spec, state, checkpoint_every_s=0.5)
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(stop))
    try:
        async with asyncio.timeout(60):
            # The collector says it is connected once the broker has acknowledged its subscription.
            while not any("source meters: connected to" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        await asyncio.to_thread(publish, broker, [b"not json"] * BAD + [BIG])
        async with asyncio.timeout(60):
            while pipeline.stats.dead_letters < BAD + 1:
                await asyncio.sleep(0.05)
        metrics = pipeline.metrics()
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)

    said = [r.getMessage() for r in caplog.records if r.name == "plantstream.runtime"]
    firsts = [m for m in said if m.startswith("dead letter from source meters")]
    assert len(firsts) == 1, said  # 41 letters of one (reason, source): one line at once
    assert "reason not_json" in firsts[0]
    assert "at plant/l1/m1/power_kw" in firsts[0]
    # The rest is summed at the latest when the pipeline stops (a digest is due every 60 s).
    digests = [m for m in said if m.startswith("dead letters in the last")]
    assert len(digests) == 1, said
    assert digests[0].endswith(f"source meters not_json: {BAD}")

    letters = [
        json.loads(line) for line in next((state / "deadletter").glob("*.jsonl")).read_text().splitlines()
    ]
    assert len(letters) == BAD + 1
    big = letters[-1]
    assert len(big["raw"]) == RAW_KEPT_BYTES
    assert big["raw_bytes"] == len(BIG)
    assert big["raw_sha256"] == hashlib.sha256(BIG).hexdigest()
    assert "plantstream_dead_letters_truncated_total 1" in metrics
    assert 'plantstream_dead_letters_dropped_total{policy="drop_oldest"} 0' in metrics
    size = sum(f.stat().st_size for f in (state / "deadletter").glob("*.jsonl"))
    assert f"plantstream_dead_letter_folder_bytes {size}" in metrics
