"""The demo's simulated clock: event times ahead of the wall clock are not "in the future" for it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from support import reading

from plantstream.records import Reading
from runtimes.embedded import EmbeddedPipeline
from runtimes.plant import load_and_resolve

MINIMAL = Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml"
HOUR_US = 3_600 * 1_000_000


def received_an_hour_before(minutes: float) -> Reading:
    """A reading whose event time is an hour ahead of when it was received (max_future_s: 300)."""
    r = reading(minutes, "state", "running")
    return r.model_copy(update={"ingest_ts": r.ts - timedelta(hours=1)})


async def refused(pipeline: EmbeddedPipeline) -> dict[str, int]:
    await pipeline.feed([received_an_hour_before(0), received_an_hour_before(1)])
    stop = asyncio.Event()
    task = asyncio.create_task(pipeline.run(stop))
    while pipeline.stats.readings < 2:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 30)
    return dict(pipeline.stats.rejected)


async def test_on_the_wall_clock_an_hour_ahead_is_refused(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    assert await refused(EmbeddedPipeline(plant, spec, tmp_path)) == {"future": 2}


async def test_on_a_clock_running_an_hour_ahead_it_is_taken(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path, source_clock=lambda received: received + HOUR_US)
    assert await refused(pipeline) == {}


def test_a_receipt_time_on_the_demos_simulated_clock() -> None:
    from datetime import UTC, datetime

    from runtimes.cli.pipeline import _simulated_us

    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    now_us = 1_772_438_400 * 1_000_000  # the same instant (2026-03-02 08:00 UTC) on the wall clock
    # At 60x, a reading received 1.5 s ago was received 90 simulated seconds ago.
    assert _simulated_us(now, 60, now_us - 1_500_000, now_us) == now_us - 90_000_000
    assert _simulated_us(now, 1, now_us, now_us) == now_us
