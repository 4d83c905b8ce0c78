"""The InfluxDB sink against real servers of the v2 write API: InfluxDB OSS 1.12 and VictoriaMetrics.

Most tests run against both (the ``sink_server`` fixture, or a ``kind`` parameter where the test
starts and stops the server itself). Read-back is Flux on InfluxDB and the export API on
VictoriaMetrics; ``services`` keys both the same way (series ``<measurement>_<field>``, tags,
time in ms). Where the two differ: InfluxDB keeps every field type and holds the last write of a
point, so a corrected window replaces the earlier revision; VictoriaMetrics keeps numbers only
(strings as 0) and, with ``-dedup.minScrapeInterval=1ms``, one of the writes, not necessarily the last.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from parity import written_points
from services import (
    SINK_SERVERS,
    Broker,
    InfluxDB,
    SinkServer,
    VictoriaMetrics,
    free_port,
    new_sink_server,
    same_samples,
)

from plantstream.plant.schema import InfluxDbSink
from plantstream.records import DeadLetter, Point
from sinks.influx import InfluxSink

ROOT = Path(__file__).resolve().parents[2]
SHIFT = ROOT / "examples" / "minimal-shift.jsonl"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
T0_MS = 1772438400000  # 2026-03-02T08:00:00Z (tests/unit/sinks/test_lineprotocol.py shows the arithmetic)
TOKEN = {"INFLUX_TOKEN": "test-token"}


def settings(url: str, **overrides: object) -> InfluxDbSink:
    base: dict[str, object] = {
        "type": "influxdb",
        "id": "influx",
        "url": url,
        "org": "plant",
        "bucket": "plantstream",
        "token_env": "INFLUX_TOKEN",
    }
    return InfluxDbSink.model_validate(base | overrides)


def steady(i: int, **fields: object) -> Point:
    return Point(
        measurement="steady",
        tags={"line": "l1"},
        fields={"v": i, "half": i / 2, **fields},
        time=T0 + timedelta(seconds=i),
    )


async def eventually(condition: Callable[[], bool], timeout: float = 60) -> None:
    """Poll until ``condition`` holds (the server makes new samples searchable within a second or so)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.2)


