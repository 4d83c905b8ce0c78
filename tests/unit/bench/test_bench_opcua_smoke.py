"""Smoke test of the OPC UA benchmark (bench/opcua.py) against the simulator in its own process.

No timing is asserted anywhere: the machine is shared and noisy. These tests only check that the
source covers the simulator's load tags, that one round of each consumer counts notifications
and readings from a tiny simulator (50 tags at 5 Hz, 2 s rounds), that a short soak samples RSS,
and the arithmetic of the soak's summary.
"""

from __future__ import annotations

import io

import pytest

from bench.opcua import (
    FLAT_MIB,
    BenchResult,
    Settings,
    Soak,
    load_source,
    measure,
    monitored_item_requests,
    rss_bytes,
    table_row,
)
from runtimes.simulator import NAMESPACE_URI

TINY = Settings(tags=50, rate=5.0, seconds=2.0, warmup_s=0.5, connect_timeout_s=20.0)


def test_the_source_names_every_load_tag_by_namespace_uri_with_the_bench_intervals() -> None:
    source = load_source("opc.tcp://127.0.0.1:4840", TINY)
    [group] = source.groups
    assert (group.publishing_interval_ms, group.sampling_interval_ms, group.queue_size) == (100, 100, 10)
    assert [t.node for t in group.tags[:2]] == [
        f"nsu={NAMESPACE_URI};s=load.tag1",
        f"nsu={NAMESPACE_URI};s=load.tag2",
    ]
    assert len(group.tags) == 50
    assert source.security.mode == "None"
    assert TINY.offered == 250


def test_the_raw_client_asks_for_what_the_collector_asks_for() -> None:
    [request] = monitored_item_requests(["node"], TINY)  # type: ignore[list-item]
    params = request.RequestedParameters
    assert (params.ClientHandle, params.SamplingInterval, params.QueueSize, params.DiscardOldest) == (
        100,
        100.0,
        10,
        True,
    )
    assert params.Filter.DeadbandValue == 0.0


async def test_one_round_of_each_consumer_counts_and_a_short_soak_samples_rss() -> None:
    log = io.StringIO()
    result = await measure(TINY, repeat=1, soak_s=2.0, soak_interval_s=1.0, log=log)
    [raw], [collector] = result.raw, result.collector
    assert raw.count > 0
    assert collector.count > 0
    assert raw.served > 0
    assert collector.detail["readings"] > 0
    assert collector.detail["items_ok"] == 50
    assert collector.detail["items_failed"] == 0
    assert result.soak is not None
    assert result.soak.readings > 0
    assert len(result.soak.samples) == 3
    assert result.soak.first_mib > 0
    assert "round 1/1: raw" in log.getvalue()
    assert "round 1/1: collector" in log.getvalue()
    assert "| 2026-11-28 | 50 | 5 | 250 |" in table_row(result, "2026-11-28")
    assert isinstance(result.failures(), list)


def test_the_soak_summary_uses_the_second_half() -> None:
    mib = 2**20
    # Growing 1 MiB a minute for 5 minutes, sampled every 10 s.
    growing = Soak(300.0, [(t, 100 * mib + int(t / 60 * mib)) for t in range(0, 301, 10)])
    assert growing.first_mib == pytest.approx(100.0)
    assert growing.last_mib == pytest.approx(105.0)
    assert growing.max_mib == pytest.approx(105.0)
    assert growing.slope_mib_per_min == pytest.approx(1.0, rel=1e-3)
    assert growing.growth_mib == pytest.approx(2.5, abs=0.01)
    assert growing.flat == (FLAT_MIB > 2.5)
    # A jump early on, then flat: the second half does not grow.
    settled = Soak(300.0, [(t, (100 if t < 60 else 140) * mib) for t in range(0, 301, 10)])
    assert settled.max_mib == pytest.approx(140.0)
    assert settled.growth_mib == 0.0
    assert settled.slope_mib_per_min == 0.0
    assert settled.flat


def test_rss_is_read_and_an_empty_result_has_no_soak() -> None:
    assert rss_bytes() > 0
    assert BenchResult(TINY).soak is None
