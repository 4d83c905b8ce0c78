"""Smoke test of the stalling-server benchmark (bench/opcua_stall.py), and its counting.

No timing is asserted: one tiny run (20 tags at 5 Hz, two stalls of 1 s) checks that both
consumers count, the window holds ticks and the report prints; the counting rules are checked
on their own with numbers made up in the test.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from bench.opcua import Settings
from bench.opcua_stall import Received, Result, measure, report

T0 = datetime(2026, 12, 2, 9, 0)  # noqa: DTZ001 (ticks are naive UTC, as the bench keeps them)


def tick(k: int) -> datetime:
    return T0 + timedelta(milliseconds=100 * k)


def test_a_value_counts_once_per_tag_and_tick_and_a_repeat_is_not_news() -> None:
    received = Received("raw")
    for tag in ("a", "b"):
        received.take(tag, tick(1))
    received.take("a", tick(1))  # again after a reconnect
    received.take("a", tick(0))  # older than what came
    received.take("a", None)  # no source time: not a tick
    received.take("a", tick(2))
    assert received.per_tick == {tick(1): 2, tick(2): 1}
    assert received.repeats == 2
    assert received.complete_since(2) == tick(1)
    assert received.complete_since(3) is None


def test_only_the_collector_is_held_to_the_target() -> None:
    raw, collector = Received("raw", session_losses=3), Received("collector")
    assert Result(10, 2, [(raw, 15, 5), (collector, 20, 0)], 2, 4).failures() == []
    collector.session_losses = 1
    failures = Result(10, 2, [(raw, 15, 5), (collector, 19, 1)], 3, 4).failures()
    assert failures == [
        "the collector rebuilt its session 1 times",
        "the collector lost 1 values",
        "the server held 3 sessions for 2 consumers",
    ]


async def test_a_tiny_run_counts_both_consumers_and_reports() -> None:
    settings = Settings(tags=20, rate=5.0, warmup_s=1.0)
    log = io.StringIO()
    result = await measure(settings, minutes=4 / 60, stall_s=1.0, every_s=2.0, drain_s=2.0, log=log)
    assert result.stalls == 2
    assert result.ticks > 0
    assert [received.kind for received, _, _ in result.consumers] == ["raw", "collector"]
    for _received, got, lost in result.consumers:
        assert got + lost == result.ticks * result.tags
    out = io.StringIO()
    report(result, out)
    assert "| collector |" in out.getvalue()
    assert "window opens at tick" in log.getvalue()