def plantstream(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe, "the plantstream console script is not installed in this environment"
    return subprocess.run(
        [exe, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def influx_env(server: SinkServer | str) -> dict[str, str]:
    """The environment of examples/influx.yaml for ``server`` (or a URL with the test token)."""
    url, token = (server, TOKEN["INFLUX_TOKEN"]) if isinstance(server, str) else (server.url, server.token)
    return {"INFLUX_URL": url, "INFLUX_ORG": "plant", "INFLUX_BUCKET": "plantstream", "INFLUX_TOKEN": token}


# -- replay --to-sinks -----------------------------------------------------------------------------


async def test_replayed_points_arrive_with_measurement_tags_fields_and_times(
    sink_server: SinkServer, tmp_path: Path
) -> None:
    reference = tmp_path / "points.jsonl"
    result = plantstream(
        "replay",
        "-c",
        str(ROOT / "examples" / "minimal.yaml"),
        "--readings",
        str(SHIFT),
        "--out",
        str(reference),
    )
    assert result.returncode == 0, result.stderr
    points = [json.loads(line) for line in reference.read_text().splitlines()]
    expected = sink_server.expected(points)
    state = tmp_path / "state"
    for _ in range(2):  # a second replay overwrites: the same samples, none twice
        result = plantstream(
            "replay",
            "-c",
            str(ROOT / "examples" / "influx.yaml"),
            "--readings",
            str(SHIFT),
            "--to-sinks",
            "--state-dir",
            str(state),
            "--timeout",
            "120",
            env=influx_env(sink_server),
        )
        assert result.returncode == 0, result.stderr
        assert f"line(s) delivered to {sink_server.url}" in result.stderr
        await eventually(lambda: len(sink_server.held()) >= len(expected))
        assert same_samples(sink_server.held(), expected)
    # TV-OEE-1 [VORNE-WS] as a series: the shift's OEE of m1 at the shift's start.
    shift = ("demo", "l1", "m1", "day", "shift")
    labels = tuple(sorted(zip(("site", "line", "machine", "shift", "window"), shift, strict=True)))
    oee = sink_server.held("oee")[("oee_oee", labels, T0_MS)]
    assert isinstance(oee, float)
    assert round(oee, 4) == 0.7479
    assert (state / "outbox" / "influx.sqlite").exists()


@pytest.mark.parametrize("kind", SINK_SERVERS)
def test_replay_that_cannot_deliver_in_time_says_so_and_the_next_run_delivers(
    kind: str, tmp_path: Path
) -> None:
    down = new_sink_server(kind, tmp_path)  # not started yet
    state = tmp_path / "state"
    args = ("replay", "-c", str(ROOT / "examples" / "influx.yaml"), "--readings", str(SHIFT), "--to-sinks")
    result = plantstream(*args, "--state-dir", str(state), "--timeout", "3", env=influx_env(down))
    assert result.returncode == 1
    assert "sink influx:" in result.stderr
    assert "not delivered within 3 s" in result.stderr
    assert "ConnectionRefused" in result.stderr or "NewConnectionError" in result.stderr
    down.start()
    try:
        # The outbox kept everything; an empty replay is enough to deliver it.
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        again = plantstream(
            "replay",
            "-c",
            str(ROOT / "examples" / "influx.yaml"),
            "--readings",
            str(empty),
            "--to-sinks",
            "--state-dir",
            str(state),
            env=influx_env(down),
        )
        assert again.returncode == 0, again.stderr
        reference = plantstream(
            "replay", "-c", str(ROOT / "examples" / "minimal.yaml"), "--readings", str(SHIFT)
        )
        expected = down.expected([json.loads(line) for line in reference.stdout.splitlines()])
        asyncio.run(eventually(lambda: len(down.held()) >= len(expected)))
        assert same_samples(down.held(), expected)
    finally:
        down.stop()


def test_a_missing_token_is_a_startup_error_naming_sink_and_variable(tmp_path: Path) -> None:
    env = influx_env("http://127.0.0.1:9")
    env.pop("INFLUX_TOKEN")
    clean = {k: v for k, v in os.environ.items() if k != "INFLUX_TOKEN"}
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    result = subprocess.run(
        [exe, "replay", "-c", str(ROOT / "examples" / "influx.yaml"), "--readings", str(SHIFT), "--to-sinks",
         "--state-dir", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=60, env={**clean, **env},
    )  # fmt: skip
    assert result.returncode == 2
    assert "sink influx: environment variable INFLUX_TOKEN (token_env) is not set" in result.stderr


# -- outage, rejection, throttling -----------------------------------------------------------------


OUTAGE_S = 30.0
"""How long the server is down in the outage test (issue 6)."""


@pytest.mark.slow
async def test_a_30_s_outage_mid_stream_is_retried_and_every_point_arrives_once(
    sink_server: SinkServer, tmp_path: Path
) -> None:
    """The server is stopped for 30 s while a steady stream of points goes on, then started again."""
    letters: list[DeadLetter] = []
    sink = InfluxSink(
        settings(sink_server.url, batch_size=20, flush_interval_s=0.1),
        tmp_path / "outbox",
        on_dead_letter=letters.append,
        environ={"INFLUX_TOKEN": sink_server.token},
        first_retry_s=0.2,
        max_retry_s=1.0,
    )
    submitted = 0
    stop_stream = asyncio.Event()

    async def stream() -> None:
        # A point every 20 ms (50 a second) until told to stop, the outage notwithstanding.
        nonlocal submitted
        while not stop_stream.is_set():
            await sink.submit([steady(submitted)])
            submitted += 1
            await asyncio.sleep(0.02)

    async with sink:
        producer = asyncio.create_task(stream())
        await eventually(lambda: sink.health.written >= 100)
        await asyncio.to_thread(sink_server.stop)
        failed_before, at_stop = sink.health.errors["connection"], submitted
        await asyncio.sleep(OUTAGE_S)
        failed_during = sink.health.errors["connection"] - failed_before
        assert failed_during >= 3  # the retry loop ran through the outage
        assert not sink.health.connected
        assert submitted > at_stop  # the stream went on into the outbox meanwhile
        assert sink.outbox.lines > 0
        await asyncio.to_thread(sink_server.start)
        at_restart = sink.health.written
        # The stream goes on after the restart until the backlog is delivered and more after it.
        await eventually(lambda: sink.health.written > at_restart and sink.outbox.lines < 20)
        stop_stream.set()
        await producer
        assert await sink.drain(60)
    total = submitted
    expected = sink_server.expected([json.loads(steady(i).to_json()) for i in range(total)])
    await eventually(lambda: len(sink_server.held("steady")) >= len(expected))
    assert same_samples(sink_server.held("steady"), expected)
    assert sink.health.written >= total
    assert letters == []


def rejecting_server(kind: str, directory: Path) -> tuple[SinkServer, Point, str, str]:
    """A server that answers HTTP 400 for one point; the point, the start of its line and the
    words of the server's reason.


    VictoriaMetrics: a line longer than its ``-influx.maxLineSize``. InfluxDB: a field whose type
    differs from the type the measurement already has for it (it writes the rest: a partial write).
    """
    if kind == "influxdb":
        server: SinkServer = InfluxDB(port=free_port(), directory=directory)
        return (
            server,
            steady(17, v="seventeen"),
            'steady,line=l1 v="seventeen",half=8.5 ',
            "field type conflict",
        )
    server = VictoriaMetrics(port=free_port(), directory=directory, flags=("-influx.maxLineSize=1000",))
    return (
        server,
        steady(17, note="x" * 100_000),
        f'steady,line=l1 v=17i,half=8.5,note="{"x" * 100}',
        "too long line",
    )


@pytest.mark.parametrize("kind", SINK_SERVERS)
async def test_a_rejected_line_is_dead_lettered_with_the_reason_and_the_rest_delivered(
    kind: str, tmp_path: Path
) -> None:
    server, bad, line, reason = rejecting_server(kind, tmp_path)
    server.start()
    try:
        letters: list[DeadLetter] = []
        sink = InfluxSink(
            settings(server.url, batch_size=30, flush_interval_s=0.1),
            tmp_path / "outbox",
            on_dead_letter=letters.append,
            environ={"INFLUX_TOKEN": server.token},
        )
        points = [bad if i == 17 else steady(i) for i in range(30)]
        async with sink:
            await sink.submit(points)
            assert await sink.drain(60)
        [letter] = letters
        assert letter.reason == "rejected"
        assert letter.error.startswith("HTTP 400: ")
        assert reason in letter.error
        assert letter.raw.startswith(line)
        assert sink.health.errors["rejected"] >= 1
        assert sink.health.dead_letters == 1
        expected = server.expected([json.loads(p.to_json()) for i, p in enumerate(points) if i != 17])
        await eventually(lambda: len(server.held("steady")) >= len(expected))
        assert same_samples(server.held("steady"), expected)
    finally:
        server.stop()


@pytest.mark.parametrize("token", ["wrong:password", ""])
async def test_influxdb_with_authentication_refuses_a_wrong_token_and_the_outbox_keeps_the_points(
    token: str, tmp_path: Path
) -> None:
    server = InfluxDB(port=free_port(), directory=tmp_path, auth=True)
    server.start()
    try:
        points = [steady(i) for i in range(10)]
        refused = InfluxSink(
            settings(server.url, batch_size=10, flush_interval_s=0.1),
            tmp_path / "outbox",
            on_dead_letter=lambda letter: pytest.fail(f"dead letter {letter}"),
            environ={"INFLUX_TOKEN": token or "not-a-user"},
            first_retry_s=0.1,
            max_retry_s=0.2,
        )
        async with refused:
            await refused.submit(points)
            await eventually(lambda: refused.health.errors["config"] >= 2)
            assert not await refused.drain(0.5)
        assert refused.health.last_error is not None
        assert "HTTP 401" in refused.health.last_error
        assert server.held("steady") == {}
        # The operator fixes the token: the points kept in the outbox are delivered, none lost.
        fixed = InfluxSink(
            settings(server.url, batch_size=10, flush_interval_s=0.1),
            tmp_path / "outbox",
            on_dead_letter=lambda letter: pytest.fail(f"dead letter {letter}"),
            environ={"INFLUX_TOKEN": server.token},
        )
        async with fixed:
            assert await fixed.drain(60)
        expected = server.expected([json.loads(p.to_json()) for p in points])
        assert same_samples(server.held("steady"), expected)
    finally:
        server.stop()


class _Throttler(BaseHTTPRequestHandler):
    """Answers the write API with 503, then 429 (each with Retry-After), then 204; logs the order."""

    answers: ClassVar[list[tuple[int, str | None]]] = []
    events: ClassVar[list[str]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        n = len(self.bodies) + 1
        self.events.append(f"request {n} {self.path.split('?')[0]}")
        self.bodies.append(body)
        status, retry_after = self.answers.pop(0)
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        message = b'{"code":"unavailable","message":"come back later"}' if status != 204 else b""
        self.send_header("Content-Length", str(len(message)))
        self.end_headers()
        self.wfile.write(message)
        self.wfile.flush()
        self.events.append(f"answered {n} with {status}")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def throttler() -> Iterator[tuple[str, type[_Throttler]]]:
    handler = type(
        "Handler",
        (_Throttler,),
        {"answers": [(503, "2"), (429, "1"), (204, None)], "events": [], "bodies": []},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


async def test_503_and_429_are_retried_after_the_servers_retry_after(
    throttler: tuple[str, type[_Throttler]], tmp_path: Path
) -> None:
    url, handler = throttler
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        # The sink asks to wait exactly Retry-After; the test records it and waits only briefly.
        waits.append(seconds)
        await asyncio.sleep(0.01)

    sink = InfluxSink(
        settings(url, batch_size=2),
        tmp_path / "outbox",
        on_dead_letter=lambda _: None,
        environ=TOKEN,
        sleep=sleep,
    )
    async with sink:
        await sink.submit([steady(0), steady(1)])
        assert await sink.drain(30)
    assert handler.events == [
        "request 1 /api/v2/write",
        "answered 1 with 503",
        "request 2 /api/v2/write",
        "answered 2 with 429",
        "request 3 /api/v2/write",
        "answered 3 with 204",
    ]
    assert waits == [2.0, 1.0]
    sent = f"steady,line=l1 v=0i,half=0.0 {T0_MS // 1000}\nsteady,line=l1 v=1i,half=0.5 {T0_MS // 1000 + 1}"
    assert handler.bodies == [sent.encode()] * 3
    assert dict(sink.health.errors) == {"server": 1, "throttled": 1}
    assert sink.health.last_error is None
    assert sink.health.written == 2


# -- the embedded pipeline: kill -9 and SIGTERM -----------------------------------------------------

PIPELINE = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    carbon:
      grid: {{country: VN, basis: annual, year: 2023}}
    lines:
      - id: l1
        machines:
          - id: m1
            signals: {{power_kw: power_kw, energy_kwh: energy_kwh}}
sources:
  - type: mqtt
    id: meters
    url: {mqtt}
    client_id: plantstream-influx-test
    subscriptions:
      - topic: plant/{{line}}/{{machine}}/meter
        payload: json
        timestamp: {{path: ts, format: iso8601}}
        fields:
          - {{path: power_w, signal: power_kw, scale: 0.001}}
          - {{path: energy_wh, signal: energy_kwh, scale: 0.001}}
sinks:
  - type: influxdb
    id: influx
    url: {influx}
    org: plant
    bucket: plantstream
    token_env: INFLUX_TOKEN
    batch_size: {batch_size}
    flush_interval_s: {flush_interval_s}
"""


def publish_meters(broker: Broker, start: int, count: int) -> None:
    import paho.mqtt.client as paho

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="influx-test-meter")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for i in range(start, start + count):
            ts = (T0 + timedelta(seconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            payload = json.dumps({"ts": ts, "power_w": 5000 + i, "energy_wh": 1000 * i})
            client.publish("plant/l1/m1/meter", payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


class Pipeline:
    """``plantstream run`` as a process."""

    def __init__(self, plant: Path, state: Path, token: str) -> None:
        exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
        assert exe
        log = (state.parent / "run.log").open("ab")
        self.port = free_port()
        self.process = subprocess.Popen(
            [exe, "run", "-c", str(plant), "--state-dir", str(state), "--http-port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, "INFLUX_TOKEN": token},
        )
        log.close()

    async def subscribed(self) -> None:
        """Wait until /healthz says the MQTT source is connected, then a moment for its subscription."""
        from urllib.request import urlopen

        def connected() -> bool:
            try:
                with urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                    body = json.loads(response.read())
            except OSError as exc:  # 503 while degraded (the sink's server may be down) comes here too
                body = json.loads(exc.read()) if hasattr(exc, "read") else {}
            return bool(body.get("sources", {}).get("meters", {}).get("connected"))

        await eventually(connected)
        await asyncio.sleep(1)

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=90)


def file_points(state: Path) -> list[dict]:
    # Also read while the pipeline writes (or after it was killed mid-line): whole lines only.
    return written_points(state)


def readings_in(state: Path) -> int:
    return sum(1 for p in file_points(state) if p["measurement"] == "reading")


@pytest.mark.parametrize("kind", SINK_SERVERS)
async def test_kill_9_of_the_pipeline_mid_stream_loses_nothing(
    broker: Broker, kind: str, tmp_path: Path
) -> None:
    """The server is down while the pipeline takes points into its outbox; the pipeline is killed
    with SIGKILL; after the server and the pipeline are back, every point the pipeline had written
    to its file sink (which it writes after the outbox) is in the server."""
    server = new_sink_server(kind, tmp_path)  # down for now
    plant = tmp_path / "plant.yaml"
    plant.write_text(PIPELINE.format(mqtt=broker.url, influx=server.url, batch_size=50, flush_interval_s=0.2))
    state = tmp_path / "state"
    first = Pipeline(plant, state, server.token)
    try:
        await first.subscribed()
        publish_meters(broker, 0, 60)
        await eventually(lambda: readings_in(state) >= 60)
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    before = file_points(state)
    server.start()
    try:
        second = Pipeline(plant, state, server.token)
        try:
            await second.subscribed()
            publish_meters(broker, 60, 30)
            await eventually(
                lambda: readings_in(state) >= len([p for p in before if p["measurement"] == "reading"]) + 60
            )
        finally:
            assert second.stop(signal.SIGTERM) == 0
        written = file_points(state)
        expected = server.expected(written)
        await eventually(lambda: set(expected) <= set(server.held()))
        held = server.held()
        if server.overwrites:
            # The outbox delivers in the order the file sink wrote, across the kill: the server
            # holds the last version of every point, windows re-emitted after the restart included.
            assert same_samples({k: held[k] for k in expected}, expected)
        else:
            # Raw readings have one version each: their values must match too. Window points may
            # have been re-emitted after the restart with other values (see services.VictoriaMetrics).
            assert same_samples(
                {k: v for k, v in held.items() if k[0].startswith("reading_")},
                {k: v for k, v in expected.items() if k[0].startswith("reading_")},
            )
        assert len(before) > 0
    finally:
        server.stop()


async def test_sigterm_flushes_every_point_handed_to_the_sink(
    broker: Broker, sink_server: SinkServer, tmp_path: Path
) -> None:
    # An interval of an hour: nothing is written before the stop, so the flush is what delivers.
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        PIPELINE.format(mqtt=broker.url, influx=sink_server.url, batch_size=100_000, flush_interval_s=3600)
    )
    state = tmp_path / "state"
    pipeline = Pipeline(plant, state, sink_server.token)
    try:
        await pipeline.subscribed()
        publish_meters(broker, 0, 40)
        await eventually(lambda: readings_in(state) >= 80)
        assert sink_server.held() == {}
    finally:
        assert pipeline.stop(signal.SIGTERM) == 0
    expected = sink_server.expected(file_points(state))
    await eventually(lambda: len(sink_server.held()) >= len(expected))
    assert same_samples(sink_server.held(), expected)
