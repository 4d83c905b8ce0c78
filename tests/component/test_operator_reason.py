"""An operator's reason reaches a running ``plantstream run``: ``plantstream reason`` posts it, the
pipeline rewrites the past stop with the reason and revision 1, and refuses garbage with exit 2.

The readings come over a real Mosquitto (QoS 1, each payload with its own ``ts``), as in
test_embedded_parity.py: m1 runs from 08:00, is down 08:01:30-08:03 with PLC code 12 (film
break), runs again until 08:10. The stop is written (revision 0, film break) once the watermark
passes 08:03; then the operator says it was a jam.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from services import Broker, free_port

PLANT = {
    "sites": [
        {
            "id": "demo",
            "timezone": "UTC",
            "country": "VN",
            "calendar": "day",
            "lines": [
                {
                    "id": "l1",
                    "machines": [
                        {
                            "id": "m1",
                            "type": "packer",
                            "ideal_cycle_s": 1.0,
                            "signals": {"state": "state", "total_count": "total_count", "fault": "reason"},
                        }
                    ],
                }
            ],
        }
    ],
    "calendars": {"day": {"shifts": [{"name": "day", "start": "08:00", "end": "16:00"}]}},
    "reasons": {
        "groups": {"material": "small_stop", "mechanical": "breakdown"},
        "codes": {
            12: {"reason": "film break", "group": "material"},
            7: {"reason": "jam", "group": "mechanical"},
        },
    },
    "production": {"allowed_lateness_s": 5, "correction_horizon_s": 3600},
}
READINGS = [
    ("08:00:00", "state", "running"),
    ("08:00:00", "total_count", 0),
    ("08:01:30", "fault", 12),
    ("08:01:30", "state", "down"),
    ("08:03:00", "state", "running"),
    ("08:03:00", "fault", 0),
    *((f"08:{minute:02d}:00", "state", "running") for minute in range(4, 11)),
    ("08:10:00", "total_count", 400),
]


def plant_file(directory: Path, broker_url: str) -> Path:
    plant: dict[str, Any] = json.loads(json.dumps(PLANT))
    plant["sources"] = [
        {
            "type": "mqtt",
            "id": "line",
            "url": broker_url,
            "client_id": "plantstream-reasons",
            "subscriptions": [
                {
                    "topic": f"plant/{{machine}}/{signal}",
                    "qos": 1,
                    "payload": "json",
                    "timestamp": {"path": "ts", "format": "iso8601"},
                    "fields": [{"path": "value", "signal": signal}],
                }
                for signal in ("state", "total_count", "fault")
            ],
        }
    ]
    path = directory / "plant.yaml"
    path.write_text(yaml.safe_dump(plant, sort_keys=False))
    return path


def publish(broker: Broker) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="reasons-line")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        sent = [
            client.publish(
                f"plant/m1/{signal}", json.dumps({"ts": f"2026-03-02T{at}Z", "value": value}), qos=1
            )
            for at, signal, value in READINGS
        ]
        for info in sent:
            info.wait_for_publish(30)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def get(port: int, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.read().decode()
    except OSError:  # not up yet, or 503 while the source connects
        return None


def stops(state: Path) -> list[dict[str, Any]]:
    out = []
    for file in sorted((state / "points").glob("*.jsonl")):
        out += [
            p for line in file.read_text().splitlines() if (p := json.loads(line))["measurement"] == "stop"
        ]
    return out


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def test_an_operators_reason_rewrites_the_stop_in_a_running_pipeline(broker: Broker, tmp_path: Path) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    plant = plant_file(tmp_path, broker.url)
    state, port = tmp_path / "state", free_port()
    url = f"http://127.0.0.1:{port}/reason"
    with (tmp_path / "run.log").open("wb") as log:
        run = subprocess.Popen(
            [exe, "run", "-c", str(plant), "--state-dir", str(state), "--http-port", str(port)],
            stdout=log,
            stderr=log,
        )
    try:
        wait_for("the source to connect", lambda: '"connected": true' in (get(port, "/healthz") or ""))
        publish(broker)
        # The points file is written at hand-over (when the queue empties): the stop appears there.
        first = wait_for("the stop, revision 0", lambda: stops(state))
        assert [(p["tags"]["reason"], p["fields"]["revision"], p["fields"]["duration_s"]) for p in first] == [
            ("film break", 0, 90.0)  # 08:01:30 to 08:03
        ]

        def reason(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [exe, "reason", *args, "--url", url], capture_output=True, text=True, check=False, timeout=60
            )

        # Garbage first: each refused with exit 2 and what is wrong, nothing changed.
        unknown = reason("m1", "2026-03-02T08:02:00Z", "jamm")
        assert unknown.returncode == 2
        assert (
            "'jamm' is neither a code nor a reason of the tree (reasons: film break, jam)" in unknown.stderr
        )
        running = reason("m1", "2026-03-02T08:05:00Z", "jam")
        assert running.returncode == 2
        assert "m1 was not stopped at 2026-03-02T08:05:00Z" in running.stderr
        naive = reason("m1", "2026-03-02T08:02:00", "jam")
        assert (naive.returncode, "has no offset" in naive.stderr) == (2, True)
        nobody = subprocess.run(
            [
                exe,
                "reason",
                "m1",
                "2026-03-02T08:02:00Z",
                "jam",
                "--url",
                f"http://127.0.0.1:{free_port()}/reason",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert nobody.returncode == 1
        # A time inside the stop, the reason by name: applied at the stop's start.
        done = reason("m1", "2026-03-02T08:02:00Z", "jam")
        assert done.returncode == 0, done.stderr
        assert "the stop at 2026-03-02T08:01:30Z gets jam (mechanical, code 7)" in done.stdout
        again = wait_for(
            "the stop, revision 1", lambda: [p for p in stops(state) if p["fields"]["revision"] == 1]
        )
        assert [
            (p["time"], p["tags"]["reason"], p["fields"]["code"], p["fields"]["loss"]) for p in again
        ] == [(first[0]["time"], "jam", "7", "breakdown")]
        metrics = get(port, "/metrics") or ""
        for line in (
            'plantstream_operator_reasons_total{result="accepted"} 1',
            'plantstream_operator_reasons_total{result="unknown_reason"} 1',
            'plantstream_operator_reasons_total{result="no_stop"} 1',
            'plantstream_operator_reasons_total{result="bad_field"} 1',
        ):
            assert line in metrics
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=120)
    assert run.returncode == 0, (tmp_path / "run.log").read_text()[-2000:]
