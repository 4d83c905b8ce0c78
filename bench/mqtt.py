"""MQTT collector throughput against a raw aiomqtt subscriber, side by side in one run.

What is measured (docs/benchmarks.md has the results and the command):

- **raw**: an ``aiomqtt.Client`` that subscribes and, for every message, only decodes the JSON
  payload with orjson (and notes which message it was, to count losses);
- **collector**: :class:`collectors.mqtt.MqttCollector` producing :class:`~plantstream.records.Reading`
  objects, two per message (``power_kw`` and ``energy_kwh``), taken from ``readings()``.

Both consume the same ``--messages`` meter messages (default 100 000) on the topics
``plant/l1/m<k>/meter`` of ``--machines`` machines (default 50), JSON payloads
``{"ts": "<ISO 8601 UTC>", "power_w": <float>, "energy_wh": <float>}`` as in
``examples/mqtt-meters.yaml``. The collector's source is that file's source with the broker URL,
the client id and the list of machines substituted. The raw client is configured as the collector
configures its own (QoS 1, clean session off, the subscription made again after the connect, and
aiomqtt's incoming queue unbounded, as the collector leaves it), so the difference is the work
done per message.

Method, per round and per consumer (a private Mosquitto on a free 127.0.0.1 port, persistence on):

1. a persistent session (clean session off, a client id unique to the round) subscribes to
   ``plant/+/+/meter`` at QoS 1 and disconnects;
2. a separate publisher process (paho) publishes the messages at QoS 1 as fast as the broker
   acknowledges them (at most ``--window`` unacknowledged) and waits for every PUBACK, so the
   broker holds them all queued for the absent session;
3. the consumer connects with that client id and is timed from the connect until it has processed
   the last distinct message. Its rate is therefore its own, not the publisher's.

By default step 2 publishes all N at once, so the consumer meets a backlog of N, as after an outage.
``--backlog B`` repeats steps 2-3 with B messages at a time (N/B times, the times added up), which
measures the same per-message work with a backlog that aiomqtt's bounded queue can hold.

The session is then removed (a clean-session connect), so rounds cannot leak messages into each
other. Raw and collector rounds alternate ``--repeat`` times (default 3) and the fastest round of
each is kept; the result is the ratio collector/raw, because the machine is shared and absolute
rates drift. The message index is carried in ``energy_wh``, so every consumer counts distinct
messages, duplicates and losses (published minus distinct). Every wait is bounded: a consumer stops
by itself when it has every message, when nothing arrived for ``--idle`` seconds, or at
``--timeout``; its time is then up to the last message it processed.

Run: ``.venv/bin/python bench/mqtt.py --repeat 3`` (``--messages 20000`` for a quick run,
``--profile`` for a cProfile of one raw and one collector round).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import getpass
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

import aiomqtt
import orjson
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import (
    ROOT,
    code_revision,
    print_report_tail,
    profile_text,
    start_child,
    stop_on_sigterm,
    today,
)
from collectors.mqtt import MqttCollector
from collectors.topics import TopicTemplate
from plantstream.plant import parse_plant
from plantstream.plant.schema import MqttSource

__all__ = [
    "BenchResult",
    "Broker",
    "Consumed",
    "Published",
    "Settings",
    "consume_collector",
    "consume_raw",
    "drop_session",
    "main",
    "measure",
    "meter_message",
    "meter_source",
    "profile_round",
    "publish",
    "run_publisher",
    "run_round",
    "subscribe_session",
]

EXAMPLE = ROOT / "examples" / "mqtt-meters.yaml"
HOST = "127.0.0.1"
"""The broker listens on loopback only, and every client connects there."""

DEFAULT_MESSAGES = 100_000
DEFAULT_MACHINES = 50
DEFAULT_WINDOW = 1_000
DEFAULT_BROKER_INFLIGHT = 1_000
TARGET_RATIO = 0.9

START = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
"""The meter time of message 0; message i is ``i`` ms later."""

Kind = Literal["raw", "collector"]
Stop = Literal["complete", "idle", "deadline"]
KINDS: tuple[Kind, Kind] = ("raw", "collector")


# -- the broker ---------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _mosquitto() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        raise RuntimeError("mosquitto is not installed: apt-get install mosquitto")
    return found


@dataclass
class Broker:
    """A private Mosquitto on a free loopback port, as the current user, with persistence.

    ``max_queued`` must hold a whole backlog for one absent session; ``inflight`` is how many
    QoS 1 messages the broker sends a client before it waits for PUBACKs. The persistence file is
    not written during a run (``autosave_interval`` is an hour).
    """

    directory: Path
    max_queued: int
    inflight: int = DEFAULT_BROKER_INFLIGHT
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        """Start Mosquitto and wait until it accepts connections."""
        config = self.directory / "mosquitto.conf"
        lines = [
            # As root, mosquitto would drop to its own user and could not use our directory.
            f"user {getpass.getuser()}",
            "persistence true",
            f"persistence_location {self.directory}/",
            "autosave_interval 3600",
            f"max_queued_messages {self.max_queued}",
            "max_queued_bytes 0",
            f"max_inflight_messages {self.inflight}",
            "allow_anonymous true",
            f"listener {self.port} {HOST}",
        ]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        log = self.directory / "mosquitto.log"
        with log.open("ab") as out:
            self.process = start_child([_mosquitto(), "-c", str(config)], stdout=out, stderr=out)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start: {log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        """Stop Mosquitto (it saves its persistence file on the way out)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -- sessions and the publisher (paho, synchronous) ---------------------------------------------


