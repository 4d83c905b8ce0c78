"""The MQTT collector: an async iterator of Readings from one broker (aiomqtt 2.x).

Delivery and loss window. Subscriptions are QoS 1 by default on a persistent session (clean
session off, a fixed client id), so the broker keeps messages published while the collector is
away and delivers them when it returns. paho acknowledges a QoS 1 message when its message
callback returns; the collector decodes the message inside that callback (through the incoming
queue class it gives aiomqtt) and queues the readings, so they are normally in the collector's
queue before the PUBACK leaves. A message waits in aiomqtt's queue only when taking it at once
would have to wait (see :meth:`MqttCollector._take_now`). aiomqtt's queue is unbounded on purpose
(a bound there would discard messages already acknowledged; the broker's per-session limits bound
it), and the collector's own queue has the source's named policy (``block`` by default). A crash
loses at most what the two queues hold; cumulative counters and registers make even that a loss
of resolution, not of totals.

Reconnect. One loop per source, a fresh ``aiomqtt.Client`` for every attempt, capped exponential
back-off with full jitter; subscriptions are made again after every connect, so data flows after a
broker restart with no manual step.

Sparkplug B (``payload: sparkplug_b``): births fill the alias tables, data is resolved through
them, deaths mark the node's or device's metrics bad, and a sequence gap, an unknown alias or data
before a birth asks the edge node for a rebirth (an NCMD, at most every five seconds per node).

Bad payloads (not JSON, a missing field, a wrong type, a bad timestamp, not a number, a topic that
matches no machine, an unknown alias) are counted per reason, logged once per topic and reason
with a sample, handed to ``on_dead_letter`` with the raw payload, and never stop the collector.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import cast
from urllib.parse import urlsplit

import aiomqtt

from collectors import sparkplug
from collectors.backoff import Backoff
from collectors.base import Collector
from collectors.payloads import PayloadError, Sample, decode_json, decode_number
from collectors.topics import TopicTemplate
from plantstream.plant.schema import MqttSource, MqttSubscription
from plantstream.records import DeadLetter, Quality, Reading, ReadingTuple, reading_tuple

__all__ = ["MqttCollector", "MqttHealth"]

_log = logging.getLogger("plantstream.collectors.mqtt")
_REBIRTH_EVERY_MS = 5_000


def _utc_now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class MqttHealth:
    """What an operator needs to know about one MQTT source."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    received: int = 0
    readings: int = 0
    rebirths: int = 0
    unmapped_metrics: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    last_message: datetime | None = None
    last_error: str | None = None


