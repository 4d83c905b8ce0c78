"""What both halves of ``bench/pipeline.py`` share: the settings, the plant, the sink-side recorder.

The embedded pipeline and the kafka roles run the same plant (:func:`plant_document`) against the
same simulator process, and their rounds are measured the same way: what the file sink writes,
with its write time (:class:`Recorder`), gives the rate and the latencies of a
:class:`PipelineRound`. See ``bench/pipeline.py`` for what is measured and how.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import tempfile
from array import array
from collections import Counter as Tally
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Literal

from bench.influxdb_node import InfluxNode
from bench.opcua import Counter, Round, ServerProcess, Settings, describe
from plantstream.records import Point, ReadingRow
from runtimes.embedded import EmbeddedPipeline
from runtimes.plant import load_and_resolve
from runtimes.simulator import NAMESPACE_URI

__all__ = [
    "DEFAULT_MACHINES",
    "DEFAULT_WINDOW_S",
    "GENERIC_SIGNALS",
    "RUNTIMES",
    "Kind",
    "LatencyName",
    "PipelineRound",
    "PipelineSettings",
    "Recorder",
    "Runtime",
    "describe_pipeline",
    "percentile",
    "plant_document",
    "summary",
]

DEFAULT_MACHINES = 10
DEFAULT_WINDOW_S = 10
GENERIC_SIGNALS: dict[str, Any] = {
    "state": "state",
    "total_count": "total_count",
    "good_count": "good_count",
    "reject_count": "reject_count",
    "power_kw": {"role": "power_kw", "integration": "trapezoid"},
    "energy_kwh": "energy_kwh",
}
"""The simulator's generic machine (:func:`runtimes.simulator.model.generic_plant`), signal by role."""

Runtime = Literal["embedded", "kafka"]
RUNTIMES: tuple[Runtime, ...] = ("embedded", "kafka")
Kind = Literal["raw", "collector", "pipeline", "kafka"]
"""The kinds of round: the raw client, the collector alone, the embedded pipeline, the kafka roles."""
LatencyName = Literal["reading_s", "oee_close_s", "oee_source_s"]


@dataclass(frozen=True)
class PipelineSettings:
    """The OPC UA settings every consumer shares, and what only the pipeline has."""

    opcua: Settings = field(default_factory=Settings)
    machines: int = DEFAULT_MACHINES
    window_s: int = DEFAULT_WINDOW_S
    collector: bool = True
    """Also time the collector alone (the middle step between raw and pipeline)."""
    runtimes: tuple[Runtime, ...] = ("embedded",)
    """The runtimes timed: the embedded pipeline, the kafka roles, or both."""
    influxdb: bool = False
    """The embedded pipeline also has an ``influxdb`` sink (an InfluxDB 1.12 node started for the
    run), and its load-tag readings are counted and timed when the v2 write API accepts them."""
    history_bytes: int | None = None
    """The plant's ``correction_history_bytes``; ``None``: the plant file's default."""

    def __post_init__(self) -> None:
        if self.influxdb and "kafka" in self.runtimes:
            raise ValueError("influxdb: only the embedded runtime writes to InfluxDB here")
        if not self.runtimes or any(r not in RUNTIMES for r in self.runtimes):
            raise ValueError(f"runtimes must be some of {', '.join(RUNTIMES)}, got {self.runtimes}")
        if self.machines < 1:
            raise ValueError(f"machines must be at least 1, got {self.machines}")
        if self.window_s < 1:
            raise ValueError(f"window must be at least 1 s, got {self.window_s}")

    @property
    def kinds(self) -> tuple[Kind, ...]:
        """The kinds of round, in the order they alternate."""
        kinds: list[Kind] = ["raw", "collector"] if self.collector else ["raw"]
        if "embedded" in self.runtimes:
            kinds.append("pipeline")
        if "kafka" in self.runtimes:
            kinds.append("kafka")
        return tuple(kinds)


INFLUX_TOKEN_ENV = "PLANTSTREAM_BENCH_INFLUX_TOKEN"
"""The variable the bench's ``influxdb`` sink reads its token from (the bench's node has no auth)."""
INFLUX_PRECISION = {"default": "s", "reading": "ms"}
"""10 Hz readings need milliseconds: at seconds, ten of a second would overwrite one another."""


