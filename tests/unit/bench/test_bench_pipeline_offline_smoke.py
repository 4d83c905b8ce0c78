"""Smoke test of the offline pipeline harness (bench/pipeline_offline.py): a few ticks of a few tags.

No time is asserted: only that every reading fed reached the sink's (stand-in) write, and what
the harness reports is there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.pipeline_offline import make_batches, measure


def test_the_batches_are_every_tag_per_tick_100_ms_apart() -> None:
    batches = make_batches(tags=3, ticks=2)
    assert [[r.machine for r in batch] for batch in batches] == [["load0", "load1", "load2"]] * 2
    assert (batches[1][0].ts - batches[0][0].ts).total_seconds() == 0.1


def test_every_reading_fed_is_written_to_the_sink(tmp_path: Path) -> None:
    result = asyncio.run(measure(tags=20, ticks=5, state=tmp_path, paced=False))
    assert result["readings"] == 20 * 5
    # Every reading's line, and the health points of the last checkpoint's hand-over at most.
    assert result["accepted"] >= result["readings"]
    assert {"cpu_us_per_reading", "longest_stall_ms", "longest_busy_stall_ms", "gc2_count"} <= set(result)
