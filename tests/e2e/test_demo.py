"""``plantstream demo`` end to end: the simulator, the embedded pipeline, the file sink, tail."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from services import free_port

pytestmark = pytest.mark.e2e
DEMO_LINE = Path(__file__).resolve().parents[2] / "examples" / "demo-line.yaml"


def plantstream() -> str:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    return exe


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class StderrReader:
    """Reads a process's stderr in a thread, so a test can wait for a line without a fixed time."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self._stream = proc.stderr
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stream:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self.lines.append("")  # end of stream
            self._seen.notify_all()

    def wait_for(self, text: str, safety_net_s: float = 300.0) -> None:
        """Return once a line contains ``text``; fail if the stream ends first."""
        with self._seen:
            found = self._seen.wait_for(
                lambda: any(text in line for line in self.lines) or (self.lines[-1:] == [""]), safety_net_s
            )
            assert found, "".join(self.lines)[-3000:]
            assert any(text in line for line in self.lines), "".join(self.lines)[-3000:]

    def text(self) -> str:
        """Everything read, once the process has ended."""
        self._thread.join()
        self._stream.close()
        return "".join(self.lines)


def wait_until_connected(port: int, demo: subprocess.Popen[str]) -> None:
    """The endpoint answers (503, degraded) before the collector's first session: wait for it."""
    while True:
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        if status == 200 and json.loads(body)["sources"]["line1-plc"]["connected"] is True:
            return
        assert status in (200, 503), body
        assert demo.poll() is None, "the demo ended before its collector connected"
        time.sleep(0.2)


