"""The engine with the compact correction history against the engine with the list it replaces.

Byte for byte: every rejection and every point (as its JSON line) the same, for random deliveries
with late readings, corrections, duplicates, ticks, pruned histories and a restart.
"""

from __future__ import annotations

import dataclasses
import json
from bisect import bisect_left
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support import plant_text

from plantstream.plant import parse_plant
from streams.config import build_spec
from streams.engine import Engine, ReadingRejected
from streams.history import Row

T0_US = 1_772_438_400_000_000  # 2026-03-02T08:00:00Z
VALUES = st.one_of(
    st.floats(allow_nan=False),
    st.integers(-(2**60), 2**60),
    st.booleans(),
    st.text(max_size=64),
    st.none(),
)
"""Anything a reading may carry: refused or taken, the same with either history."""
STATES = ["running", "down", "idle", "setup", "planned_stop", "off"]
PLANT = plant_text(calendar=None)  # planned 24/7, 1-minute windows, 5 s lateness, an hour's horizon


class ListHistory(list[Row]):
    """The history as it was: a list of tuples, and the bisection the engine did on it."""

    def bisect_time(self, ts: int) -> int:
        return bisect_left(self, ts, key=itemgetter(0))

    # The byte bound is left out of this comparison (the spec's budget is 1 TiB): it is
    # tested on its own in test_engine.py.
    nbytes = 0

    def nbytes_from(self, index: int) -> int:
        return 0


def listed(engine: Engine) -> Engine:
    for track in engine._tracks.values():
        track.history = ListHistory()  # type: ignore[assignment]
    return engine


@st.composite
def deliveries(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Readings of m1 mostly 7 s apart, some delivered late (corrections) or twice, ticks among them."""
    count = draw(st.integers(1, 120))
    total = good = 0
    energy = 0.0
    timed = []
    ts = T0_US
    for i in range(count):
        # Mostly seconds apart, now and then a quarter of an hour: an hour's horizon is passed.
        ts += draw(st.sampled_from([7_000_000] * 8 + [120_000_000, 900_000_000])) + draw(st.integers(0, 3))
        kind = draw(st.sampled_from(["state", "count", "count", "power", "power", "energy", "tick", "odd"]))
        quality = draw(st.sampled_from(["good"] * 8 + ["uncertain", "bad"]))
        if kind == "state":
            event: tuple[Any, ...] = ("push", ts, "state", draw(st.sampled_from(STATES)), quality)
        elif kind == "count":
            total += draw(st.integers(0, 9))
            good = min(total, good + draw(st.integers(0, 9)))
            signal = draw(st.sampled_from(["total_count", "good_count"]))
            event = ("push", ts, signal, total if signal == "total_count" else good, quality)
        elif kind == "power":
            event = ("push", ts, "power_kw", draw(st.floats(-1.0, 500.0)), quality)
        elif kind == "energy":
            energy += draw(st.floats(0.0, 2.0))
            event = ("push", ts, "energy_kwh", energy, quality)
        elif kind == "tick":
            event = ("tick", ts)
        else:
            signal = draw(st.sampled_from(["state", "total_count", "power_kw", "energy_kwh"]))
            event = ("push", ts, signal, draw(VALUES), quality)
        # Delivered this many places later: within the lateness, a correction, or too late.
        late = draw(st.sampled_from([0] * 12 + [1, 3, 10, 60, 400]))
        timed.append((i + late, i, event))
        if draw(st.integers(0, 20)) == 0:
            timed.append((i + draw(st.integers(0, 100)), i, event))  # delivered again
    return [event for _, _, event in sorted(timed)]


def run(
    new: Callable[[], Engine],
    kept: Callable[[Engine], Engine],
    events: list[tuple[Any, ...]],
    restart_at: int,
) -> tuple[list[Any], dict[str, int]]:
    """Every rejection and every point (as its JSON line) of ``events``, then the engine's counts."""
    engine = kept(new())
    outcomes: list[Any] = []
    for i, event in enumerate(events):
        if i == restart_at:  # a restart from a checkpoint, as the runtimes do
            saved = json.loads(json.dumps(engine.checkpoint()))
            engine = new()
            engine.restore(saved)
            engine = kept(engine)
        try:
            if event[0] == "tick":
                engine.tick("m1", event[1])
            else:
                engine.push_raw(event[1], "m1", *event[2:])
            outcomes.append(None)
        except ReadingRejected as exc:
            outcomes.append((exc.reason, str(exc), exc.held))
        outcomes.append([p.to_json() for p in engine.take_points()])
    engine.flush()
    outcomes.append([p.to_json() for p in engine.take_points()])
    return outcomes, dict(engine.stats)


@settings(max_examples=150, deadline=None)
@given(
    events=deliveries(),
    reorder=st.booleans(),
    history_max=st.sampled_from([1, 10, 40, 2_000_000]),
    restart_at=st.integers(0, 400),
)
def test_the_engine_emits_the_same_points_with_the_compact_history(
    events: list[tuple[Any, ...]], reorder: bool, history_max: int, restart_at: int
) -> None:
    spec = build_spec(parse_plant(PLANT).model)
    spec = dataclasses.replace(spec, correction_history_max=history_max, correction_history_bytes=2**40)

    def new() -> Engine:
        return Engine(spec, reorder=reorder)

    compact = run(new, lambda engine: engine, events, restart_at)
    assert compact == run(new, listed, events, restart_at)
