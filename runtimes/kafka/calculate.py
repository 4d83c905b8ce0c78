"""The per-machine step of ``process``: one record in, points out; the machine's state on demand.

Kept apart from Kafka so the rule that makes a restart safe is one small, testable thing: each
machine's saved state carries the offset of the last reading it took, and a record at or below
that offset is a redelivery (the worker died after saving the state but before committing the
offset) and is skipped. The engine is the same pure :class:`streams.engine.Engine` the embedded
runtime and ``replay`` use, one per machine, so nothing depends on which machines share a
partition or a worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import orjson

from plantstream.records import DeadLetter, Point, Reading, RecordError
from runtimes.kafka.topics import dead_letter
from streams.config import EngineSpec
from streams.engine import Engine, ReadingRejected
from streams.points import reading_point

__all__ = ["MachineStates", "Outcome"]


@dataclass
class Outcome:
    """What one record produced: points to send and a dead letter (or nothing: a redelivery)."""

    points: list[Point] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    machine: str | None = None
    """Set when the machine's engine took the record: its state has moved on."""
    skipped: bool = False


class MachineStates:
    """The engines of the machines whose partitions this worker holds, with their offsets."""

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self._engines: dict[str, tuple[int, Engine]] = {}

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
        for machine in machines or ():
            self._engines.pop(machine, None)

    def state(self, machine: str) -> bytes:
        """The machine's state with the offset of the last record it took, as JSON bytes."""
        offset, engine = self._engines[machine]
        return orjson.dumps({"offset": offset, "engine": engine.checkpoint()})

    def take(self, key: bytes | None, value: bytes | None, offset: int, where: str) -> Outcome:
        """Apply one record of the readings topic at ``offset``; never raises for bad input."""
        try:
            return self._take(key, value, offset, where)
        except Exception as exc:  # every per-record error is dead-lettered, never lost silently
            return Outcome(dead_letter=dead_letter("process", where, "error", repr(exc), value))

    def _new_engine(self, machine: str) -> Engine:
        return Engine(dataclasses.replace(self.spec, machines={machine: self.spec.machines[machine]}))

    def _take(self, key: bytes | None, value: bytes | None, offset: int, where: str) -> Outcome:
        try:
            reading = Reading.from_json(value or b"")
        except RecordError as exc:
            return Outcome(dead_letter=dead_letter("process", where, "malformed", str(exc), value))
        machine = reading.machine
        spec = self.spec.machines.get(machine)
        if spec is None:
            message = f"machine {machine!r} is not in the plant model"
            return Outcome(dead_letter=dead_letter("process", where, "unknown_machine", message, value))
        if key != machine.encode():
            # A machine's state lives in the partition of its key; a reading keyed otherwise
            # would split it in two.
            message = f"record key {key!r} is not the reading's machine {machine!r}"
            return Outcome(dead_letter=dead_letter("process", where, "wrong_key", message, value))
        last, engine = self._engines.get(machine) or (-1, self._new_engine(machine))
        if offset <= last:
            return Outcome(machine=machine, skipped=True)
        self._engines[machine] = (offset, engine)
        outcome = Outcome(machine=machine)
        if reading.signal in spec.recorded:
            outcome.points.append(reading_point(reading, spec.site, spec.line))
        try:
            engine.push(reading)
        except ReadingRejected as exc:
            outcome.dead_letter = dead_letter("process", where, exc.reason, str(exc), value)
        outcome.points.extend(engine.take_points())
        return outcome
