"""Smoke test of the correction history benchmark (bench/history.py). No timing asserted.

Bytes are asserted only as an order (``tracemalloc`` counts what is allocated, not how long it
took): the compact history holds the same readings in less than the list of tuples.
"""

from __future__ import annotations

import io

from bench.history import measure, readings, table_row


def test_the_readings_are_mostly_floats_with_counters_states_and_ticks() -> None:
    values = [row[3] for _, row in readings(4, 4_000)]
    kinds = {kind: sum(1 for v in values if type(v) is kind) for kind in (float, int, str, type(None))}
    assert kinds[float] > 0.8 * len(values)
    assert all(kinds.values())


def test_both_histories_are_measured_and_the_engine_gives_the_same_points() -> None:
    log = io.StringIO()
    result = measure(20, 4_000, 100, 1, log, engine_machines=2, engine_minutes=0.5)
    assert 0 < result.compact.filled < result.plain.filled
    assert 0 < result.compact.steady < result.plain.steady
    assert result.append_ratio > 0
    assert result.slice_ratio > 0
    assert result.engine_ratio > 0
    assert log.getvalue().count("engine, 600 readings") == 2
    assert result.in_order_ratio > 0
    assert table_row(result, 20, 4_000, "2026-12-02").startswith("| 2026-12-02 | 20 × 4,000 |")
