"""``plantstream reason``: an operator's reason for a past stop, posted to the running pipeline.

The pipeline (``run`` or ``demo``) checks the request and applies it (``POST /reason``,
:mod:`runtimes.http`, :mod:`streams.operator_reason`); this side only sends it and reads the
answer. It talks to a plantstream pipeline only: an answer without ``Server: plantstream/...``
is not taken for one. With ``--kafka`` the reading goes to the readings topic instead, checked
against the plant file only (:func:`operator_reading`).
"""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer

from plantstream.plant.schema import Kafka
from plantstream.records import EPOCH, Reading
from runtimes.kafka.topics import ensure_topics
from runtimes.tail import NotAPipeline
from streams.config import EngineSpec
from streams.operator_reason import ReasonRefused, code_for, parse_request
from streams.stops import OPERATOR_REASON

__all__ = ["DEFAULT_URL", "operator_reading", "post_reason", "send_to_kafka"]

DEFAULT_URL = "http://127.0.0.1:8765/reason"
"""Where ``run`` and ``demo`` take reasons unless ``--http-port`` or the plant file moved them."""
_TIMEOUT_S = 10.0
_MAX_ANSWER = 65_536


def post_reason(url: str, machine: str, at: str, reason: str | int) -> tuple[int, dict[str, Any]]:
    """Send one reason; return the pipeline's status and JSON answer.

    Raises:
        OSError: nothing answers at ``url``.
        NotAPipeline: something answers, but not a plantstream pipeline, or not with JSON.
    """
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise NotAPipeline(f"{url!r} is not an http:// URL (the pipeline serves plain HTTP on loopback)")
    body = json.dumps({"machine": machine, "at": at, "reason": reason}).encode()
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=_TIMEOUT_S
    )
    try:
        connection.request(
            "POST", parts.path or "/reason", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        server = response.getheader("Server") or ""
        if not server.startswith("plantstream/"):
            said = f"Server: {server}" if server else "no Server header"
            raise NotAPipeline(f"it answered {response.status} with {said}, not Server: plantstream/...")
        raw = response.read(_MAX_ANSWER)
    finally:
        connection.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        raise NotAPipeline(f"it answered {response.status} without JSON: {raw[:200]!r}") from None
    if not isinstance(answer, dict):
        raise NotAPipeline(f"it answered {response.status} with JSON that is not an object")
    return response.status, answer


def operator_reading(spec: EngineSpec, machine: str, at: str, reason: str) -> Reading:
    """The reading an operator's reason is for the kafka runtime, checked against the plant only.

    The machine must be in the plant and have a state signal, the time carry its offset, the
    reason be a code or a name of the tree; whether the machine was stopped then, and whether the
    stop is within the correction horizon, only the ``process`` role can tell (a reading at an
    instant the machine ran changes nothing; one too late is dead-lettered).

    Raises:
        streams.operator_reason.ReasonRefused: as ``POST /reason`` would, but for the stop.
    """
    request = parse_request(json.dumps({"machine": machine, "at": at, "reason": reason}).encode())
    m = spec.machines.get(request.machine)
    if m is None:
        known = ", ".join(sorted(spec.machines)[:20])
        raise ReasonRefused(
            "unknown_machine", f"machine: {machine!r} is not in the plant (machines: {known})"
        )
    if not m.state_signal:
        raise ReasonRefused(
            "no_state", f"machine: {machine!r} has no state signal, so no stops to give a reason"
        )
    code = code_for(spec.reasons, m.machine_type, request.given)
    return Reading(
        ts=EPOCH + timedelta(microseconds=request.at),
        machine=request.machine,
        signal=OPERATOR_REASON,
        value=code,
        source="operator",
        ingest_ts=datetime.now(tz=UTC),
    )


async def send_to_kafka(settings: Kafka, reading: Reading) -> None:
    """Produce ``reading`` to the readings topic as ``collect`` does: keyed by machine, all acks."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.servers(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.topics.readings, reading.to_json().encode(), key=reading.machine.encode()
        )
    finally:
        await producer.stop()
