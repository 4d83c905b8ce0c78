"""Smoke test of the kafka half of bench/pipeline.py on the session's Kafka node.

No timing is asserted: the machine is shared and noisy. One kafka round of a tiny simulator (50
tags at 5 Hz, a 3 s window, windows of 1 s) must move the load tags' readings through ``collect``,
``process`` and the sink role, time them, and join the OEE points written with the closes that
``process`` noted. Also: the pieces that name an OEE window and read a process's CPU time.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime

from services import KafkaBroker

from bench.endtoend import PipelineSettings
from bench.opcua import ServerProcess, Settings
from bench.pipeline_kafka import (
    KafkaRecorder,
    oee_key,
    process_cpu_s,
    process_waited_s,
    run_kafka_round,
)
from plantstream.records import Point

TINY = PipelineSettings(
    # A warm-up long enough for 1 s windows to close behind the allowed lateness before the timing.
    Settings(tags=50, rate=5.0, seconds=3.0, warmup_s=3.0, connect_timeout_s=60.0),
    machines=2,
    window_s=1,
    collector=False,
    runtimes=("kafka",),
)


async def test_one_kafka_round_moves_readings_through_the_three_roles(kafka: KafkaBroker) -> None:
    s = TINY.opcua
    async with ServerProcess(s.tags, s.rate, 300, machines=TINY.machines) as server:
        p = await run_kafka_round(server, kafka, TINY)
    assert p.kind == "kafka"
    assert p.round.count > 0
    assert len(p.reading_s) == p.round.count
    assert all(math.isfinite(x) for x in p.reading_s)
    detail = p.detail
    # What the sink wrote was made by process from what collect sent, or is a raw reading collect
    # sent (one point each, the sink makes them); nothing was refused but the first reads'
    # too-late counters (the embedded pipeline refuses those too).
    made = detail["process_points"] + detail["process_rollup_points"]  # machines', lines' and site's
    assert 0 < detail["sink_raw_points"] <= detail["collected"]
    assert detail["sink_raw_points"] < detail["sink_points"] <= made + detail["sink_raw_points"]
    assert 0 < detail["process_records"] <= detail["collected"]
    assert detail["process_dead_letters"] == detail["sink_dead_letters"]
    assert detail["oee_without_close"] == 0
    assert len(p.oee_close_s) == detail["oee_written_in_window"] > 0
    assert set(p.cpu_s) == set(p.wait_s) == {"collect", "process", "sink", "broker"}


def test_an_oee_window_has_the_same_name_in_process_and_in_the_sink() -> None:
    made = Point(
        measurement="oee",
        tags={"site": "bench", "line": "sim", "machine": "m1"},
        fields={"oee": 0.5},
        time=datetime(2026, 11, 28, 8, 0, 10, tzinfo=UTC),
    )
    read_back = Point.from_json(made.to_json())
    assert oee_key(read_back) == oee_key(made)
    other = made.model_copy(update={"tags": {**made.tags, "machine": "m2"}})
    assert oee_key(other) != oee_key(made)
    # A correction of the window is another emission, timed from its own making.
    corrected = made.model_copy(update={"fields": {"oee": 0.6, "revision": 1}})
    assert oee_key(corrected) != oee_key(made)
    assert oee_key(made) == oee_key(made.model_copy(update={"fields": {"oee": 0.5, "revision": 0}}))


def test_the_close_and_write_instants_give_the_latencies() -> None:
    recorder = KafkaRecorder(clock_offset_s=2.0)
    point = Point(measurement="oee", tags={"machine": "m1"}, fields={"oee": 1.0}, time=datetime.now(UTC))
    recorder.timing = True
    recorder.on_write([point], 105.0)
    # closed at 104.25 by a reading whose source time was 101.0 on a clock 2 s behind the wall:
    # close -> write 105.0 - 104.25 = 0.75 s, source -> write 105.0 - (101.0 + 2.0) = 2.0 s.
    recorder.join({oee_key(point): (104.25, 101.0)})
    assert list(recorder.oee_close_s) == [0.75]
    assert list(recorder.oee_source_s) == [2.0]
    recorder.join({})
    assert recorder.unmatched == 1
    # A line's or site's window is closed in the roll-up stage, by no reading: no source time.
    recorder.join({oee_key(point): (104.5, math.nan)})
    assert list(recorder.oee_close_s) == [0.75, 0.5]
    assert list(recorder.oee_source_s) == [2.0]


def test_cpu_and_run_queue_time_of_a_process_are_read_and_a_gone_one_is_nan() -> None:
    assert process_cpu_s(os.getpid()) > 0
    assert process_waited_s(os.getpid()) >= 0
    gone = 2**22 + 1  # above the kernel's largest pid
    assert math.isnan(process_cpu_s(gone))
    assert math.isnan(process_waited_s(gone))
