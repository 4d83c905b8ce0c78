"""Smoke test of the memory soak (bench/soak.py) against a small simulator.

Nothing about memory or time is asserted (the machine is shared): only that both soaks took RSS
samples while readings flowed, that the engine's kept structures are reported, and the table row.
"""

from __future__ import annotations

import io

from bench import memstat
from bench.endtoend import PipelineSettings, plant_document
from bench.opcua import Settings
from bench.soak import measure, table_row

SMALL = PipelineSettings(
    Settings(tags=50, rate=2.0, connect_timeout_s=60.0), machines=2, window_s=1, collector=False
)


async def test_both_soaks_sample_rss_while_readings_flow() -> None:
    log = io.StringIO()
    result = await measure(SMALL, minutes=0.1, baseline_minutes=0.05, interval_s=2.0, log=log)
    assert len(result.baseline.samples) >= 2
    assert len(result.pipeline.samples) >= 3
    assert result.pipeline.readings > 0
    assert result.pipeline.detail["readings"] > 0
    assert set(result.kept) == {
        "history_readings",
        "snapshots",
        "emitted_windows",
        "history_bytes",
        "held_readings",
    }
    assert result.kept["history_readings"] > 0
    assert result.ratio > 0
    assert "pipeline " in log.getvalue()
    assert table_row(result, SMALL, 0.1, "2026-12-02").startswith("| 2026-12-02 | 50 × 2 Hz, 0.1 min |")


def test_the_history_byte_budget_asked_for_is_the_plant_files() -> None:
    asked = PipelineSettings(Settings(tags=5), history_bytes=16 * 2**20)
    production = plant_document("opc.tcp://127.0.0.1:4840", asked)["production"]
    assert production == {"window_s": asked.window_s, "correction_history_bytes": 16_777_216}
    default = plant_document("opc.tcp://127.0.0.1:4840", PipelineSettings(Settings(tags=5)))
    assert "correction_history_bytes" not in default["production"]


async def test_the_account_says_where_the_memory_is_at_the_start_and_the_end() -> None:
    log = io.StringIO()
    await measure(SMALL, minutes=0.05, baseline_minutes=0.02, interval_s=2.0, log=log, account=True)
    text = log.getvalue()
    assert "memory at the start: " in text
    assert "memory at the end: " in text
    assert "one malloc_trim(0): " in text
    assert "objects the GC tracks: " in text


def test_the_account_splits_the_rss_into_mappings_and_allocators() -> None:
    found = memstat.account()
    # The parts by mapping add up to the total it gives (each rounded to 0.1 MiB).
    parts = found["rss_by_mapping_mib"]
    assert abs(sum(parts.values()) - found["rss_mib"]) <= 0.1 * len(parts)
    assert found["rss_mib"] > 0
    assert found["pymalloc"]["arenas"] >= 1
    assert "MainThread" in found["threads"]
