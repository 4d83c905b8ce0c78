"""Smoke test of the stalling-server benchmark (bench/opcua_stall.py), and its counting.

No timing is asserted: one tiny run (20 tags at 5 Hz, two stalls of 1 s) checks that the three
consumers (the raw client, the collector, the pipeline) count, the window holds ticks and the
report prints; the counting rules are checked on their own with numbers made up in the test.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from bench.opcua import Settings
from bench.opcua_stall import Received, Result, _count_accepted, measure, report

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


def test_only_our_consumers_are_held_to_the_target() -> None:
    raw, collector = Received("raw", session_losses=3, ours=False), Received("collector")
    pipeline = Received("pipeline")
    assert Result(10, 2, [(raw, 15, 5), (collector, 20, 0), (pipeline, 20, 0)], 3, 4).failures() == []
    collector.session_losses = 1
    failures = Result(10, 2, [(raw, 15, 5), (collector, 19, 1), (pipeline, 18, 2)], 4, 4).failures()
    assert failures == [
        "the collector rebuilt its session 1 times",
        "the collector lost 1 values",
        "the pipeline lost 2 values",
        "the server held 4 sessions for 3 consumers",
    ]


def test_accepted_lines_count_by_load_machine_and_millisecond_tick() -> None:
    received = Received("pipeline")
    on_accepted = _count_accepted(received)
    ms = int((T0 - datetime(1970, 1, 1)).total_seconds() * 1000)  # noqa: DTZ001
    body = "\n".join(
        [
            f'reading,line=load,machine=load1,signal=power_kw,site=bench quality="good",value=1.5 {ms}',
            f'reading,line=load,machine=load2,signal=power_kw,site=bench quality="good",value=2.5 {ms}',
            f'reading,line=load,machine=load1,signal=power_kw,site=bench quality="good",value=1.5 {ms}',
            f'reading,line=load,machine=load1,signal=power_kw,site=bench quality="good",value=1.6 {ms + 100}',
            f'reading,line=sim,machine=m1,signal=state,site=bench quality="good",value_str="running" {ms}',
            f"oee,line=load,machine=load1,site=bench,window=machine availability=1.0 {ms // 1000}",
        ]
    ).encode()
    on_accepted(body, "ms", 0.0)
    # load1 and load2 at the first tick, load1 again at it (a repeat), load1 at the next tick;
    # the sim machine's state and the oee line are not load readings.
    assert received.per_tick == {tick(0): 2, tick(1): 1}
    assert received.repeats == 1


async def test_a_tiny_run_counts_every_consumer_and_reports() -> None:
    settings = Settings(tags=20, rate=5.0, warmup_s=1.0)
    log = io.StringIO()
    result = await measure(
        settings, minutes=4 / 60, stall_s=1.0, every_s=2.0, drain_s=2.0, log=log, pipeline=True
    )
    assert result.stalls == 2
    assert result.ticks > 0
    assert [received.kind for received, _, _ in result.consumers] == ["raw", "collector", "pipeline"]
    for _received, got, lost in result.consumers:
        assert got + lost == result.ticks * result.tags
    out = io.StringIO()
    report(result, out)
    assert "| collector |" in out.getvalue()
    assert "| pipeline |" in out.getvalue()
    assert "window opens at tick" in log.getvalue()
