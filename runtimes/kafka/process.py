"""``plantstream process``: a faust-streaming app running the calculators on the readings topic.

One agent consumes the readings topic; for each record :class:`MachineStates` runs the machine's
engine (the same pure engine as the embedded runtime) and the agent then, in this order:

1. sends the points (keyed by machine) and any dead letter, and waits until the broker has them;
2. writes the machine's state, with the offset of the record, to the ``engine`` table, whose
   changelog topic is how a restarted or rebalanced worker gets it back;
3. lets faust acknowledge the event; faust flushes the producer (the changelog included) before
   it commits offsets.

A crash between 1 and 2 re-sends the same points when the record is processed again (same
identity, same fields: an overwrite at the sink); a crash between 2 and the commit redelivers
records the state already holds, which the stored offset makes the worker skip. So no window is
lost and none is counted twice in what reaches the sink (docs/kafka.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from plantstream.plant.schema import Kafka
from plantstream.records import DeadLetter
from runtimes.kafka.calculate import MachineStates
from streams.config import EngineSpec

__all__ = ["STATE_TABLE", "build_app", "run_worker"]

_log = logging.getLogger("plantstream.process")
STATE_TABLE = "engine"
"""The faust table of machine states; its changelog topic is ``<group>-engine-changelog``."""


def build_app(settings: Kafka, spec: EngineSpec) -> faust.App:
    """The faust app of ``process`` for one plant."""
    app = faust.App(
        settings.group,
        broker=[f"kafka://{server}" for server in settings.servers()],
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        producer_acks=-1,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        # Records are bytes we encode ourselves (Reading and Point JSON, engine checkpoints).
        key_serializer="raw",
        value_serializer="raw",
    )
    readings = app.topic(
        settings.topics.readings,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    states = app.Table(
        STATE_TABLE,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    machines = MachineStates(spec, _TableView(states))

    async def send_dead_letter(letter: DeadLetter, key: bytes | None) -> Any:
        return await app.producer.send(
            settings.topics.deadletter, key, letter.to_json().encode(), None, None, None
        )

    @app.agent(readings, name="calculate")
    async def calculate(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            where = f"{message.topic}[{message.partition}]@{message.offset}"
            outcome = machines.take(message.key, message.value, message.offset, where)
            if outcome.skipped:
                continue
            pending = []
            for point in outcome.points:
                key = point.tags.get("machine", outcome.machine or "").encode()
                pending.append(
                    await app.producer.send(
                        settings.topics.points, key, point.to_json().encode(), None, None, None
                    )
                )
            if outcome.dead_letter is not None:
                _log.warning("dead letter %s: %s", where, outcome.dead_letter.error)
                pending.append(await send_dead_letter(outcome.dead_letter, message.key))
            # The points are on the broker before the state that says they were made.
            await asyncio.gather(*pending)
            if outcome.state is not None and outcome.machine is not None:
                states[outcome.machine.encode()] = outcome.state

    async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.topics.readings)
        machines.forget()
        _log.warning("assigned readings partitions %s", mine)
        print(f"process: assigned readings partitions {mine}", flush=True)

    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]
    _ = calculate
    return app


class _TableView:
    """Machine-id keyed access to the faust table, which is keyed by the machine id's bytes."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, machine: str) -> bytes | None:
        value = self._table.get(machine.encode())
        return value if isinstance(value, bytes) else None


def run_worker(app: faust.App, *, loglevel: str = "WARNING") -> None:
    """Run the app in a faust worker until SIGINT / SIGTERM; the worker commits what it finished."""
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False, quiet=True)
    worker.execute_from_commandline()