def test_demo_writes_points_and_serves_health_metrics_and_a_stream_to_tail(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    port = free_port()
    # No --duration: the demo runs until the test has seen everything and stops it (SIGTERM), so a
    # slow start on a loaded machine costs time, never the test.
    demo = subprocess.Popen(
        [plantstream(), "demo", "--no-ui", "--state-dir", str(state), "--http-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = StderrReader(demo)
    try:
        reader.wait_for("health on http://")
        wait_until_connected(port, demo)
        tail = subprocess.run(
            [
                plantstream(),
                "tail",
                "--url",
                f"http://127.0.0.1:{port}/stream",
                "--json",
                "--count",
                "30",
                "--machine",
                "press1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert tail.returncode == 0, tail.stderr
        records = [json.loads(line) for line in tail.stdout.splitlines()]
        assert len(records) == 30
        assert all((r.get("tags") or r)["machine"] == "press1" for r in records)
        # The live table, printed once at the end without a terminal: every machine of the plant
        # file is a row, whatever the events shown so far.
        table = subprocess.run(
            [
                *(plantstream(), "tail", "--url", f"http://127.0.0.1:{port}/stream", "--table"),
                *("-c", str(DEMO_LINE), "--count", "200"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert table.returncode == 0, table.stderr
        for machine in ("press1", "cnc1", "packer1", "oven1"):
            assert f"hcm/line1/{machine}" in table.stdout, table.stdout
        assert "readings/s" in table.stdout
        # The shift columns are the pipeline's figures (sent first to a new listener), not sums
        # of what this tail happened to see ("B since 11:02").
        assert " since " not in table.stdout, table.stdout
        # Without the plant file the rows are the machines the events name, here the press only.
        table = subprocess.run(
            [
                *(plantstream(), "tail", "--url", f"http://127.0.0.1:{port}/stream", "--table"),
                *("--machine", "press1", "--measurement", "energy", "--count", "2"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert table.returncode == 0, table.stderr
        assert "hcm/line1/press1" in table.stdout, table.stdout
        assert "cnc1" not in table.stdout
        assert "2 points" in table.stdout
        status, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'plantstream_source_connected{source="line1-plc"} 1' in metrics
        assert re.search(r"^plantstream_idle_ticks_total \d+$", metrics, re.M)
        assert re.search(r'^plantstream_source_lag_seconds\{source="line1-plc"\} [0-9.]+$', metrics, re.M)
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    stderr = reader.text()
    assert demo.returncode == 0, stderr[-3000:]
    points = [
        json.loads(line) for f in (state / "points").glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    measurements = {p["measurement"] for p in points}
    assert {"oee", "energy", "carbon", "reading", "health"} <= measurements
    machines = {p["tags"].get("machine") for p in points if p["measurement"] == "oee"}
    assert {"press1", "cnc1", "packer1"} <= machines
    oven = [p for p in points if p["measurement"] == "carbon" and p["tags"].get("machine") == "oven1"]
    assert any(p["fields"]["scope1_co2e_kg"] > 0 for p in oven), "the gas oven burns natural gas: Scope 1"
    assert (state / "checkpoint.json").exists()
    assert "points written to" in stderr
    assert "press1: shift" in stderr


def test_tail_with_nothing_to_follow_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/stream"
    result = subprocess.run(
        [plantstream(), "tail", "--url", url], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 1
    assert f"nothing to follow at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_tail_table_and_json_together_is_a_usage_error() -> None:
    result = subprocess.run(
        [plantstream(), "tail", "--table", "--json"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert "--table and --json exclude each other" in result.stderr


def test_a_busy_health_port_stops_the_demo_at_start_naming_the_port_and_the_option(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                plantstream(),
                "demo",
                "--duration",
                "3",
                "--no-ui",
                "--state-dir",
                str(tmp_path),
                "--http-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"port {port} for /healthz, /metrics and /stream" in result.stderr
    assert "choose another with --http-port N" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "points").exists()


def test_a_second_demo_run_continues_the_plcs_counters_instead_of_counting_them_again(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    for _ in range(2):
        run = subprocess.run(
            [
                plantstream(),
                "demo",
                "--duration",
                "8",
                "--no-ui",
                "--status-every",
                "2",
                "--state-dir",
                str(state),
                "--http-port",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        # Without the table, a status line every 2 s (and one at the end), not silence.
        status = re.findall(r"plantstream.runtime: [\d,]+ readings, [\d,]+ windows closed .*", run.stderr)
        assert len(status) >= 3, run.stderr[-3000:]
        # The line's shift so far: its OEE, or only A while no piece has been scheduled to count
        # (the simulated clock follows the time of day, so a run may fall in a break).
        assert re.search(r"shift so far: hcm/line1 (OEE [\d.]+%|A )", status[-1]), status[-1]
    points = [
        json.loads(line) for f in (state / "points").glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    # The second run's shift so far is the pipeline's: the shift's windows closed in both runs
    # (the first run's restored from the checkpoint) plus the open one, not the second run's alone.
    shown = re.search(r"press1: shift (\S+)(?: from \S+)? so far: OEE \S+, (\d+) good of (\d+)", run.stderr)
    assert shown, run.stderr[-3000:]
    shift, good = shown[1], int(shown[2])
    latest: dict[str, dict[str, float]] = {}
    for p in points:
        tags = p["tags"]
        if (p["measurement"], tags.get("machine"), tags.get("window"), tags.get("shift")) == (
            "oee",
            "press1",
            "1m",
            shift,
        ) and p["fields"]["revision"] >= latest.get(p["time"], {}).get("revision", -1):
            latest[p["time"]] = p["fields"]
    assert good >= sum(f["good_count"] for f in latest.values()) > 0
    minutes = [p for p in points if p["tags"].get("window") == "1m" and "machine" in p["tags"]]
    oee = [p["fields"] for p in minutes if p["measurement"] == "oee"]
    assert oee
    # The simulator runs at most 1.25 times the ideal rate (its speed factor), so the performance
    # of a minute stays below 1.5; a counter counted again from its seeded start read 1 600 x.
    assert all(f["performance"] < 1.5 for f in oee if f.get("performance") is not None)
    # The largest emitter is the press: 90 kW x 0.66 kg/kWh (the VN grid) is about 1 kg a minute;
    # the oven burns 8 x its 20 kW of gas, 2.7 kWh a minute, 0.55 kg. A register counted again
    # from its seeded start gave 121 683 kg.
    carbon = [p["fields"]["co2e_kg"] for p in minutes if p["measurement"] == "carbon"]
    assert carbon
    assert max(carbon) < 10


def test_off_a_terminal_the_demo_says_how_it_goes_and_prints_the_table_at_the_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(plantstream(), "demo", "--duration", "5", "--status-every", "1"),
            *("--state-dir", str(tmp_path), "--http-port", "0"),
        ],
        capture_output=True,  # not a terminal: no table redrawn in place
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    status = re.findall(r"INFO plantstream.runtime: [\d,]+ readings, [\d,]+ windows closed .*", result.stderr)
    assert len(status) >= 3, result.stderr[-2000:]
    assert "hcm/line1/press1" in result.stdout  # the table, once