class MqttCollector(Collector):
    """Reads one broker. Use as ``async with collector: async for reading in collector.readings()``."""

    _name = "mqtt"

    def __init__(
        self,
        source: MqttSource,
        machines: Mapping[str, str],
        *,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
        backoff: Backoff | None = None,
    ) -> None:
        """Prepare a collector for ``source``.

        Args:
            source: the validated source from the plant file.
            machines: machine id -> line id of every machine in the plant (to check topics).
            on_dead_letter: receives every message that could not become readings, and says them
                in the log (runtimes.deadletter_log); without it, the first message refused for each
                reason is logged here and the rest are only counted.
            clock: the time of receipt (tests pass a fixed clock).
            backoff: reconnect delays; the default is 0.5 s doubling to 30 s, with jitter.
        """
        self.source = source
        self.health = MqttHealth()
        self._machines = dict(machines)
        self._on_dead_letter = on_dead_letter
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._templates = [(sub, TopicTemplate(sub.topic)) for sub in source.subscriptions]
        super().__init__(source.id, source.queue.size, source.queue.overflow)
        self._logged: set[str] = set()
        self._seq = 0
        self._spb = sparkplug.SparkplugState()
        self._asked: dict[tuple[str, str], int] = {}
        self._rebirths: list[tuple[str, bytes]] = []
        url = urlsplit(source.url)
        self._host = url.hostname or "localhost"
        self._tls = url.scheme == "mqtts"
        self._port = url.port or (8883 if self._tls else 1883)

    # -- the one reconnect loop -----------------------------------------------------------------

    async def _session_loop(self) -> None:
        while True:
            try:
                async with self._new_client() as client:
                    self.health.connected = True
                    self.health.connects += 1
                    self.health.last_error = None
                    self._backoff.reset()
                    for sub, template in self._templates:
                        await client.subscribe(template.filter, qos=sub.qos)
                    _log.info("source %s: connected to %s:%s", self.source.id, self._host, self._port)
                    async for message in client.messages:
                        await self._handle(message, client)
            except (aiomqtt.MqttError, ssl.SSLError, OSError) as exc:
                self._failed(exc)
            except Exception as exc:
                # Anything else from the client library: reconnect, the loop never dies.
                _log.warning("source %s: unexpected %s", self.source.id, type(exc).__name__, exc_info=exc)
                self._failed(exc)
            self.health.connected = False
            await asyncio.sleep(self._backoff.next_delay())

    def _failed(self, exc: BaseException) -> None:
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            text += " (check tls.ca_file: the broker's certificate is not signed by it)"
        message = f"source {self.source.id}: broker {self._host}:{self._port}: {text}"
        if self.health.connected or self.health.last_error != message:
            _log.warning("%s; reconnecting with back-off", message)
        if self.health.connected:
            self.health.reconnects += 1
        self.health.last_error = message

    def _new_client(self) -> aiomqtt.Client:
        source = self.source
        tls: aiomqtt.TLSParameters | None = None
        if self._tls:
            settings = source.tls
            tls = aiomqtt.TLSParameters(
                ca_certs=settings.ca_file if settings else None,
                certfile=settings.cert_file if settings else None,
                keyfile=settings.key_file if settings else None,
            )
        return aiomqtt.Client(
            self._host,
            self._port,
            identifier=source.client_id or f"plantstream-{source.id}",
            clean_session=not source.persistent_session,
            username=source.username or None,  # an unset ${MQTT_USER:-} means anonymous
            password=source.password or None,
            keepalive=source.keepalive_s,
            tls_params=tls,
            # Unbounded on purpose: paho has already acknowledged what is in this queue, so a bound
            # here would discard acknowledged QoS 1 messages. What the broker sends is bounded by
            # the session's in-flight and queued limits on the broker.
            max_queued_incoming_messages=0,
            queue_type=cast("type[asyncio.Queue[aiomqtt.Message]]", partial(_Inbox, take=self._take_now)),
            timeout=10,
        )

    # -- messages to readings -------------------------------------------------------------------

    def _take_now(self, message: aiomqtt.Message) -> bool:
        """Turn a message into readings while paho hands it over, before it sends the PUBACK.

        Called from aiomqtt's incoming queue when that queue is empty (so order is kept). This is
        the common path: no hand-off through aiomqtt's queue and its per-message wait, and the
        window between acknowledgement and the reading being queued closes. Returns False, and the
        message waits in aiomqtt's queue for :meth:`_handle`, when taking it now would need to
        wait: our queue has no room under ``block``, or a Sparkplug message may have to publish a
        rebirth request.
        """
        found = self._subscription(message.topic.value)
        if found is not None:
            sub = found[0]
            if sub.payload == "sparkplug_b":
                return False
            most = len(sub.fields) if sub.payload == "json" else 1
            if self._queue.policy == "block" and self._queue.room() < most:
                return False
        readings = self._readings_of(message, found)
        for reading in readings:
            self._queue.put_nowait(reading)
        self.health.readings += len(readings)
        return True

    async def _handle(self, message: aiomqtt.Message, client: aiomqtt.Client) -> None:
        """The slow path: a message that waited in aiomqtt's queue (see :meth:`_take_now`)."""
        readings = self._readings_of(message, self._subscription(message.topic.value))
        for rebirth_topic, request in self._rebirths:
            await client.publish(rebirth_topic, request, qos=0)
        self._rebirths.clear()
        for reading in readings:
            await self._queue.put(reading)
        self.health.readings += len(readings)

    def _readings_of(
        self, message: aiomqtt.Message, found: tuple[MqttSubscription, dict[str, str]] | None
    ) -> list[ReadingTuple]:
        """Count and decode one message; a refused one is dead-lettered and gives no readings."""
        received = self._clock()
        self.health.received += 1
        self.health.last_message = received
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        try:
            if found is None:
                raise PayloadError("unmatched_topic", f"topic {topic!r} matches no subscription")
            return self._readings(found[0], topic, found[1], payload, received)
        except PayloadError as exc:
            self._refuse(topic, payload, exc.reason, str(exc), received)
        except ValueError as exc:  # e.g. a value no Reading can hold: one message, not the session
            self._refuse(topic, payload, "invalid", str(exc), received)
        except Exception as exc:
            # A defect of ours must cost one message, not the session (or paho's read callback).
            _log.exception("source %s: could not decode a message on %s", self.source.id, topic)
            self._refuse(topic, payload, "internal_error", f"{type(exc).__name__}: {exc}", received)
        return []

    def _subscription(self, topic: str) -> tuple[MqttSubscription, dict[str, str]] | None:
        """The first subscription whose template ``topic`` fits, with the captured levels."""
        for sub, template in self._templates:
            captured = template.match(topic)
            if captured is not None:
                return sub, captured
        return None

    def _readings(
        self, sub: MqttSubscription, topic: str, captured: dict[str, str], payload: bytes, received: datetime
    ) -> list[ReadingTuple]:
        if sub.payload == "sparkplug_b":
            return self._sparkplug(sub, topic, payload, received)
        machine = captured.get("machine", sub.machine)
        if machine is None or machine not in self._machines:
            raise PayloadError("unknown_machine", f"machine {machine!r} is not in the plant model")
        line = captured.get("line")
        if line is not None and line != self._machines[machine]:
            raise PayloadError(
                "unknown_machine",
                f"the topic names line {line!r}, machine {machine!r} is on {self._machines[machine]!r}",
            )
        if sub.payload == "json":
            samples = decode_json(payload, sub.fields, sub.timestamp, received)
        else:
            signal = captured.get("signal", sub.signal)
            assert signal is not None  # the schema guarantees one or the other
            samples = [Sample(signal, decode_number(payload), received)]
        out = []
        source = self.source.id
        for sample in samples:
            self._seq += 1
            # The decoders only give UTC times and finite numbers, flags or strings: no need to
            # validate again (validation was a third of the collector's cost per message), and
            # the reading is a tuple of its fields (records.ReadingTuple).
            out.append(
                reading_tuple(
                    (
                        sample.ts,
                        machine,
                        sample.signal,
                        sample.value,
                        Quality.GOOD,
                        None,
                        None,
                        received,
                        source,
                        self._seq,
                        False,
                    )
                )
            )
        return out

    def _sparkplug(
        self, sub: MqttSubscription, topic: str, payload: bytes, received: datetime
    ) -> list[ReadingTuple]:
        """Sparkplug B: births fill alias tables, data resolves them, deaths mark metrics bad."""
        parsed = sparkplug.parse_topic(topic)
        if parsed is None:
            raise PayloadError("unmatched_topic", f"{topic!r} is not a Sparkplug B topic")
        if parsed.message_type in ("NCMD", "DCMD", "STATE"):
            return []
        try:
            decoded = sparkplug.decode_payload(payload)
        except sparkplug.SparkplugError as exc:
            raise PayloadError("bad_sparkplug", str(exc)) from None
        received_ms = int(received.timestamp() * 1000)
        update = self._spb.on_message(parsed, decoded, received_ms)
        node = (parsed.group, parsed.edge_node)
        if update.rebirth and received_ms - self._asked.get(node, -(10**12)) >= _REBIRTH_EVERY_MS:
            # Ask again at most every few seconds: a node that lost its births would be flooded.
            self._asked[node] = received_ms
            self._rebirths.append(sparkplug.rebirth_request(*node, timestamp_ms=received_ms))
            self.health.rebirths += 1
        for problem in update.problems:
            self._refuse(topic, payload, _sparkplug_reason(problem), problem, received)
        out = []
        for sample in update.samples:
            signal = sub.metrics.get(sample.metric_name)
            if signal is None:
                self.health.unmapped_metrics += 1
                continue
            machine = sample.device or sample.edge_node
            if machine not in self._machines:
                self._refuse(
                    topic,
                    payload,
                    "unknown_machine",
                    f"machine {machine!r} is not in the plant model",
                    received,
                )
                continue
            self._seq += 1
            # Validated: a metric's value can be anything the payload holds.
            reading = Reading(
                ts=datetime.fromtimestamp(sample.timestamp_ms / 1000, tz=UTC),
                machine=machine,
                signal=signal,
                value=sample.value,
                quality="good" if sample.quality == "good" else "bad",
                source=self.source.id,
                seq=self._seq,
                ingest_ts=received,
            )
            out.append(
                ReadingTuple(
                    ts=reading.ts,
                    machine=machine,
                    signal=signal,
                    value=reading.value,
                    quality=reading.quality,
                    status_code=None,
                    server_ts=None,
                    ingest_ts=received,
                    source=self.source.id,
                    seq=self._seq,
                    backfilled=False,
                )
            )
        return out

    def _refuse(self, topic: str, payload: bytes, reason: str, error: str, received: datetime) -> None:
        self.health.bad[reason] += 1
        if self._on_dead_letter is not None:
            raw = payload.decode("utf-8", errors="backslashreplace")
            self._on_dead_letter(
                DeadLetter(
                    ts=received, source=self.source.id, where=topic, reason=reason, error=error, raw=raw
                )
            )
        elif reason not in self._logged:
            # Keyed by reason alone: topics are the sender's choice, reasons are a short fixed list.
            self._logged.add(reason)
            _log.warning(
                "source %s: %s on %s: %s; sample payload %r (further ones are counted, not logged)",
                self.source.id,
                reason,
                topic,
                error,
                payload[:200],
            )


class _Inbox(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue, which offers each message to the collector before queueing it."""

    def __init__(self, maxsize: int = 0, *, take: Callable[[aiomqtt.Message], bool]) -> None:
        super().__init__(maxsize)
        self._take = take

    def put_nowait(self, item: aiomqtt.Message) -> None:
        """Queue ``item`` unless the collector took it at once (only when nothing waits before it)."""
        if not self.empty() or not self._take(item):
            super().put_nowait(item)


def _sparkplug_reason(problem: str) -> str:
    """A short counting key for a Sparkplug problem description."""
    if problem.startswith("unknown alias"):
        return "unknown_alias"
    if problem.startswith("sequence gap") or "sequence number" in problem:
        return "sequence_gap"
    if "before its" in problem:
        return "data_before_birth"
    if "are tracked already" in problem:
        return "too_many_sparkplug_ids"
    return "sparkplug_problem"
