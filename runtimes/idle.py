"""Quiet machines of a live source move on with the source's clock, so their windows close.

An OPC UA subscription reports changes only: a machine that stands still (down for an hour, an
oven holding its temperature) may send nothing, and without readings its windows would stay open
until it changes again, exactly when an operator wants to see the downtime. While a source is
connected and other machines on it report newer times, a machine that has been quiet for the
idle time gets an engine tick (:meth:`streams.engine.Engine.tick`) half an idle time behind the
source's clock: its state holds, nothing is invented, and real data that arrives later than the
tick still corrects what it closed.

The source's clock is the newest reading time of that source, never the local clock, so this
works at any simulator speed; it is used for OPC UA sources only (one server, one clock), not for
MQTT, where meters and gateways each stamp with their own clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta

from plantstream.records import EPOCH, Reading

__all__ = ["IdleTicker"]

_ONE_US = timedelta(microseconds=1)


class IdleTicker:
    """Remembers each source's clock and each machine's newest time; ticks the quiet ones."""

    def __init__(self, tick: Callable[[str, int], None], idle_us: int, sources: Iterable[str]) -> None:
        """``tick(machine, ts_us)`` moves a machine on; ``sources`` are the ids whose clocks count."""
        self._tick = tick
        self._idle_us = idle_us
        self._sources = set(sources)
        self._clock: dict[str, int] = {}
        self._newest: dict[str, dict[str, int]] = {}
        self.ticks = 0
        """Ticks given so far."""

    def seen(self, reading: Reading) -> None:
        """Note a reading that went to the engine."""
        source = reading.source
        if source not in self._sources:
            return
        ts = (reading.ts - EPOCH) // _ONE_US
        if ts > self._clock.get(source, -1):
            self._clock[source] = ts
        machines = self._newest.setdefault(source, {})
        if ts > machines.get(reading.machine, -1):
            machines[reading.machine] = ts

    def forget(self, source: str) -> None:
        """The source lost its connection: no ticks until it reports again (the gap stays unknown)."""
        self._clock.pop(source, None)
        self._newest.pop(source, None)

    def tick_quiet(self) -> int:
        """Tick every machine quiet for the idle time on its source's clock; return how many."""
        given = 0
        for source, clock in self._clock.items():
            machines = self._newest[source]
            for machine, newest in machines.items():
                if clock - newest >= self._idle_us:
                    at = clock - self._idle_us // 2
                    self._tick(machine, at)
                    machines[machine] = at
                    given += 1
        self.ticks += given
        return given
