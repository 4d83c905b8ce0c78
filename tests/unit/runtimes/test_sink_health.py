"""Sink health as `health` points and Prometheus lines (runtimes/sinks.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from plantstream.plant.schema import InfluxDbSink
from plantstream.records import Point
from runtimes.sinks import sink_health_points, sink_metrics
from sinks.influx import InfluxSink
from sinks.influx_http import WriteRefused

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def sink(tmp_path: Path, answers: list[Exception | None]) -> InfluxSink:
    def writer(body: bytes, precision: str) -> None:
        error = answers.pop(0)
        if error is not None:
            raise error

    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    settings = InfluxDbSink.model_validate(
        {
            "type": "influxdb",
            "id": "influx",
            "url": "http://127.0.0.1:1",
            "org": "o",
            "bucket": "b",
            "token_env": "T",
            "batch_size": 2,
        }
    )
    return InfluxSink(
        settings, tmp_path, on_dead_letter=lambda _: None, environ={"T": ""}, writer=writer, sleep=no_wait
    )


def points(n: int) -> list[Point]:
    return [
        Point(measurement="oee", tags={}, fields={"v": i}, time=T0 + timedelta(minutes=i)) for i in range(n)
    ]


async def test_health_point_and_metrics_after_an_outage_and_a_write(tmp_path: Path) -> None:
    refused = WriteRefused(503, "unavailable")
    s = sink(tmp_path, [OSError("refused"), refused, None, None])
    async with s:
        await s.submit(points(2))
        assert await s.drain(10)
        await s.submit(points(1))  # waits for its interval: one line in the outbox
        now = datetime.now(tz=UTC)
        [health] = sink_health_points([s], now)
        text = "\n".join(sink_metrics([s]))
    assert health.measurement == "health"
    assert health.tags == {"sink": "influx"}
    f = health.fields
    assert (f["connected"], f["written"], f["requests"], f["outbox_lines"]) == (True, 2, 3, 1)
    assert f["outbox_bytes"] == len(b"oee v=0i 1772438400")
    assert (f["errors"], f["errors_connection"], f["errors_server"], f["errors_rejected"]) == (2, 1, 1, 0)
    assert 0 <= f["last_write_age_s"] < 60
    assert "last_error" not in f  # cleared by the successful write
    assert 'plantstream_sink_outbox_lines{sink="influx"} 1' in text
    assert 'plantstream_sink_points_written_total{sink="influx"} 2' in text
    assert 'plantstream_sink_errors_total{sink="influx",class="connection"} 1' in text
    assert 'plantstream_sink_errors_total{sink="influx",class="throttled"} 0' in text
    assert "# TYPE plantstream_sink_outbox_age_seconds gauge" in text


def test_no_sinks_no_metrics() -> None:
    assert sink_metrics([]) == []
    assert sink_health_points([], T0) == []
