"""A silent weigh feeder is a gap of the CBAM report: refused naming it, or signed as partial.

The cement example (examples/cement-cbam.yaml: a kiln with an electricity meter and a clinker belt
scale, a raw-meal weigh feeder and a coal weigh feeder as source streams, no calendar, so every
hour of 2026 is an operating hour) runs 14 days from 2026-01-01 local (examples/make_cbam_readings.py,
hourly cumulative samples). On Monday 5 January the raw-meal feeder falls silent for the day.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    """The example script as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "make_cbam_readings", ROOT / "examples" / "make_cbam_readings.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def plantstream(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe, "the plantstream console script is not installed in this environment"
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False, timeout=300)


PLANT = ROOT / "examples" / "cement-cbam.yaml"
DAYS = 14
# Local (UTC+7) 2026-01-05 00:00 is 2026-01-04 17:00 UTC; the feeder's samples strictly inside the
# day (01:00 to 23:00 local) are dropped, so its samples at 00:00 and 24:00 are 24 h apart, beyond
# the counters' coverage bound (the 3 600 s window): the 24 hourly windows of the day have no data.
SILENT_FROM = datetime(2026, 1, 4, 17, tzinfo=UTC)
SILENT_UNTIL = SILENT_FROM + timedelta(hours=24)
# Operating hours of 2026, no calendar: 365 x 24 = 8 760. The kiln's meters report 14 x 24 = 336 h;
# the feeder 336 - 24 = 312 h. Shares: electricity and production 336 / 8 760 = 3.84 %, source
# streams 312 / 8 760 = 3.56 %; the process's share is the lowest, 3.56 %. A threshold of 3.7 % lies
# between them, so the feeder's day alone decides: refused without --allow-partial.
OPERATING_H, KILN_H, FEEDER_H = 365 * 24, DAYS * 24, DAYS * 24 - 24
THRESHOLD = "0.037"
FEEDER = "source stream 'raw-meal' (counter of meal-feeder)"


def readings(base: Path, drop: Callable[[dict[str, object]], bool]) -> Path:
    """The example's readings without those ``drop(reading)`` is true for."""
    out = io.StringIO()
    generator().write_readings(out, "cement", DAYS)
    kept = [line for line in out.getvalue().splitlines() if not drop(json.loads(line))]
    path = base / "cement.jsonl"
    path.write_text("\n".join(kept) + "\n")
    return path


def replayed(base: Path, drop: Callable[[dict[str, object]], bool]) -> Path:
    state = base / "state"
    result = plantstream(
        "replay", "-c", str(PLANT), "--readings", str(readings(base, drop)), "--out", str(base / "p.jsonl"),
        "--state-dir", str(state),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return state


def report(state: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = plantstream(
        "report", "cbam", "-c", str(PLANT), "--year", "2026", "--state-dir", str(state), "--out", str(out),
        "--min-completeness", THRESHOLD, *extra,
    )  # fmt: skip
    return result.returncode, " ".join(result.stderr.split())


def silent_day(reading: dict[str, object]) -> bool:
    at = datetime.strptime(str(reading["ts"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (
        reading["machine"] == "meal-feeder"
        and reading["signal"] == "meal"
        and SILENT_FROM < at < SILENT_UNTIL
    )


def test_a_feeder_silent_for_a_day_is_refused_naming_it_then_signed_partial_with_the_gap(
    tmp_path: Path,
) -> None:
    assert (OPERATING_H, KILN_H, FEEDER_H) == (8760, 336, 312)
    state = replayed(tmp_path, silent_day)
    out = tmp_path / "report"
    code, error = report(state, out)
    assert code == 1
    assert "data under the completeness threshold of 3.7 %" in error
    assert (
        "process 'clinker': 312 of 8760 operating hours with data (3.56 %); by meter kind: "
        "electricity 3.84 %, source stream 3.56 %, production 3.84 %"
    ) in error
    assert f"2026-01-05T00:00+07:00 to 2026-01-06T00:00+07:00 (24 h, {FEEDER} silent)" in error
    assert not out.exists()

    code, error = report(state, out, "--allow-partial")
    assert code == 0, error
    assert "PARTIAL DATA, issued with --allow-partial" in error
    summary = json.loads((out / "summary.json").read_text())
    [process] = summary["processes"]
    assert process["data_completeness"]["share"] == round(FEEDER_H / OPERATING_H, 4)  # 0.0356
    assert process["data_completeness"]["by_meter_kind"] == [
        {"kind": "electricity", "share": round(KILN_H / OPERATING_H, 4)},
        {"kind": "source_stream", "share": round(FEEDER_H / OPERATING_H, 4)},
        {"kind": "production", "share": round(KILN_H / OPERATING_H, 4)},
    ]
    assert "raw-meal" not in json.dumps(summary)  # the summary names no stream
    assert "(source stream 3.56 %)" in summary["data_completeness"]["statement"]
    operator = json.loads((out / "operator-report.json").read_text())
    streams = operator["data_completeness"]["processes"]["clinker"]["by_kind"]["source_stream"]
    assert streams["hours_with_data"] == FEEDER_H
    assert {
        "start": "2026-01-05T00:00+07:00",
        "end": "2026-01-06T00:00+07:00",
        "missing_operating_hours": 24.0,
        "meters": [FEEDER],
    } in streams["gaps"]
    verified = plantstream("verify", str(out))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_garbage_a_feeder_named_in_the_plant_file_that_never_reports_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    # The coal feeder sends nothing: its stream has 0 h of data, 0 % of 8 760, a gap of the year.
    state = replayed(tmp_path, lambda r: r["machine"] == "coal-feeder")
    code, error = report(state, tmp_path / "report")
    assert code == 1
    assert "source stream 0 %" in error
    # The raw-meal feeder is silent in part of that year-long gap too (after the 14 days): named.
    assert (
        "2026-01-01T00:00+07:00 to 2027-01-01T00:00+07:00 (8760 h, source stream 'raw-meal' (counter of "
        "meal-feeder); source stream 'coal' (counter of coal-feeder) silent)"
    ) in error
