"""The per-machine step of ``process``: one record in, points out; the machine's state on demand.

A machine of a rolled-up line or site also hands its closed windows and its "closed until"
watermark to the roll-up stage (:mod:`runtimes.kafka.rollup`) through :meth:`MachineStates.windows`.

Kept apart from Kafka so the rule that makes a restart safe is one small, testable thing: each
machine's saved state carries the offset of the last reading it took, and a record at or below
that offset is a redelivery (the worker died after saving the state but before committing the
offset) and is skipped. The engine is the same pure :class:`streams.engine.Engine` the embedded
runtime and ``replay`` use, one per machine, so nothing depends on which machines share a
partition or a worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

import orjson

from plantstream.records import DeadLetter, Point, RecordError, decode_reading
from runtimes.kafka.topics import dead_letter
from streams.config import EngineSpec
from streams.engine import Engine, ReadingRejected
from streams.machine import WindowResult
from streams.rollup import rollup_scopes

__all__ = ["MachineStates", "Outcome"]


@dataclass
class Outcome:
    """What one record produced: window points to send and a dead letter (or nothing: a redelivery).

    The reading's own raw ``reading`` point is not among them: ``sink`` makes it from the readings
    topic (docs/kafka.md).
    """

    points: list[Point] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    machine: str | None = None
    """Set when the machine's engine took the record: its state has moved on."""
    skipped: bool = False
    ts: int | None = None
    """The event time (µs since the epoch) of a reading the record held, good or refused."""


class MachineStates:
    """The engines of the machines whose partitions this worker holds, with their offsets."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self._engines: dict[str, tuple[int, Engine]] = {}
        self._rolled_up = {mid for members in rollup_scopes(spec).values() for mid in members}
        self._unsent: dict[str, list[WindowResult]] = {}
        self._sent_until: dict[str, int] = {}
        self._silent_until: dict[str, int] = {}

    def load(self, machine: str, saved: bytes) -> int:
        """Continue ``machine`` from a state written by :meth:`state`; return its offset.

        Raises:
            ValueError: the state is not one this plant's engine can continue from.
        """
        data = orjson.loads(saved)
        engine = self._new_engine(machine)
        engine.restore(data["engine"])
        offset = int(data["offset"])
        self._engines[machine] = (offset, engine)
        return offset

    def forget(self, machines: set[str] | None = None) -> None:
        """Drop engines (of partitions this worker no longer holds; all when ``None``)."""
        if machines is None:
            self._engines.clear()
            self._unsent.clear()
            self._sent_until.clear()
            self._silent_until.clear()
        for machine in machines or ():
            self._engines.pop(machine, None)
            self._unsent.pop(machine, None)
            self._sent_until.pop(machine, None)
            self._silent_until.pop(machine, None)

    def state(self, machine: str) -> bytes:
        """The machine's state with the offset of the last record it took, as JSON bytes."""
        offset, engine = self._engines[machine]
        return orjson.dumps({"offset": offset, "engine": engine.checkpoint()})

    def windows(self, machine: str) -> tuple[str, bytes] | None:
        """The roll-up stage's message of ``machine`` (key: its site), if there is news since the last.

        The windows the machine closed or corrected since the last message and its "closed
        until" watermark; nothing for a machine of no rolled-up scope, before its first reading is
        released, or when neither has changed.
        """
        entry = self._engines.get(machine)
        if entry is None or machine not in self._rolled_up:
            return None
        closed_until = entry[1].closed_until(machine)
        results = self._unsent.pop(machine, [])
        if closed_until is None or (not results and self._sent_until.get(machine) == closed_until):
            return None
        self._sent_until[machine] = closed_until
        message = {"machine": machine, "closed_until": closed_until, "results": [asdict(r) for r in results]}
        return self.spec.machines[machine].site, orjson.dumps(message)

    def silences(self, machines: list[str], until: int) -> list[tuple[str, bytes]]:
        """Roll-up stage messages for the ``machines`` that have sent nothing, silent up to ``until`` (µs).

        The caller knows that every reading of these machines before ``until`` would have been
        taken by now (their partition has delivered readings that far): a machine with no
        engine yet has nothing for windows ending by then, so its roll-ups need not wait for it.
        Nothing for machines of no rolled-up scope, with an engine, or already told this far.
        """
        out = []
        for machine in machines:
            if machine not in self._rolled_up or machine in self._engines:
                continue
            if self._silent_until.get(machine, until - 1) >= until:
                continue
            self._silent_until[machine] = until
            message = {"machine": machine, "silent_until": until}
            out.append((self.spec.machines[machine].site, orjson.dumps(message)))
        return out

    def take(
        self, key: bytes | None, value: bytes | None, offset: int, where: str, received: int | None = None
    ) -> Outcome:
        """Apply one record of the readings topic at ``offset``; never raises for bad input.

        ``received`` is when the pipeline received the reading (µs since the epoch): the record's
        timestamp, which the ``collect`` role's producer stamps as it sends. An event time more
        than ``max_future_s`` ahead of it is refused (``future``), as in ``run``. Taken from the
        record, not from this worker's clock, so processing the topic again decides the same.
        """
        try:
            return self._take(key, value, offset, where, received)
        except Exception as exc:  # every per-record error is dead-lettered, never lost silently
            return Outcome(dead_letter=dead_letter("process", where, "error", repr(exc), value))

    def _new_engine(self, machine: str) -> Engine:
        alone = dataclasses.replace(self.spec, machines={machine: self.spec.machines[machine]})
        return Engine(alone, keep_results=machine in self._rolled_up)

    def _take(
        self, key: bytes | None, value: bytes | None, offset: int, where: str, received: int | None
    ) -> Outcome:
        try:
            ts, machine, signal, reading_value, quality, _ = decode_reading(value or b"")
        except RecordError as exc:
            return Outcome(dead_letter=dead_letter("process", where, "malformed", str(exc), value))
        if machine not in self.spec.machines:
            message = f"machine {machine!r} is not in the plant model"
            return Outcome(dead_letter=dead_letter("process", where, "unknown_machine", message, value))
        if key != machine.encode():
            # A machine's state lives in the partition of its key; a reading keyed otherwise
            # would split it in two.
            message = f"record key {key!r} is not the reading's machine {machine!r}"
            return Outcome(dead_letter=dead_letter("process", where, "wrong_key", message, value))
        last, engine = self._engines.get(machine) or (-1, self._new_engine(machine))
        if offset <= last:
            return Outcome(machine=machine, skipped=True, ts=ts)
        self._engines[machine] = (offset, engine)
        outcome = Outcome(machine=machine, ts=ts)
        try:
            engine.push_raw(ts, machine, signal, reading_value, quality, received)
        except ReadingRejected as exc:
            outcome.dead_letter = dead_letter("process", where, exc.reason, str(exc), value)
        outcome.points.extend(engine.take_points())
        if machine in self._rolled_up:
            results = engine.take_results()
            if results:
                self._unsent.setdefault(machine, []).extend(result for _, result in results)
        return outcome
