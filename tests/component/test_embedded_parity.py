"""Parity of the embedded runtime with ``replay``: recorded readings through Mosquitto and ``run``.

The recorded shift (examples/minimal-shift.jsonl) for two machines of examples/minimal.yaml's
line, m1 and a copy m2 (so the line gets roll-ups and the machines' messages interleave), is
published to a real Mosquitto at QoS 1: one topic per machine and signal, each payload JSON with
its own ``ts``, which the plant file's MQTT source maps back to the machine's signals. The real
CLI (``plantstream run``) computes; once every reading is in, SIGTERM stops it; for every window
the stream closed its points must equal ``replay``'s (the rule of :mod:`parity`, which the kafka
roles' parity test follows too). Before the stop, ``tail`` joins the quiet pipeline and still
learns each machine's state: ``/stream`` begins with the newest state reading of each.
"""

from __future__ import annotations

import copy
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from parity import expected_points, last_per_identity, sink_writes
from services import Broker, free_port

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "examples" / "minimal.yaml"
SHIFT = ROOT / "examples" / "minimal-shift.jsonl"
SIGNALS = ("state", "total_count", "good_count", "reject_count", "power_kw", "energy_kwh")


def two_machine_recording() -> list[str]:
    """The shift's readings for m1 and, right after each, the same reading for m2."""
    lines = []
    for line in SHIFT.read_text().splitlines():
        reading = json.loads(line)
        lines += [json.dumps(reading), json.dumps({**reading, "machine": "m2"})]
    return lines


def plant_file(directory: Path, broker_url: str) -> Path:
    """examples/minimal.yaml with m1 copied as m2 and an MQTT source: one topic per signal."""
    plant = yaml.safe_load(MINIMAL.read_text())
    machines = plant["sites"][0]["lines"][0]["machines"]
    machines.append({**copy.deepcopy(machines[0]), "id": "m2"})
    plant["sources"] = [
        {
            "type": "mqtt",
            "id": "recorder",
            "url": broker_url,
            "client_id": "plantstream-parity",
            "subscriptions": [
                {
                    "topic": f"plant/{{line}}/{{machine}}/{signal}",
                    "qos": 1,
                    "payload": "json",
                    "timestamp": {"path": "ts", "format": "iso8601"},
                    "fields": [{"path": "value", "signal": signal}],
                }
                for signal in SIGNALS
            ],
        }
    ]
    path = directory / "plant.yaml"
    path.write_text(yaml.safe_dump(plant, sort_keys=False))
    return path


def publish(broker: Broker, recording: list[str]) -> None:
    """Every reading at QoS 1 in the recording's order, each acknowledged by the broker."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="parity-recorder")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        sent = []
        for line in recording:
            r = json.loads(line)
            payload = json.dumps({"ts": r["ts"], "value": r["value"]})
            sent.append(client.publish(f"plant/l1/{r['machine']}/{r['signal']}", payload, qos=1))
        for info in sent:
            info.wait_for_publish(30)
            assert info.is_published(), "the broker did not acknowledge a reading"
    finally:
        client.loop_stop()
        client.disconnect()


def health(port: int) -> dict | None:
    """The pipeline's /healthz body, or None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while the source is not connected: still a body
        return json.loads(exc.read())
    except OSError:
        return None


def wait_for(what: str, condition: Callable[[], dict | None], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = condition()
        if body is not None:
            return body
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_run_over_mqtt_gives_the_points_of_replay(broker: Broker, tmp_path: Path) -> None:
    recording = two_machine_recording()
    plant = plant_file(tmp_path, broker.url)
    expected = expected_points(plant, recording)
    # Open at the end: the shift and its last minute (oee, losses, energy, carbon) of m1, m2 and the line.
    assert expected.still_open == 2 * 3 * 4
    # Compared: the minutes 08:00 to 15:58 of each of the three, oee, losses, energy and carbon,
    # and the stops of m1 and m2 (the three down periods of the minimal shift each).
    assert len(expected.closed) == 479 * 3 * 4 + 2 * 3
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    state, port = tmp_path / "state", free_port()
    with (tmp_path / "run.log").open("wb") as log:
        run = subprocess.Popen(
            [exe, "run", "-c", str(plant), "--state-dir", str(state), "--http-port", str(port)],
            stdout=log,
            stderr=log,
        )
    try:

        def connected() -> dict | None:
            body = health(port)
            return body if body and body["sources"]["recorder"]["connected"] else None

        wait_for("the MQTT source to connect", connected)
        publish(broker, recording)

        def all_in() -> dict | None:
            body = health(port)
            return body if body and body["readings"] >= len(recording) else None

        body = wait_for("every reading to reach the engine", all_in)
        assert body["readings"] == len(recording)
        # Nothing moves any more, yet a new follower learns each machine's state: the newest
        # state reading of the recording (14:15 running) comes first on /stream.
        url = f"http://127.0.0.1:{port}/stream"
        states = subprocess.run(
            [exe, "tail", "--url", url, "--json", "--count", "2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert states.returncode == 0, states.stderr
        assert sorted(
            (r["machine"], r["signal"], r["value"], r["ts"])
            for r in map(json.loads, states.stdout.splitlines())
        ) == [
            ("m1", "state", "running", "2026-03-02T14:15:00Z"),
            ("m2", "state", "running", "2026-03-02T14:15:00Z"),
        ]
        table = subprocess.run(
            [exe, "tail", "--url", url, "--table", "-c", str(plant), "--count", "2"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert table.returncode == 0, table.stderr
        for machine in ("m1", "m2"):
            [row] = [line for line in table.stdout.splitlines() if f"demo/l1/{machine}" in line]
            assert [cell.strip() for cell in row.split("│")][2] == "running", row
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0, (tmp_path / "run.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    log_text = (tmp_path / "run.log").read_text()
    assert f"{len(recording)} readings" in log_text
    assert "0 dead letters" in log_text, log_text[-3000:]
    assert last_per_identity(sink_writes(state)) == expected.closed
