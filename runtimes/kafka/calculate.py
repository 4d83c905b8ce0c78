"""The per-machine step of ``process``: one reading in, points and the machine's new state out.

Kept apart from faust so the rule that makes a restart safe is one small, testable thing: each
machine's state carries the offset of the last reading it took, and a reading at or below that
offset is a redelivery (the worker died after saving the state but before committing the offset)
and is skipped. The engine is the same pure :class:`streams.engine.Engine` the embedded runtime
and ``replay`` use, one per machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson

from plantstream.records import DeadLetter, Point, Reading, RecordError
from runtimes.kafka.topics import dead_letter
from streams.config import EngineSpec
from streams.engine import Engine, ReadingRejected
from streams.points import reading_point

__all__ = ["MachineStates", "Outcome"]


@dataclass
class Outcome:
    """What one record produced: points to send, a dead letter, and the state to save (if any)."""

    points: list[Point] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    machine: str | None = None
    state: bytes | None = None
    skipped: bool = False


class MachineStates:
    """Engines by machine, restored from the saved states whenever those are newer than the cache.

    ``saved`` is the mapping the states are kept in (a faust table in ``process``, a dict in
    tests): machine id -> JSON bytes ``{"offset": int, "engine": <Engine.checkpoint()>}``.
    """

    def __init__(self, spec: EngineSpec, saved: Any) -> None:
        self.spec = spec
        self.saved = saved
        self._engines: dict[str, tuple[int, Engine]] = {}

    def engine_for(self, machine: str) -> tuple[int, Engine]:
        """The machine's engine and the offset of the last reading in it (-1: none yet).

        The cache is trusted only when it is at the saved offset: after a rebalance another worker
        may have moved the machine on, and the saved state is then the truth.
        """
        raw = self.saved.get(machine)
        offset = -1
        data = None
        if raw is not None:
            data = orjson.loads(raw)
            offset = int(data["offset"])
        cached = self._engines.get(machine)
        if cached is not None and cached[0] == offset:
            return cached
        engine = Engine(dataclasses.replace(self.spec, machines={machine: self.spec.machines[machine]}))
        if data is not None:
            engine.restore(data["engine"])
        self._engines[machine] = (offset, engine)
        return offset, engine

    def forget(self) -> None:
        """Drop the cached engines (partitions were revoked: the saved states are the truth)."""
        self._engines.clear()

    def take(self, key: bytes | None, value: bytes | None, offset: int, where: str) -> Outcome:
        """Apply one record of the readings topic at ``offset``; never raises for bad input."""
        try:
            return self._take(key, value, offset, where)
        except Exception as exc:  # every per-record error is dead-lettered, never lost silently
            return Outcome(dead_letter=dead_letter("process", where, "error", repr(exc), value))

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
        last, engine = self.engine_for(machine)
        if offset <= last:
            return Outcome(machine=machine, skipped=True)
        outcome = Outcome(machine=machine)
        if reading.signal in spec.recorded:
            outcome.points.append(reading_point(reading, spec.site, spec.line))
        try:
            engine.push(reading)
        except ReadingRejected as exc:
            outcome.dead_letter = dead_letter("process", where, exc.reason, str(exc), value)
        outcome.points.extend(engine.take_points())
        outcome.state = orjson.dumps({"offset": offset, "engine": engine.checkpoint()})
        self._engines[machine] = (offset, engine)
        return outcome