def _paho_client(client_id: str, *, clean_session: bool) -> paho.Client:
    return paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)


def _connect(client: paho.Client, port: int, timeout_s: float) -> None:
    """Connect ``client`` (its network loop running in paho's thread) and wait for the CONNACK."""
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    client.connect(HOST, port, keepalive=60)
    client.loop_start()
    if not connected.wait(timeout_s) or refused:
        client.loop_stop()
        raise RuntimeError(f"broker {HOST}:{port} refused the connection: {refused or 'no CONNACK'}")


def _disconnect(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def subscribe_session(port: int, client_id: str, topic_filter: str, timeout_s: float = 10.0) -> None:
    """Leave a persistent session for ``client_id`` subscribed to ``topic_filter`` at QoS 1."""
    client = _paho_client(client_id, clean_session=False)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    _connect(client, port, timeout_s)
    try:
        client.subscribe(topic_filter, qos=1)
        if not subscribed.wait(timeout_s):
            raise RuntimeError(f"no SUBACK for {topic_filter!r} within {timeout_s} s")
    finally:
        _disconnect(client)


def drop_session(port: int, client_id: str, timeout_s: float = 10.0) -> None:
    """Remove the broker's session of ``client_id``: a clean-session connect discards it."""
    client = _paho_client(client_id, clean_session=True)
    _connect(client, port, timeout_s)
    _disconnect(client)


def meter_message(i: int, machines: int) -> tuple[str, bytes]:
    """Message ``i``: machine ``m<i % machines + 1>``, ``energy_wh`` = ``i`` (a rising register)."""
    ts = (START + timedelta(milliseconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    power_w = 1_000.0 + (i * 7_919) % 50_000 / 10
    payload = json.dumps({"ts": ts, "power_w": power_w, "energy_wh": float(i)})
    return f"plant/l1/m{i % machines + 1}/meter", payload.encode()


@dataclass(frozen=True)
class Published:
    """What the publisher did: messages acknowledged by the broker and the time it took."""

    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        """Messages acknowledged per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def __add__(self, other: Published) -> Published:
        return Published(self.messages + other.messages, self.seconds + other.seconds)


def publish(
    port: int, first: int, count: int, machines: int, *, client_id: str, window: int, timeout_s: float
) -> Published:
    """Publish meter messages ``first`` .. ``first + count - 1`` at QoS 1; wait for every PUBACK.

    paho's own in-flight limit is off (it would rescan its in-flight messages on every PUBACK); at
    most ``window`` messages are unacknowledged at a time, which this function enforces itself.
    The payloads are built before the clock starts.
    """
    messages = [meter_message(i, machines) for i in range(first, first + count)]
    acked = 0
    changed = threading.Condition()

    def on_publish(client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        nonlocal acked
        with changed:
            acked += 1
            changed.notify()

    def wait_for_acks(at_least: int, deadline: float) -> None:
        with changed:
            while acked < at_least:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"publisher: {acked} of {count} acknowledged after {timeout_s} s")
                changed.wait(min(left, 1.0))

    client = _paho_client(client_id, clean_session=True)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    _connect(client, port, timeout_s=10)
    try:
        deadline = time.monotonic() + timeout_s
        start = time.perf_counter()
        for sent, (topic, payload) in enumerate(messages):
            if sent - acked >= window:
                wait_for_acks(sent - window + 1, deadline)
            info = client.publish(topic, payload, qos=1)
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"publisher: publish failed with {paho.error_string(info.rc)}")
        wait_for_acks(count, deadline)
        elapsed = time.perf_counter() - start
    finally:
        _disconnect(client)
    return Published(acked, elapsed)


def run_publisher(
    port: int, first: int, count: int, machines: int, *, client_id: str, window: int, timeout_s: float
) -> Published:
    """Run :func:`publish` in a separate Python process (this file with ``--publisher``)."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--publisher",
        f"--port={port}",
        f"--first={first}",
        f"--messages={count}",
        f"--machines={machines}",
        f"--client-id={client_id}",
        f"--window={window}",
        f"--timeout={timeout_s}",
    ]
    with start_child(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as publisher:
        try:
            out, errors = publisher.communicate(timeout=timeout_s + 60)
        except subprocess.TimeoutExpired:
            publisher.kill()
            raise
    if publisher.returncode != 0:
        raise RuntimeError(f"publisher failed ({publisher.returncode}): {errors[-2000:]}")
    report = json.loads(out.strip().splitlines()[-1])
    return Published(int(report["messages"]), float(report["seconds"]))


# -- the two consumers --------------------------------------------------------------------------


def meter_source(url: str, client_id: str, machines: int) -> tuple[MqttSource, dict[str, str]]:
    """The MQTT source of ``examples/mqtt-meters.yaml`` for ``machines`` machines on line l1.

    The file's subscription, queue and session settings are kept; the URL, the client id and the
    list of machines are substituted, and the result goes through :func:`parse_plant` as any plant
    file does. Returns the source and machine id -> line id of every machine.
    """
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    [line] = document["sites"][0]["lines"]
    template = line["machines"][0]
    line["machines"] = [{**template, "id": f"m{k}"} for k in range(1, machines + 1)]
    [source] = document["sources"]
    source["url"] = url
    source["client_id"] = client_id
    # JSON is YAML too, and never writes the anchors that plant files refuse (the machines share
    # one `signals` dict here, which a YAML dump would turn into an alias).
    loaded = parse_plant(json.dumps(document), "mqtt-meters (bench)", environ={})
    [mqtt] = [s for s in loaded.model.sources if isinstance(s, MqttSource)]
    return mqtt, {m.id: ln.id for _, ln, m in loaded.model.machines()}


@dataclass
class Consumed:
    """What one consumer processed in a round, and how long it took from the connect."""

    kind: Kind
    expected: int
    received: int = 0
    """Messages processed, duplicates included."""
    distinct: int = 0
    duplicates: int = 0
    stray: int = 0
    """Messages from outside the expected range (another round's): always 0 unless sessions leak."""
    readings: int = 0
    """Readings the collector produced (0 for the raw subscriber)."""
    seconds: float = 0.0
    """From the connect to the last distinct message processed."""
    cpu_seconds: float = 0.0
    """CPU time of this process meanwhile: close to ``seconds`` when the consumer is the bottleneck."""
    discarded: int = 0
    """Messages aiomqtt discarded because its incoming queue was full: acknowledged, then lost."""
    queue_dropped: int = 0
    queue_limit: int = 0
    """The bound on aiomqtt's incoming queue (0: none)."""
    bad: dict[str, int] = field(default_factory=dict)
    stopped: Stop = "complete"

    @property
    def lost(self) -> int:
        """Messages acknowledged by the broker to the publisher that this consumer never processed."""
        return self.expected - self.distinct

    @property
    def rate(self) -> float:
        """Distinct messages processed per second."""
        return self.distinct / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_rate(self) -> float:
        """Distinct messages per CPU second of this process: less sensitive to a busy machine."""
        return self.distinct / self.cpu_seconds if self.cpu_seconds > 0 else 0.0

    @property
    def busy(self) -> float:
        """CPU time over wall time (1.0: the consumer kept one core busy throughout)."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: Consumed) -> None:
        """Add the counts and times of ``other`` (another backlog of the same round)."""
        for name in (
            "expected",
            "received",
            "distinct",
            "duplicates",
            "stray",
            "readings",
            "seconds",
            "cpu_seconds",
            "discarded",
            "queue_dropped",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.queue_limit = other.queue_limit
        for reason, n in other.bad.items():
            self.bad[reason] = self.bad.get(reason, 0) + n
        if other.stopped != "complete":
            self.stopped = other.stopped


class _Tally:
    """Distinct messages ``first`` .. ``first + count - 1`` seen, and when the last one was."""

    def __init__(self, result: Consumed, first: int, count: int, start: float) -> None:
        self.result = result
        self.first = first
        self.count = count
        self.seen = bytearray(count)
        self.start = start

    def note(self, index: int) -> bool:
        """Count message ``index``; true once every expected message has been seen."""
        result = self.result
        result.received += 1
        j = index - self.first
        if not 0 <= j < self.count:
            result.stray += 1
        elif self.seen[j]:
            result.duplicates += 1
        else:
            self.seen[j] = 1
            result.distinct += 1
            result.seconds = time.perf_counter() - self.start
        return result.distinct >= self.count


async def _bounded(
    work: Coroutine[Any, Any, None], progress: Callable[[], int], idle_s: float, timeout_s: float
) -> Stop:
    """Run ``work``; stop it when ``progress()`` stalls for ``idle_s`` or after ``timeout_s``.

    The watchdog wakes four times a second, which costs the measured consumer nothing measurable.
    """
    loop = asyncio.get_running_loop()
    task = loop.create_task(work)
    seen, moved, end = progress(), loop.time(), loop.time() + timeout_s
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            task.result()
            return "complete"
        now = loop.time()
        if progress() != seen:
            seen, moved = progress(), now
        stop: Stop | None = "deadline" if now >= end else "idle" if now - moved >= idle_s else None
        if stop is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return stop


async def consume_raw(
    port: int,
    client_id: str,
    topic_filter: str,
    first: int,
    count: int,
    *,
    queue_limit: int,
    keepalive_s: int = 30,
    idle_s: float = 5.0,
    timeout_s: float = 300.0,
) -> Consumed:
    """Connect as ``client_id`` (persistent session) and take messages ``first`` .. ``first + count - 1``.

    Per message it only decodes the JSON payload (orjson, as the collector) and notes the index.
    The client is configured as :class:`MqttCollector` configures its own: QoS 1 subscription made
    again after the connect, clean session off, aiomqtt's incoming queue bounded at ``queue_limit``
    (0: unbounded), with discarded messages counted.
    """
    result = Consumed("raw", count, queue_limit=queue_limit)

    class CountingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            try:
                super().put_nowait(item)
            except asyncio.QueueFull:
                result.discarded += 1
                raise

    tally = _Tally(result, first, count, time.perf_counter())

    async def work() -> None:
        async with aiomqtt.Client(
            HOST,
            port,
            identifier=client_id,
            clean_session=False,
            keepalive=keepalive_s,
            queue_type=CountingQueue,
            max_queued_incoming_messages=queue_limit,
            timeout=10,
        ) as client:
            await client.subscribe(topic_filter, qos=1)
            async for message in client.messages:
                document = orjson.loads(message.payload)
                if tally.note(int(document["energy_wh"])):
                    return

    result.stopped = await _bounded(work(), lambda: result.received, idle_s, timeout_s)
    return result


async def consume_collector(
    source: MqttSource,
    machines: dict[str, str],
    first: int,
    count: int,
    *,
    idle_s: float = 5.0,
    timeout_s: float = 300.0,
) -> Consumed:
    """Run an :class:`MqttCollector` on ``source`` until it has produced the readings of ``count`` messages.

    Each message gives a ``power_kw`` and then an ``energy_kwh`` reading; the latter carries the
    message index (``energy_wh`` × 0.001), from which distinct messages, duplicates and losses are
    counted exactly as the raw subscriber counts them.
    """
    result = Consumed("collector", count, queue_limit=0)  # MqttCollector leaves aiomqtt's queue unbounded
    collectors: list[MqttCollector] = []
    tally = _Tally(result, first, count, time.perf_counter())

    async def work() -> None:
        async with MqttCollector(source, machines) as collector:
            collectors.append(collector)
            # Leaving the loop leaves the generator to asyncio.run, which closes it at the end.
            async for reading in collector.readings():
                result.readings += 1
                value = reading.value
                if (
                    reading.signal == "energy_kwh"
                    and isinstance(value, int | float)
                    and tally.note(round(value * 1000))
                ):
                    return

    result.stopped = await _bounded(work(), lambda: result.readings, idle_s, timeout_s)
    if collectors:
        health = collectors[0].health
        result.discarded = 0  # aiomqtt's queue is unbounded in the collector: it discards nothing
        result.queue_dropped = collectors[0].dropped
        result.bad = dict(health.bad)
    return result


# -- rounds and the measurement -----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How a run is done; the defaults are those of the command."""

    messages: int = DEFAULT_MESSAGES
    machines: int = DEFAULT_MACHINES
    backlog: int | None = None
    """Messages published per consume step; ``None``: all at once."""
    window: int = DEFAULT_WINDOW
    idle_s: float = 5.0
    timeout_s: float = 300.0


def run_round(kind: Kind, label: str, port: int, settings: Settings) -> tuple[Published, Consumed]:
    """One round of one consumer: subscribe its session, then publish while it is away and time it.

    ``label`` makes the client ids unique to the round; the session is removed afterwards.
    """
    client_id = f"bench-{kind}-{os.getpid()}-{label}"
    source, machines = meter_source(f"mqtt://{HOST}:{port}", client_id, settings.machines)
    [subscription] = source.subscriptions
    topic_filter = TopicTemplate(subscription.topic).filter
    n = settings.messages
    backlog = settings.backlog or n
    published = Published(0, 0.0)
    total = Consumed(kind, 0)
    subscribe_session(port, client_id, topic_filter)
    try:
        for first in range(0, n, backlog):
            count = min(backlog, n - first)
            step = run_publisher(
                port,
                first,
                count,
                settings.machines,
                client_id=f"bench-publisher-{os.getpid()}-{kind}-{label}",
                window=settings.window,
                timeout_s=settings.timeout_s,
            )
            if step.messages != count:
                raise RuntimeError(f"the broker acknowledged {step.messages} of {count} messages")
            published += step
            gc.collect()
            consumer: Coroutine[Any, Any, Consumed]
            if kind == "raw":
                consumer = consume_raw(
                    port,
                    client_id,
                    topic_filter,
                    first,
                    count,
                    # What MqttCollector gives aiomqtt, or aiomqtt's default (0: unbounded).
                    queue_limit=0,  # the same as the collector: unbounded
                    keepalive_s=source.keepalive_s,
                    idle_s=settings.idle_s,
                    timeout_s=settings.timeout_s,
                )
            else:
                consumer = consume_collector(
                    source, machines, first, count, idle_s=settings.idle_s, timeout_s=settings.timeout_s
                )
            cpu = time.process_time()
            consumed = asyncio.run(consumer)
            consumed.cpu_seconds = time.process_time() - cpu
            total.add(consumed)
    finally:
        drop_session(port, client_id)
    return published, total


@dataclass
class BenchResult:
    """Every round of a run."""

    settings: Settings
    published: list[Published] = field(default_factory=list)
    raw: list[Consumed] = field(default_factory=list)
    collector: list[Consumed] = field(default_factory=list)

    @property
    def publisher_rate(self) -> float:
        """Messages/s of the fastest publisher round."""
        return max(p.rate for p in self.published)

    @property
    def raw_rate(self) -> float:
        """Messages/s of the fastest raw round."""
        return max(c.rate for c in self.raw)

    @property
    def collector_rate(self) -> float:
        """Messages/s of the fastest collector round (it produces twice as many readings/s)."""
        return max(c.rate for c in self.collector)

    @property
    def ratio(self) -> float:
        """Collector rate over raw rate (best round of each)."""
        return self.collector_rate / self.raw_rate if self.raw_rate > 0 else 0.0

    @property
    def cpu_ratio(self) -> float:
        """Collector over raw in messages per CPU second (best round of each): CPU cost per message."""
        raw = max(c.cpu_rate for c in self.raw)
        return max(c.cpu_rate for c in self.collector) / raw if raw > 0 else 0.0

    @property
    def raw_lost(self) -> int:
        """Messages lost by the raw subscriber, all rounds together."""
        return sum(c.lost for c in self.raw)

    @property
    def collector_lost(self) -> int:
        """Messages lost by the collector, all rounds together."""
        return sum(c.lost for c in self.collector)

    def failures(self) -> list[str]:
        """The targets missed (empty when the ratio is met and nothing was lost)."""
        out = []
        if self.ratio < TARGET_RATIO:
            out.append(f"ratio {self.ratio:.2f} < {TARGET_RATIO}")
        for kind, lost, rounds in (
            ("raw subscriber", self.raw_lost, self.raw),
            ("collector", self.collector_lost, self.collector),
        ):
            if lost:
                discarded = sum(c.discarded for c in rounds)
                out.append(f"{kind} lost {lost:,} messages ({discarded:,} discarded by aiomqtt's full queue)")
        for c in self.collector:
            if c.readings != 2 * c.received or c.bad:
                out.append(f"collector: {c.readings} readings for {c.received} messages, bad {c.bad}")
                break
        return out


def describe(published: Published, consumed: Consumed) -> str:
    """One line about a round."""
    extra = f", {consumed.readings:,} readings" if consumed.kind == "collector" else ""
    cpu_us = 1e6 / consumed.cpu_rate if consumed.cpu_rate else 0.0
    return (
        f"{consumed.kind:9} {consumed.seconds:6.2f} s {consumed.rate:9,.0f} msgs/s{extra}; "
        f"CPU {consumed.busy:.0%}, {cpu_us:.0f} µs/msg; "
        f"lost {consumed.lost:,}, duplicates {consumed.duplicates}, "
        f"discarded by aiomqtt {consumed.discarded:,} ({consumed.stopped}); "
        f"publisher {published.rate:,.0f} msgs/s"
    )


def measure(port: int, settings: Settings, repeat: int = 3, *, log: TextIO | None = None) -> BenchResult:
    """Alternate raw and collector rounds, ``repeat`` of each, against the broker on ``port``."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    result = BenchResult(settings)
    for round_no in range(1, repeat + 1):
        for kind in KINDS:
            published, consumed = run_round(kind, f"r{round_no}", port, settings)
            result.published.append(published)
            (result.raw if kind == "raw" else result.collector).append(consumed)
            if log is not None:
                print(f"round {round_no}/{repeat}: {describe(published, consumed)}", file=log, flush=True)
    return result


def profile_round(port: int, settings: Settings, kind: Kind, top: int = 15) -> tuple[Consumed, str]:
    """One round of ``kind`` with the consumer under cProfile; the top ``top`` entries by tottime.

    Only the consuming is profiled (in the main thread; aiomqtt's connect runs in an executor
    thread and is not seen). cProfile slows the round several fold.
    """
    profiler = cProfile.Profile()
    original = asyncio.run

    def profiled_run(main: Coroutine[Any, Any, Consumed]) -> Consumed:
        profiler.enable()
        try:
            return original(main)
        finally:
            profiler.disable()

    asyncio.run = profiled_run  # type: ignore[assignment]
    try:
        _, consumed = run_round(kind, "profile", port, settings)
    finally:
        asyncio.run = original
    return consumed, profile_text(profiler, top)


# -- the command --------------------------------------------------------------------------------

CODE_PATHS = ("collectors", "plantstream")
"""A change to these makes the measured code ``+dirty``."""

TABLE_HEADER = (
    "| date | messages | backlog | raw queue | publisher msgs/s | raw msgs/s | collector msgs/s | ratio "
    "| ratio per CPU s | lost raw | lost collector |\n"
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def table_row(result: BenchResult, day: str) -> str:
    """One Markdown table row under :data:`TABLE_HEADER` (losses summed over the rounds)."""
    s = result.settings
    limit = result.raw[0].queue_limit
    raw_queue = f"{limit:,}" if limit else "unbounded"
    return (
        f"| {day} | {s.messages:,} | {s.backlog or s.messages:,} | {raw_queue} | "
        f"{result.publisher_rate:,.0f} | {result.raw_rate:,.0f} | {result.collector_rate:,.0f} | "
        f"{result.ratio:.2f} | {result.cpu_ratio:.2f} | {result.raw_lost:,} | {result.collector_lost:,} |"
    )


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES, help="messages per round")
    parser.add_argument("--machines", type=int, default=DEFAULT_MACHINES, help="machines (topics)")
    parser.add_argument(
        "--backlog", type=int, default=None, help="publish and consume this many at a time (default: all)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of raw and of collector")
    parser.add_argument(
        "--window", type=int, default=DEFAULT_WINDOW, help="publisher: most unacknowledged messages"
    )
    parser.add_argument(
        "--broker-inflight",
        type=int,
        default=DEFAULT_BROKER_INFLIGHT,
        help="broker: max_inflight_messages towards a consumer",
    )
    parser.add_argument("--idle", type=float, default=5.0, help="end a consume step after this long idle, s")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest a step may take, s")
    parser.add_argument(
        "--profile", action="store_true", help="instead of timing, profile one raw and one collector round"
    )
    parser.add_argument(
        "--check", action="store_true", help=f"exit 1 unless ratio >= {TARGET_RATIO} and nothing was lost"
    )
    # Internal: the publisher process that run_publisher starts.
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--client-id", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.messages, args.machines, args.window, args.backlog or 1, args.repeat) < 1:
        parser.error("--messages, --machines, --window, --backlog and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Start a broker, measure (or profile), print the results; the exit status for ``--check``."""
    args = _arguments(argv)
    if args.publisher:
        published = publish(
            args.port,
            args.first,
            args.messages,
            args.machines,
            client_id=args.client_id,
            window=args.window,
            timeout_s=args.timeout,
        )
        print(json.dumps({"messages": published.messages, "seconds": published.seconds}))
        return 0
    stop_on_sigterm()  # here, not in the publisher: the bench's own cleanup stops its children
    # aiomqtt logs a warning for every message it discards; they are counted instead.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    settings = Settings(args.messages, args.machines, args.backlog, args.window, args.idle, args.timeout)
    backlog = args.backlog or args.messages
    with (
        tempfile.TemporaryDirectory(prefix="plantstream-bench-mqtt-") as tmp,
        Broker(Path(tmp), max_queued=backlog + 1_000, inflight=args.broker_inflight) as broker,
    ):
        print(
            f"code {code_revision(CODE_PATHS)}, python {platform.python_version()}, {os.cpu_count()} CPUs; "
            f"mosquitto {HOST}:{broker.port}, max_inflight_messages {args.broker_inflight}; "
            f"{args.messages:,} messages on {args.machines} topics per round, backlog {backlog:,}; "
            "aiomqtt's queue unbounded in both; best of each kind kept",
            flush=True,
        )
        if args.profile:
            for kind in KINDS:
                consumed, report = profile_round(broker.port, settings, kind)
                print(f"\n== {kind} round under cProfile: {describe(Published(0, 0.0), consumed)}")
                print(report)
            return 0
        result = measure(broker.port, settings, args.repeat, log=sys.stdout)
    print()
    print(f"publisher (paho, QoS 1, acknowledged): {result.publisher_rate:10,.0f} msgs/s")
    print(f"raw aiomqtt subscriber (orjson only):  {result.raw_rate:10,.0f} msgs/s")
    print(
        f"plantstream collector (Readings):      {result.collector_rate:10,.0f} msgs/s "
        f"({2 * result.collector_rate:,.0f} readings/s)"
    )
    print(f"ratio collector/raw: {result.ratio:.3f}  (target >= {TARGET_RATIO})")
    print(f"ratio of messages per CPU second, collector/raw: {result.cpu_ratio:.3f}")
    print(f"lost: raw {result.raw_lost:,}, collector {result.collector_lost:,} (target 0 in both)")
    failures = result.failures()
    print_report_tail(TABLE_HEADER, table_row(result, today()), failures, sys.stdout)
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
