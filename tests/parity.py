"""Parity with ``replay``: what a streaming runtime wrote against replay of the same readings.

A stream has no end: the kafka roles never flush, and the embedded runtime stops without closing
the windows that are not due (they wait in its checkpoint). So the comparison covers exactly the
windows that an engine without ``flush`` closes from the same readings, and for each of them the
last version the runtime wrote must equal the last revision ``replay`` wrote. Used by the kafka
roles' and the embedded runtime's parity tests, so both hold the runtimes to the same rule.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from plantstream.records import Reading
from runtimes.plant import load_and_resolve
from runtimes.replay import replay
from streams.config import EngineSpec
from streams.engine import Engine

__all__ = ["Expected", "Identity", "expected_points", "identity", "last_per_identity", "sink_writes"]

Identity = tuple[str, str, str]
"""(measurement, tags as sorted JSON, time): what a sink overwrites on."""


def identity(point: dict) -> Identity:
    """The identity of a point decoded from its JSON line."""
    return (point["measurement"], json.dumps(point["tags"], sort_keys=True), point["time"])


@dataclass(frozen=True)
class Expected:
    """Replay's points for the windows a stream closes, and how many replay writes beyond them."""

    closed: dict[Identity, dict]
    still_open: int


def expected_points(plant: Path | EngineSpec, readings: list[str]) -> Expected:
    """Last revision per identity from ``replay``, limited to the windows a stream has closed.

    ``plant`` is a plant file, or a plant already resolved for the calculators.
    """
    spec = load_and_resolve(plant)[1] if isinstance(plant, Path) else plant
    out = io.StringIO()
    replay(Engine(spec, reorder=False), readings, out, source="parity", lateness_us=spec.allowed_lateness_us)
    replayed = {identity(p): p["fields"] for p in map(json.loads, out.getvalue().splitlines())}
    streaming = Engine(spec)
    for line in readings:
        streaming.push(Reading.from_json(line))
    closed = {identity(json.loads(p.to_json())) for p in streaming.take_points()}
    assert closed <= replayed.keys(), "a stream closed a window replay never wrote"
    return Expected({key: replayed[key] for key in closed}, len(replayed) - len(closed))


def complete_lines(file: Path) -> list[str]:
    """The lines of ``file`` written whole so far.

    While another process appends to it, the text after the last newline is a line not yet
    complete: reading it would race with the writer.
    """
    return file.read_text().split("\n")[:-1]


def written_points(state: Path) -> list[dict]:
    """Every point the file sink in ``state`` has written whole so far, in order."""
    files = sorted((state / "points").glob("*.jsonl"))
    return [json.loads(line) for file in files for line in complete_lines(file)]


def sink_writes(state: Path) -> list[dict]:
    """Every computed point the file sink in ``state`` wrote, in order (raw readings and health left out)."""
    return [p for p in written_points(state) if p["measurement"] not in ("reading", "health")]


def last_per_identity(writes: list[dict]) -> dict[Identity, dict]:
    """The fields of the last write of each identity (a later write overwrites downstream)."""
    return {identity(p): p["fields"] for p in writes}
