"""Smoke test of the InfluxDB sink benchmark (bench/influx.py) against a VictoriaMetrics it starts.

No timing is asserted: the machine is shared. The test checks that both sides write every point
(the sink round raises otherwise) and that the outage measurement loses nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.influx import Victoria, main, make_points, outage, raw_level1_round, raw_round, sink_round


def test_both_sides_write_every_point_and_an_outage_loses_nothing(tmp_path: Path) -> None:
    vm = Victoria(tmp_path)
    vm.start()
    try:
        assert raw_round(vm.url, make_points(2_000, 5, "b000"), 500).wall > 0
        assert raw_level1_round(vm.url, make_points(2_000, 5, "b001"), 500).wall > 0
        assert asyncio.run(sink_round(vm.url, make_points(2_000, 5, "b002"), 500, tmp_path / "o")).wall > 0
        result = asyncio.run(outage(vm, tmp_path / "outage", seconds=2, rate=1_000, machines=5, batch=500))
    finally:
        vm.stop()
    assert result["backlog_lines"] > 0
    assert result["written"] == result["produced"]


def test_the_report_has_every_side_the_ratios_cpu_and_a_profile(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--points", "2000", "--machines", "5", "--batch", "500", "--repeat", "1", "--profile", "3"])
    out = capsys.readouterr().out
    assert "round 1: raw " in out
    assert ", raw_l1 " in out
    assert "ratio sink/raw " in out
    assert "sink/raw_l1 " in out
    assert "CPU of this process per point (least of the rounds): raw " in out
    assert "profiled sink round: " in out
    assert "tottime" in out