def plant_document(
    endpoint: str, settings: PipelineSettings, influx_url: str | None = None
) -> dict[str, Any]:
    """The plant file the pipeline runs (see the module's docstring), as a JSON-ready mapping.

    With ``influx_url``, an ``influxdb`` sink writing to that server's v2 API is added.
    """
    s = settings.opcua
    machines = [f"m{k}" for k in range(1, settings.machines + 1)]
    tags = [
        {"node": f"nsu={NAMESPACE_URI};s={m}.{signal}", "machine": m, "signal": signal}
        for m in machines
        for signal in GENERIC_SIGNALS
    ]
    tags += [
        {"node": f"nsu={NAMESPACE_URI};s=load.tag{k}", "machine": f"load{k}", "signal": "power_kw"}
        for k in range(1, s.tags + 1)
    ]
    document: dict[str, Any] = {
        "sites": [
            {
                "id": "bench",
                "timezone": "UTC",
                "country": "VN",
                "carbon": {"grid": {"country": "VN", "basis": "annual", "year": 2023}},
                "lines": [
                    {
                        "id": "sim",
                        "machines": [
                            {"id": m, "ideal_cycle_s": 1.0, "signals": GENERIC_SIGNALS} for m in machines
                        ],
                    },
                    {
                        "id": "load",
                        "machines": [
                            {"id": f"load{k}", "signals": {"power_kw": {"role": "power_kw"}}}
                            for k in range(1, s.tags + 1)
                        ],
                    },
                ],
            }
        ],
        "production": {"window_s": settings.window_s}
        | ({} if settings.history_bytes is None else {"correction_history_bytes": settings.history_bytes}),
        "sources": [
            {
                "type": "opcua",
                "id": "bench",
                "endpoint": endpoint,
                "security": {"mode": "None", "allow_insecure": True},
                "groups": [
                    {
                        "publishing_interval_ms": s.publishing_ms,
                        "sampling_interval_ms": s.sampling_ms,
                        "queue_size": s.queue_size,
                        "tags": tags,
                    }
                ],
            }
        ],
    }
    if influx_url is not None:
        document["sinks"] = [
            {
                "type": "influxdb",
                "id": "influx",
                "url": influx_url,
                "org": "bench",
                "bucket": InfluxNode.DATABASE,
                "token_env": INFLUX_TOKEN_ENV,
                "precision": INFLUX_PRECISION,
            }
        ]
    return document


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by nearest rank; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, max) of ``values``; NaN for each when there are none."""
    return percentile(values, 0.5), percentile(values, 0.99), max(values, default=math.nan)


_LOAD_READING_TIMES = re.compile(rb"^reading,line=load,[^\n]* (-?\d+)$", re.MULTILINE)
"""The time of each load tag's ``reading`` line in a body of line protocol: the encoder sorts tags
by key (line, machine, signal, site), so the line tag comes first (:mod:`sinks.lineprotocol`)."""
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

# -- what the sink writes ---------------------------------------------------------------------------


class Recorder(Counter):
    """Counts and times what the pipeline's file sink writes (its ``on_write`` hook).

    ``n`` counts every ``reading`` point written (for :func:`bench.opcua._first_values`); while
    ``timing`` is set, the load tags' reading points are counted in ``timed`` and every reading
    and OEE point's latency is kept (seconds, on the wall clock; see bench/pipeline.py). The
    instant a window closed is known to the embedded engine's wrapper (:meth:`pushed`); a runtime
    that closes windows in another process overrides :meth:`oee_written`.
    """

    def __init__(self, clock_offset_s: float, readings_from_influx: bool = False) -> None:
        super().__init__()
        self.clock_offset_s = clock_offset_s
        self.readings_from_influx = readings_from_influx
        """Readings are counted and timed when InfluxDB accepts them (:meth:`on_accepted`), not
        when the file sink writes them."""
        self.timing = False
        self.timed = 0
        self.reading_s = array("d")
        self.oee_close_s = array("d")
        self.oee_source_s = array("d")
        self.close_wall: float | None = None
        """When the engine closed the first window of the batch being built (``time.time()``)."""
        self.close_source: float | None = None
        """The source time of the reading that closed it (epoch seconds, source clock)."""

    def pushed(self, ts_us: int, started: float) -> None:
        """The engine took a reading of source time ``ts_us`` (µs) and now has window points.

        Its push began at ``started`` (wall clock).
        """
        if self.close_wall is None:
            self.close_wall = started
            self.close_source = ts_us / 1e6

    def on_write(self, batch: Sequence[Point | ReadingRow], wall: float) -> None:
        """The sink flushed ``batch`` at ``wall`` (the embedded runtime's raw readings come as rows)."""
        for point in batch:
            if isinstance(point, tuple):
                if not self.readings_from_influx:
                    self._reading_written(point[3], point[0] / 1e6, wall)
                continue
            measurement = point.measurement
            if measurement == "reading":
                if not self.readings_from_influx:
                    self._reading_written(point.tags["line"], point.time.timestamp(), wall)
            elif measurement == "oee" and self.timing:
                self.oee_written(point, wall)
        self.close_wall = self.close_source = None

    def _reading_written(self, line: str, source_time: float, wall: float) -> None:
        self.n += 1
        # Only the load tags: a machine's value read again after a reconnect keeps the source
        # time of its last change, minutes ago, which is no delay of the pipeline.
        if self.timing and line == "load":
            self.timed += 1
            self.reading_s.append(wall - source_time - self.clock_offset_s)

    def on_accepted(self, body: bytes, precision: str, wall: float) -> None:
        """The InfluxDB sink's write API accepted ``body`` at ``wall``: count and time its load readings.

        The lines' times are found by one regular expression over the body, in C, so the hook adds
        little to the CPU measured as the pipeline's (splitting and parsing line by line in Python
        added about a microsecond a line).
        """
        if not self.readings_from_influx:
            return
        stamps = _LOAD_READING_TIMES.findall(body)
        self.n += len(stamps)
        if not self.timing:
            return
        self.timed += len(stamps)
        scale = _PER_SECOND[precision]
        source_wall = wall - self.clock_offset_s
        extend = self.reading_s.extend
        # A body's lines share a few sampling ticks: each distinct time is converted once.
        for stamp, count in Tally(stamps).items():
            extend(repeat(source_wall - int(stamp) / scale, count))

    def oee_written(self, point: Point, wall: float) -> None:
        """An OEE point was written at ``wall`` in the timed window: its latencies from the close."""
        if self.close_wall is None or self.close_source is None:
            return
        self.oee_close_s.append(wall - self.close_wall)
        self.oee_source_s.append(wall - self.close_source - self.clock_offset_s)


@dataclass
class PipelineRound:
    """One timed window of the embedded pipeline or of the kafka roles."""

    round: Round
    """Rate, served values and CPU, as for the other kinds (``count``: load-tag reading points)."""
    reading_s: array[float]
    oee_close_s: array[float]
    oee_source_s: array[float]
    detail: dict[str, int] = field(default_factory=dict)
    kind: Kind = "pipeline"
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU seconds of each process in the timed window, by name (the kafka roles and the broker)."""
    wait_s: dict[str, float] = field(default_factory=dict)
    """Seconds each of them was ready to run but waited for a core (the machine's other jobs)."""


def describe_pipeline(p: PipelineRound) -> str:
    """One line about a pipeline or kafka round, for the log."""
    text = describe(p.round).replace("collector", p.kind.ljust(9), 1)
    return (
        f"{text}; reading latency p50 {percentile(p.reading_s, 0.5) * 1e3:.0f} ms, "
        f"p99 {percentile(p.reading_s, 0.99) * 1e3:.0f} ms; {len(p.oee_close_s)} OEE points"
    )


@asynccontextmanager
async def bench_pipeline(
    server: ServerProcess, settings: PipelineSettings, prefix: str, influx_url: str | None = None
) -> AsyncIterator[tuple[EmbeddedPipeline, Recorder]]:
    """A pipeline on the bench plant for ``server``, with a :class:`Recorder` of what it writes.

    The state directory is fresh and removed afterwards; the pipeline is not started (the caller
    runs it, as a round or a soak). With ``influx_url`` the pipeline also writes to that InfluxDB
    and the recorder counts readings as the server accepts them.
    """
    gc.collect()
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        state_dir = Path(tmp)
        plant_file = state_dir / "plant.yaml"
        document = plant_document(server.endpoint, settings, influx_url)
        plant_file.write_text(json.dumps(document), encoding="utf-8")
        plant, spec = load_and_resolve(plant_file)
        os.environ.setdefault(INFLUX_TOKEN_ENV, "no-auth")  # the bench's node runs without authentication
        pipeline = EmbeddedPipeline(plant, spec, state_dir / "state")
        recorder = Recorder(server.clock_offset_s, readings_from_influx=influx_url is not None)
        pipeline.sink.on_write = recorder.on_write
        for sink in pipeline.sinks:
            sink.on_accepted = recorder.on_accepted
        yield pipeline, recorder
