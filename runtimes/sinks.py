"""The plant file's sinks in the runtimes.

Building them, their health as points and metrics, and ``replay --to-sinks`` (recomputed points
through the outbox, returning once they are delivered).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from plantstream.plant import LoadedPlant
from plantstream.records import DeadLetter, FieldValue, Point
from runtimes.replay import OverlongLine, ReplaySummary, replay
from sinks.influx import InfluxSink
from streams.engine import Engine

if TYPE_CHECKING:
    from runtimes.cbam import CbamLedger

__all__ = [
    "ERROR_CLASSES",
    "OUTBOX_DIR",
    "SINK_LOGGER",
    "SinkDelivery",
    "build_sinks",
    "replay_to_sinks",
    "sink_health_json",
    "sink_health_points",
    "sink_metrics",
]

OUTBOX_DIR = "outbox"
"""Under the state directory: one ``<sink-id>.sqlite`` per sink."""

SINK_LOGGER = "plantstream.sinks.influx"
"""The logger of :class:`InfluxSink`."""

ERROR_CLASSES = ("connection", "server", "throttled", "config", "rejected", "other")
"""The classes of failed write attempts, reported as fields and labels even when zero."""


def build_sinks(
    plant: LoadedPlant,
    state_dir: Path,
    on_dead_letter: Callable[[DeadLetter], None],
    *,
    flush_timeout_s: float = 30.0,
) -> list[InfluxSink]:
    """One sink per entry of ``sinks:``, each with its outbox in ``<state_dir>/outbox/``.

    Raises:
        sinks.influx.SinkConfigError: a token variable is not set (the message names sink and variable).
    """
    return [
        InfluxSink(
            settings, state_dir / OUTBOX_DIR, on_dead_letter=on_dead_letter, flush_timeout_s=flush_timeout_s
        )
        for settings in plant.model.sinks
    ]


def sink_health_points(sinks: Iterable[InfluxSink], now: datetime) -> list[Point]:
    """Each sink's health as a ``health`` point with tag ``sink`` (docs/points.md)."""
    points = []
    for sink in sinks:
        h = sink.health
        fields: dict[str, FieldValue] = {
            "connected": h.connected,
            "written": h.written,
            "requests": h.requests,
            "outbox_lines": sink.outbox.lines,
            "outbox_bytes": sink.outbox.size_bytes,
            "outbox_age_s": round(sink.outbox.oldest_age_s, 3),
            "dropped": sink.outbox.dropped,
            "dead_letters": h.dead_letters,
            "waits_for_room": h.waits_for_room,
            "errors": sum(h.errors.values()),
            **{f"errors_{kind}": h.errors.get(kind, 0) for kind in ERROR_CLASSES},
        }
        if h.last_write is not None:
            fields["last_write_age_s"] = round(max(0.0, (now - h.last_write).total_seconds()), 3)
        if h.last_error:
            fields["last_error"] = " ".join(h.last_error.split())
        points.append(Point(measurement="health", tags={"sink": sink.id}, fields=fields, time=now))
    return points


def sink_health_json(sinks: Iterable[InfluxSink]) -> dict[str, dict[str, object]]:
    """Each sink's health for ``/healthz``."""
    return {
        sink.id: {
            "connected": sink.health.connected,
            "written": sink.health.written,
            "outbox_lines": sink.outbox.lines,
            "outbox_age_s": round(sink.outbox.oldest_age_s, 3),
            "errors": dict(sink.health.errors),
            "last_error": sink.health.last_error,
            "last_write": sink.health.last_write.isoformat() if sink.health.last_write else None,
        }
        for sink in sinks
    }


