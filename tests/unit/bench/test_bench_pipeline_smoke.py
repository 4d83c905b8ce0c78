"""Smoke test of the embedded pipeline benchmark (bench/pipeline.py) against a small simulator.

No timing is asserted anywhere: the machine is shared and noisy. The test only checks that the
generated plant covers the load tags and the machines, that one round of each kind counts what it
should, that readings flowed through the pipeline into the file sink and that latencies were
recorded for them, and the arithmetic of the percentile.
"""

from __future__ import annotations

import io
import json
import math

import pytest

from bench.endtoend import Recorder
from bench.opcua import Settings
from bench.pipeline import PipelineSettings, measure, percentile, plant_document, table_row
from plantstream.plant import parse_plant
from plantstream.plant.schema import OpcUaSource

SMALL = PipelineSettings(
    Settings(tags=200, rate=5.0, seconds=3.0, warmup_s=0.5, connect_timeout_s=30.0),
    machines=2,
    window_s=1,
    collector=False,
)


def test_the_plant_maps_every_load_tag_and_machine_signal_of_the_simulator() -> None:
    document = plant_document("opc.tcp://127.0.0.1:4840", SMALL)
    plant = parse_plant(json.dumps(document)).model  # the pipeline's plant is a valid plant file
    [source] = plant.sources
    assert isinstance(source, OpcUaSource)
    [group] = source.groups
    assert len(group.tags) == 200 + 2 * 6
    assert {(t.machine, t.signal) for t in group.tags} >= {("load1", "power_kw"), ("m2", "state")}
    assert plant.production.window_s == 1


async def test_one_round_of_each_kind_moves_readings_and_records_latencies() -> None:
    log = io.StringIO()
    result = await measure(SMALL, repeat=1, log=log)
    [raw] = result.raw
    [pipeline] = result.pipeline
    assert raw.count > 0
    assert pipeline.round.count > 0
    assert pipeline.detail["readings"] > 0
    assert pipeline.detail["points"] >= pipeline.detail["readings"]  # every reading is recorded as a point
    assert pipeline.detail["items_ok"] == 212
    assert (pipeline.detail["rejected"], pipeline.detail["dead_letters"]) == (0, 0)
    assert len(pipeline.reading_s) > 0
    assert all(math.isfinite(x) for x in pipeline.reading_s)
    assert "round 1/1: raw" in log.getvalue()
    assert "round 1/1: pipeline" in log.getvalue()
    assert "| 2026-11-28 | 200 × 5 |" in table_row(result, "2026-11-28")
    assert isinstance(result.failures(), list)


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1 … 100
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError, match="machines"):
        PipelineSettings(machines=0)


async def test_with_influxdb_readings_are_counted_and_timed_when_the_write_api_accepts_them() -> None:
    settings = PipelineSettings(
        Settings(tags=100, rate=5.0, seconds=3.0, warmup_s=1.5, connect_timeout_s=30.0),
        machines=1,
        window_s=1,
        collector=False,
        influxdb=True,
    )
    log = io.StringIO()
    result = await measure(settings, repeat=1, log=log)
    [pipeline] = result.pipeline
    assert "InfluxDB 1.12 on http://127.0.0.1:" in log.getvalue()
    assert pipeline.detail["influx_written"] > 0  # the sink's own count of accepted lines
    assert pipeline.detail["influx_errors"] == 0
    # Counted from the accepted bodies, so never more than the sink says it delivered.
    assert 0 < pipeline.round.count <= pipeline.detail["influx_written"]
    assert len(pipeline.reading_s) == pipeline.round.count
    assert all(math.isfinite(x) for x in pipeline.reading_s)


def test_the_influxdb_sink_writes_readings_in_milliseconds() -> None:
    settings = PipelineSettings(SMALL.opcua, machines=2, influxdb=True)
    document = plant_document("opc.tcp://127.0.0.1:4840", settings, "http://127.0.0.1:8086")
    [sink] = parse_plant(json.dumps(document)).model.sinks
    assert sink.precision["reading"] == "ms"  # 10 Hz readings at seconds would overwrite each other
    with pytest.raises(ValueError, match="only the embedded runtime"):
        PipelineSettings(runtimes=("kafka",), influxdb=True)


def test_the_accept_hook_counts_and_times_only_the_load_tags_reading_lines() -> None:
    recorder = Recorder(clock_offset_s=0.5, readings_from_influx=True)
    recorder.timing = True
    fields = b' quality="good",value=1.5 '
    body = b"\n".join(
        [
            b"reading,line=load,machine=load1,signal=power_kw,site=bench" + fields + b"1000000000500",
            b"reading,line=load,machine=load2,signal=power_kw,site=bench" + fields + b"1000000000500",
            b"reading,line=load,machine=load3,signal=power_kw,site=bench" + fields + b"1000000000000",
            b"reading,line=sim,machine=m1,signal=power_kw,site=bench" + fields + b"1000000000000",
            b"oee,line=load,machine=load1,site=bench oee=0.5 1000000000000",
        ]
    )
    recorder.on_accepted(body, "ms", 1_000_000_002.0)
    assert recorder.n == recorder.timed == 3
    # Accepted at 1 000 000 002 s by the wall clock, 1 000 000 001.5 s by the source's (0.5 s behind);
    # two readings stamped 1 000 000 000.5 s (in ms), one 1 000 000 000.0 s.
    assert sorted(recorder.reading_s) == [1.0, 1.0, 1.5]
    recorder.on_accepted(b"", "ms", 1_000_000_002.0)
    assert recorder.n == 3
