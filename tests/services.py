"""Real components the tests start themselves, on free loopback ports (imported as ``services``)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bench.influxdb_node import INFLUXD, InfluxNode, InfluxUnavailable
from bench.kafka_node import KafkaBroker, KafkaUnavailable, free_port

__all__ = [
    "INFLUXD",
    "SINK_SERVERS",
    "Broker",
    "InfluxDB",
    "KafkaBroker",
    "KafkaUnavailable",
    "OpcUaTestServer",
    "Samples",
    "SinkServer",
    "VictoriaMetrics",
    "expected_samples",
    "free_port",
    "new_sink_server",
    "same_samples",
    "wait_until_ready",
]


def wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], log: Path, name: str, timeout_s: float
) -> None:
    """Poll ``ready`` until it answers True; fail with the end of ``log`` if the process dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            if process.poll() is not None:
                break
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        pytest.fail(
            "mosquitto is not installed: apt-get install mosquitto mosquitto-clients (scripts/test does it)"
        )
    return found


@dataclass
class Broker:
    """A Mosquitto process we can stop and start again on the same port, keeping its persistence."""

    port: int
    directory: Path
    tls_port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.directory / "mosquitto.conf"
        lines = [
            # As root, mosquitto would drop to its own user and could not read the test's files.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {self.directory}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            "allow_anonymous true",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls_port is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.directory / 'ca.pem'}",
                f"certfile {self.directory / 'server.pem'}",
                f"keyfile {self.directory / 'server.key'}",
            ]
        config.write_text("\n".join(lines) + "\n")
        with (self.directory / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen([_mosquitto_binary(), "-c", str(config)], stdout=log, stderr=log)
        wait_until_ready(self.process, self._accepts, self.directory / "mosquitto.log", "mosquitto", 10)

    def _accepts(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
            return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def publish(self, topic: str, payload: str, qos: int = 1) -> None:
        """Publish with the mosquitto_pub client (an independent publisher)."""
        client = shutil.which("mosquitto_pub")
        if client is None:
            pytest.fail("mosquitto_pub is not installed: apt-get install mosquitto-clients")
        subprocess.run(
            [client, "-h", "127.0.0.1", "-p", str(self.port), "-t", topic, "-m", payload, "-q", str(qos)],
            check=True,
            timeout=10,
        )


@dataclass
class OpcUaTestServer:
    """tests/opcua_test_server.py as a process: start, stop, restart on the same port, pause."""

    port: int
    late_node: bool = False
    secure_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/"

    def start(self) -> None:
        import sys

        script = Path(__file__).with_name("opcua_test_server.py")
        args = [sys.executable, str(script), str(self.port)] + (["--late-node"] if self.late_node else [])
        if self.secure_dir is not None:
            args += ["--secure", str(self.secure_dir)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError("the OPC UA test server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def pause(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        import signal

        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class Relay:
    """A TCP relay in front of the server: ``cut`` is a network outage, ``restore`` its end."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._listener: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/"

    @property
    def listening(self) -> bool:
        return self._listener is not None

    async def restore(self) -> None:
        self._listener = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._listener is not None
        listener, self._listener = self._listener, None
        listener.close()
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()
        await listener.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65_536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


Samples = dict[tuple[str, tuple[tuple[str, str], ...], int], float | str | bool]
"""(``<measurement>_<field>``, sorted tags, time in ms) -> value: what a server holds, comparably."""


VICTORIA_METRICS = Path("/usr/bin/victoria-metrics")


@dataclass
class VictoriaMetrics:
    """VictoriaMetrics as the InfluxDB v2 write API (``/api/v2/write``), read back via ``/api/v1/export``.

    Started with ``-dedup.minScrapeInterval=1ms``: samples of one series with the same timestamp
    collapse into one, which is how these tests get InfluxDB's overwrite semantics (the same
    measurement, tags and time written twice is one point). Unlike InfluxDB, VictoriaMetrics keeps
    one of the duplicates, not necessarily the last, so tests compare points written with the
    same values. It names a series ``<measurement>_<field>`` with the tags as labels, stores
    booleans as 1/0, string fields as 0, and times in milliseconds.
    """

    port: int
    directory: Path
    flags: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not VICTORIA_METRICS.exists():
            pytest.fail(
                "victoria-metrics is not installed: apt-get install victoria-metrics (scripts/test does it)"
            )
        args = [
            str(VICTORIA_METRICS),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.directory / 'vm-data'}",
            "-retentionPeriod=100y",
            "-dedup.minScrapeInterval=1ms",
            *self.flags,
        ]
        with (self.directory / "victoria-metrics.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log)
        wait_until_ready(
            self.process,
            lambda: self._get("/health") == b"OK",
            self.directory / "victoria-metrics.log",
            "victoria-metrics",
            20,
        )

    def stop(self) -> None:
        """A graceful stop (what it holds in memory is written out); start() again on the same data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def export(self, match: str = '{__name__=~".+"}') -> list[dict[str, object]]:
        """Every series matching ``match``, as VictoriaMetrics' JSON lines (metric, values, timestamps)."""
        import json
        from urllib.parse import quote

        body = self._get(f"/api/v1/export?match[]={quote(match)}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def samples(
        self, match: str = '{__name__=~".+"}'
    ) -> dict[tuple[str, tuple[tuple[str, str], ...], int], float]:
        """(series name, sorted labels, time in ms) -> value; a repeated key would be a duplicate."""
        out: dict[tuple[str, tuple[tuple[str, str], ...], int], float] = {}
        for series in self.export(match):
            labels = dict(series["metric"])  # type: ignore[call-overload]
            name = labels.pop("__name__")
            for ts, value in zip(series["timestamps"], series["values"], strict=True):  # type: ignore[call-overload]
                key = (name, tuple(sorted(labels.items())), int(ts))
                assert key not in out, f"duplicate sample {key}"
                out[key] = float(value)
        return out

    kind: ClassVar[str] = "victoria-metrics"
    token: ClassVar[str] = "test-token"  # any token: the write API is open
    overwrites: ClassVar[bool] = False
    """Whether a point written twice holds the last write (not with ``-dedup``: it keeps one of them)."""

    def held(self, measurement: str | None = None) -> Samples:
        """What it holds (of ``measurement`` only, if given), keyed as :data:`Samples` says."""
        return dict(self.samples(f'{{__name__=~"{measurement}_.*"}}' if measurement else '{__name__=~".+"}'))

    def expected(self, points: list[dict[str, Any]]) -> Samples:
        """What it should hold for ``points``: numbers only (strings as 0, booleans as 1 or 0)."""
        return expected_samples(points)

    def _get(self, path: str) -> bytes:
        from urllib.request import urlopen

        with urlopen(f"{self.url}{path}", timeout=10) as response:
            return bytes(response.read())


@dataclass
class InfluxDB(InfluxNode):
    """:class:`bench.influxdb_node.InfluxNode` with what the sink's tests read back.

    The bucket ``plantstream`` is database ``plantstream`` with its default retention policy. A
    point written again with the same measurement, tags and time overwrites the fields it names
    (the last write wins), so a corrected window replaces the earlier revision.
    """

    kind: ClassVar[str] = "influxdb"
    overwrites: ClassVar[bool] = True

    def start(self) -> None:
        """Start it, or fail the test saying how to build influxd."""
        try:
            super().start()
        except InfluxUnavailable as exc:
            pytest.fail(str(exc))

    def held(self, measurement: str | None = None) -> Samples:
        """What it holds (of ``measurement`` only, if given), keyed as :data:`Samples` says."""
        return self.samples(measurement)

    def expected(self, points: list[dict[str, Any]]) -> Samples:
        """What it should hold for ``points``: every field with its type, the last write of each."""
        return expected_samples(points, numbers_only=False)

    def samples(self, measurement: str | None = None) -> Samples:
        """Every field value held (of ``measurement`` only, if given), keyed as ``Samples`` says."""
        predicate = f'r._measurement == "{measurement}"' if measurement else "true"
        rows = self.flux(
            f'from(bucket: "{self.DATABASE}/autogen") |> range(start: 1970-01-01T00:00:00Z)'
            f" |> filter(fn: (r) => {predicate})"
        )
        out: Samples = {}
        internal = {"result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}
        for row in rows:
            labels = tuple(sorted((k, str(v)) for k, v in row.items() if k not in internal and v))
            moment = datetime.fromisoformat(str(row["_time"]).replace("Z", "+00:00"))
            ms = round(moment.timestamp() * 1000)
            key = (f"{row['_measurement']}_{row['_field']}", labels, ms)
            assert key not in out, f"duplicate sample {key}"
            value = row["_value"]
            assert isinstance(value, float | str | bool), row
            out[key] = value
        return out


SinkServer = VictoriaMetrics | InfluxDB
"""A server the InfluxDB sink writes to in the tests."""

SINK_SERVERS = ("victoria-metrics", "influxdb")


def new_sink_server(kind: str, directory: Path) -> SinkServer:
    """A server of ``kind`` (one of :data:`SINK_SERVERS`) on a free port, not started yet."""
    if kind == "influxdb":
        return InfluxDB(port=free_port(), directory=directory)
    return VictoriaMetrics(port=free_port(), directory=directory)


def expected_samples(
    points: list[dict[str, Any]], unit_ms: int = 1000, *, numbers_only: bool = True
) -> Samples:
    """What a server should hold for these points (JSON form), one sample per field, keyed as ``Samples``.

    ``unit_ms`` is the sink's precision in milliseconds (1000 for s): times are floored to it. A
    point written twice counts as its last version. ``numbers_only`` is VictoriaMetrics, which
    keeps numbers only: a string field becomes a sample of value 0 and a boolean 1 or 0.
    """
    from datetime import UTC, datetime, timedelta

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out: Samples = {}
    for p in points:
        moment = datetime.fromisoformat(p["time"].replace("Z", "+00:00"))
        ms = (moment - epoch) // timedelta(milliseconds=1) // unit_ms * unit_ms
        labels = tuple(sorted((k, v) for k, v in p["tags"].items() if v != ""))
        for field, raw in p["fields"].items():
            value: float | str | bool = raw if isinstance(raw, str | bool) else float(raw)
            if numbers_only:
                value = 0.0 if isinstance(value, str) else float(value)
            out[(f"{p['measurement']}_{field}", labels, ms)] = value
    return out


def same_samples(held: Samples, expected: Samples) -> bool:
    """Equal keys, and numbers equal to 1e-9 relative (VictoriaMetrics keeps 12 significant digits)."""
    import math

    def same(a: object, b: object) -> bool:
        if isinstance(b, str | bool) or isinstance(a, str | bool):
            return type(a) is type(b) and a == b
        return isinstance(a, float) and math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]

    return held.keys() == expected.keys() and all(same(held[key], value) for key, value in expected.items())