def sink_metrics(sinks: Sequence[InfluxSink]) -> list[str]:
    """Prometheus text lines for the sinks (outbox depth and age, written, errors by class)."""
    if not sinks:
        return []
    lines = []
    gauges: list[tuple[str, str, Callable[[InfluxSink], float]]] = [
        ("gauge", "sink_outbox_lines", lambda s: s.outbox.lines),
        ("gauge", "sink_outbox_bytes", lambda s: s.outbox.size_bytes),
        ("gauge", "sink_outbox_age_seconds", lambda s: round(s.outbox.oldest_age_s, 3)),
        ("counter", "sink_points_written_total", lambda s: s.health.written),
        ("counter", "sink_requests_total", lambda s: s.health.requests),
        ("counter", "sink_dead_letters_total", lambda s: s.health.dead_letters),
        ("counter", "sink_dropped_total", lambda s: s.outbox.dropped),
        ("gauge", "sink_connected", lambda s: int(s.health.connected)),
        (
            "gauge",
            "sink_last_write_timestamp_seconds",
            lambda s: s.health.last_write.timestamp() if s.health.last_write else 0,
        ),
    ]
    for kind, metric, value in gauges:
        lines.append(f"# TYPE plantstream_{metric} {kind}")
        lines.extend(f'plantstream_{metric}{{sink="{s.id}"}} {value(s)}' for s in sinks)
    lines.append("# TYPE plantstream_sink_errors_total counter")
    for sink in sinks:
        errors = sink.health.errors
        lines.extend(
            f'plantstream_sink_errors_total{{sink="{sink.id}",class="{kind}"}} {errors.get(kind, 0)}'
            for kind in ERROR_CLASSES
        )
    return lines


@dataclass
class SinkDelivery:
    """What ``replay --to-sinks`` achieved: the replay, and per sink what is still waiting."""

    summary: ReplaySummary
    undelivered: dict[str, int]
    dead_letters: dict[str, int]

    @property
    def delivered(self) -> bool:
        """Every point is in the database or, rejected by it, in the dead letter."""
        return not any(self.undelivered.values())


async def replay_to_sinks(
    engine: Engine,
    lines: Iterable[str | bytes | OverlongLine],
    sinks: Sequence[InfluxSink],
    *,
    timeout_s: float,
    source: str,
    lateness_us: int,
    strict: bool = False,
    report: Callable[[str], None] = lambda _: None,
    dead_letter: TextIO | None = None,
    out: TextIO | None = None,
    ledger: CbamLedger | None = None,
) -> SinkDelivery:
    """Replay ``lines`` and send the points to ``sinks`` through their outboxes.

    The replay runs in a worker thread and hands each batch to the sinks on this loop, waiting
    while an outbox under ``block`` is full. Returns once every sink's outbox is empty, or when
    ``timeout_s`` has passed; what is left stays in the outboxes for the next run. A CBAM
    ``ledger`` sees every batch, and its daily ``cbam`` points go to the sinks at the end.

    Raises:
        runtimes.replay.ReplayAborted: ``strict`` and a bad line.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for sink in sinks:
        sink.start()

    def hand_over(points: list[Point]) -> None:
        if ledger is not None:
            ledger.write(points)
        for sink in sinks:
            asyncio.run_coroutine_threadsafe(sink.submit(points), loop).result()

    try:
        work = asyncio.ensure_future(
            asyncio.to_thread(
                replay,
                engine,
                lines,
                out,
                source=source,
                lateness_us=lateness_us,
                strict=strict,
                report=report,
                dead_letter=dead_letter,
                on_points=hand_over,
            )
        )
        done, _ = await asyncio.wait({work}, timeout=timeout_s)
        if not done:
            # Out of time while waiting for room: the rest goes into the outboxes regardless.
            for sink in sinks:
                sink.begin_close()
        summary = await work
        if ledger is not None:
            final = ledger.commit()
            for sink in sinks:
                sink.submit_nowait(final)
            if out is not None:
                out.writelines(point.to_json() + "\n" for point in final)
        remaining = max(0.0, deadline - loop.time())
        await asyncio.gather(*(sink.drain(remaining) for sink in sinks))
        return SinkDelivery(
            summary,
            {sink.id: sink.outbox.lines for sink in sinks},
            {sink.id: sink.health.dead_letters for sink in sinks},
        )
    finally:
        # What is left in an outbox is the caller's to report (SinkDelivery.undelivered); the
        # sink's own warning on closing would say it again, and "within 0 s".
        sink_log = logging.getLogger(SINK_LOGGER)
        level = sink_log.level
        sink_log.setLevel(logging.ERROR)
        try:
            for sink in sinks:
                await sink.close(flush_timeout_s=0)
        finally:
            sink_log.setLevel(level)
