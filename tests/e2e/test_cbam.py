"""CBAM end to end: a generated year of a small steel line, replayed into the ledger, reported, verified.

The readings are generated here, deterministically: hourly samples for 2026 (local time, Asia/Ho_Chi_Minh)
of a reheating furnace (a natural-gas meter in kg and an electricity register) and a tube mill (good
pieces and an electricity register), examples/steel-cbam.yaml. The test sums what it generated and
computes the SEE by hand from those totals; the report must say the same.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.cbam_summary import CbamSummary

ROOT = Path(__file__).resolve().parents[2]
STEEL = ROOT / "examples" / "steel-cbam.yaml"
pytestmark = pytest.mark.e2e

# Local midnight of 2026-01-01 in Ho Chi Minh City (UTC+7, no daylight saving time).
START = datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
HOURS = 365 * 24
LATE_HOUR = 1_000


def plantstream(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe, "the plantstream console script is not installed in this environment"
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False, timeout=300)


@dataclass
class Year:
    """What the generator made: the totals the hand calculation uses."""

    pieces: int
    gas_kg: float
    furnace_kwh: float
    mill_kwh: float


def generate(path: Path) -> Year:
    """Hourly cumulative readings for the year; the first sample of each counter is its zero."""
    pieces = gas = furnace_kwh = mill_kwh = 0.0
    lines = []

    def reading(ts: datetime, machine: str, signal: str, value: float | str) -> None:
        stamp = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(json.dumps({"ts": stamp, "machine": machine, "signal": signal, "value": value}))

    reading(START, "furnace", "state", "running")
    reading(START, "mill", "state", "running")
    late = None
    for hour in range(HOURS + 1):
        ts = START + timedelta(hours=hour)
        if hour > 0:
            # What was made or used in the hour ending at ts: varied, deterministic.
            pieces += 5 + (hour * 37) % 11
            gas += 300 + 10 * (hour % 5)
            furnace_kwh += 50 + hour % 4
            mill_kwh += 800 + 50 * (hour % 3)
        reading(ts, "furnace", "gas", gas)
        reading(ts, "furnace", "kwh", furnace_kwh)
        if hour == LATE_HOUR:
            late = (ts, pieces)  # this counter sample arrives two hours late: a correction
        else:
            reading(ts, "mill", "good", pieces)
        reading(ts, "mill", "kwh", mill_kwh)
        if hour == LATE_HOUR + 2 and late is not None:
            reading(late[0], "mill", "good", late[1])
    path.write_text("\n".join(lines) + "\n")
    return Year(int(pieces), gas, furnace_kwh, mill_kwh)


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Year, str]:
    base = tmp_path_factory.mktemp("cbam")
    readings = base / "readings.jsonl"
    year = generate(readings)
    state = base / "state"
    points = base / "points.jsonl"
    result = plantstream(
        "replay",
        "-c",
        str(STEEL),
        "--readings",
        str(readings),
        "--out",
        str(points),
        "--state-dir",
        str(state),
    )
    assert result.returncode == 0, result.stderr
    out = base / "report"
    result = plantstream(
        "report", "cbam", "-c", str(STEEL), "--year", "2026", "--state-dir", str(state), "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    return state, out, year, points.read_text()


def test_see_equals_the_hand_calculation(reported: tuple[Path, Path, Year, str]) -> None:
    _, out, year, _ = reported
    summary = json.loads((out / "summary.json").read_text())
    [good] = summary["goods"]
    # Activity level: pieces x 500 kg = pieces x 0.5 t.
    al_t = year.pieces * 0.5
    # Direct emissions of the process: natural gas, IPCC 2006 defaults [IPCC06]: TJ = kg x 1e-6
    # Gg/kg x 48.0 TJ/Gg, CO2 = 56 100 kg/TJ x OF 1. CBAM counts the CO2 alone, not the Scope 1
    # CO2e (AR5: 56 100 + 1 x 28 + 0.1 x 265 = 56 154.5 kg/TJ, 0.097 % more).
    tj = year.gas_kg * 1e-6 * 48.0
    direct_t = tj * 56_100 / 1000
    # Precursors per tonne of tube: 0.80 t actual at 1.90, 0.26 t on default 2.0 marked up +10 % (2026).
    precursors = 0.80 * 1.90 + 0.26 * (2.0 * 1.10)
    see_direct = direct_t / al_t + precursors
    assert good["see_direct"] == pytest.approx(round(see_direct, 3), abs=0.0005)
    # Welded tubes are an Annex II good from Annex II precursors: what counts under Art. 7(1) is
    # the direct SEE alone.
    assert good["direct_emissions_only"] is True
    assert good["see_cbam"] == good["see_direct"]
    assert good["see_indirect_counted"] == 0.0
    # Share on defaults: 0.26 x 2.2 = 0.572 t/t of the SEE counted.
    assert good["default_share_cbam"] == pytest.approx(round(0.572 / see_direct, 4), abs=0.0001)
    # The whole indirect figure is not 0: the line's electricity x the "other countries" default
    # 0.465 t/MWh (IR 2025/2621 Annex II), plus the coil's: 0.80 x 0.25 actual, 0.26 x 0.2 x 1.10.
    mwh = (year.furnace_kwh + year.mill_kwh) / 1000
    own_indirect = mwh * 0.465 / al_t
    see_indirect = own_indirect + 0.80 * 0.25 + 0.26 * 0.2 * 1.10
    assert good["see_indirect"] == pytest.approx(round(see_indirect, 3), abs=0.0005)
    assert good["see_total"] == pytest.approx(round(see_direct + see_indirect, 3), abs=0.0005)
    assert good["specific_electricity_mwh_per_t"] == pytest.approx(round(mwh / al_t, 3), abs=0.0005)
    assert good["electricity_factor_t_per_mwh"] == 0.465
    # On defaults in the whole figure: the coil's default part and all the own electricity.
    default_total = 0.572 + 0.26 * 0.2 * 1.10 + own_indirect
    share = default_total / (see_direct + see_indirect)
    assert good["default_share_total"] == pytest.approx(round(share, 4), abs=0.0001)
    [process] = summary["processes"]
    assert process["direct_emissions_t"] == pytest.approx(round(direct_t, 3), abs=0.0005)
    assert process["indirect_emissions_t"] == pytest.approx(round(mwh * 0.465, 3), abs=0.0005)
    assert process["indirect_emissions_counted_t"] == 0.0
    # No calendar: all 365 x 24 = 8 760 hours of 2026 are operating hours, and every one has data.
    assert process["data_completeness"]["operating_hours"] == 8760.0
    assert process["data_completeness"]["hours_with_data"] == 8760.0
    assert process["data_completeness"]["gaps"] == 0
    assert summary["data_completeness"]["partial"] is False
    # The operator report keeps the inputs: electricity of both machines in MWh.
    report = json.loads((out / "operator-report.json").read_text())
    annual = report["periods"][0]
    assert annual["period"] == "2026"
    assert annual["processes"]["finishing"]["electricity_mwh"] == pytest.approx(mwh, rel=1e-9)
    assert annual["goods"]["welded-tube"]["activity_t"] == pytest.approx(al_t, rel=1e-12)
    # Quarters and months add up to the year.
    quarters = [p for p in report["periods"] if "-Q" in p["period"]]
    assert sum(q["goods"]["welded-tube"]["activity_t"] for q in quarters) == pytest.approx(al_t, rel=1e-12)
    months = [p for p in report["periods"] if p["period"].count("-") == 1 and "-Q" not in p["period"]]
    assert len(months) == 12
    assert sum(m["processes"]["finishing"]["attributed_direct_t"] for m in months) == pytest.approx(
        direct_t, rel=1e-9
    )


def test_direct_emissions_are_the_co2_of_the_gas_not_its_scope1_co2e(
    reported: tuple[Path, Path, Year, str],
) -> None:
    _, out, year, points_text = reported
    tj = year.gas_kg * 1e-6 * 48.0
    carbon = [
        p["fields"]
        for p in map(json.loads, points_text.splitlines())
        if p["measurement"] == "carbon"
        and p["tags"].get("machine") == "furnace"
        and p["tags"]["window"] != "shift"
    ]
    # The carbon points carry both: Scope 1 CO2e for Grafana (56 154.5 kg/TJ), CO2 for CBAM (56 100).
    assert sum(f["scope1_co2e_kg"] for f in carbon) == pytest.approx(tj * 56_154.5, rel=1e-9)
    assert sum(f["scope1_co2_kg"] for f in carbon) == pytest.approx(tj * 56_100, rel=1e-9)
    # The operator report's direct emissions are the CO2: 54.5 / 56 154.5 = 0.097 % under the CO2e.
    report = json.loads((out / "operator-report.json").read_text())
    direct_t = report["periods"][0]["processes"]["finishing"]["attributed_direct_t"]
    assert direct_t == pytest.approx(tj * 56.1, rel=1e-9)
    assert 1 - direct_t / (tj * 56.1545) == pytest.approx(54.5 / 56_154.5, rel=1e-6)


def test_summary_holds_only_allowed_fields(reported: tuple[Path, Path, Year, str]) -> None:
    _, out, _, _ = reported
    data = json.loads((out / "summary.json").read_text())
    CbamSummary.model_validate(data)  # closed at every level: an unknown key fails here
    # Word by word: "indirect_emissions_counted_t" (what counts under Art. 7(1)) is not a piece count.
    words = {word for key in keys_of(data) for word in key.lower().split("_")}
    private = {"machine", "machines", "shift", "oee", "batch", "day", "days", "daily", "fuel", "kwh"}
    private |= {"mass", "count", "pieces", "recipe", "sec"}
    assert words.isdisjoint(private), f"private keys leaked into summary.json: {words & private}"
    # Activity levels (the installation's economic activity, a NACE code, is item 2).
    assert not [key for key in keys_of(data) if key.startswith("activity")]
    # The figures item 4 needs are there, for every good, whatever its category.
    for good in data["goods"]:
        assert {"see_direct", "see_indirect", "see_total", "see_cbam", "null_reasons"} <= good.keys()
    values = json.dumps(data)
    for machine in ('"furnace"', '"mill"', "natural_gas"):
        assert machine not in values


def keys_of(data: object) -> list[str]:
    if isinstance(data, dict):
        return [k for key, value in data.items() for k in (key, *keys_of(value))]
    if isinstance(data, list):
        return [k for item in data for k in keys_of(item)]
    return []


def test_the_late_sample_corrected_windows_without_double_counting(
    reported: tuple[Path, Path, Year, str],
) -> None:
    # The late sample made the engine write the mill's windows again with revision 1; the ledger
    # replaced them (the activity level above equals the generated pieces exactly).
    _, _, _, points_text = reported
    corrected = [
        json.loads(line)
        for line in points_text.splitlines()
        if '"measurement":"oee"' in line and '"machine":"mill"' in line and '"revision":1' in line
    ]
    assert corrected, "the late counter sample corrected no window"


def test_daily_cbam_points_are_written(reported: tuple[Path, Path, Year, str]) -> None:
    _, _, year, points_text = reported
    days = [json.loads(line) for line in points_text.splitlines() if '"measurement":"cbam"' in line]
    assert len(days) == 365
    assert days[0]["time"] == "2025-12-31T17:00:00Z"  # local midnight of 2026-01-01
    assert sum(d["fields"]["activity_t"] for d in days) == pytest.approx(year.pieces * 0.5, rel=1e-12)


def test_key_is_private_and_verify_passes(reported: tuple[Path, Path, Year, str]) -> None:
    state, out, _, _ = reported
    mode = stat.S_IMODE(os.stat(state / "cbam-operator-key.pem").st_mode)
    assert mode == 0o600
    result = plantstream("verify", str(out), "--require-evidence")
    assert result.returncode == 0, result.stderr
    assert "signature and digests verified" in result.stdout
    assert "ok       summary.json (schema and sums)" in result.stdout
    # verify says which SEE counts, and that it is not the whole figure.
    [figure] = [line for line in result.stdout.splitlines() if line.startswith("figure")]
    assert "good 73063077 (Welded tube, circular, stainless excluded): SEE counted" in figure
    assert "direct emissions only (Annex II good" in figure


@pytest.mark.parametrize("name", ["summary.json", "manifest.json"])
def test_one_changed_byte_fails_verify_naming_the_file(
    reported: tuple[Path, Path, Year, str], tmp_path: Path, name: str
) -> None:
    _, out, _, _ = reported
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    data = bytearray((copy / name).read_bytes())
    index = data.index(b"2026")
    data[index + 3] = ord("7")  # one byte: 2026 -> 2027
    (copy / name).write_bytes(bytes(data))
    result = plantstream("verify", str(copy))
    assert result.returncode == 1
    assert f"{name}: SHA-256 is" in result.stderr
    assert "the file was changed after signing" in result.stderr


def test_changed_evidence_fails_verify(reported: tuple[Path, Path, Year, str], tmp_path: Path) -> None:
    _, out, _, _ = reported
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    evidence = copy / "evidence" / "finishing-2026.jsonl"
    evidence.write_text(evidence.read_text().replace('"revision":0', '"revision":1', 1))
    result = plantstream("verify", str(copy))
    assert result.returncode == 1
    assert "evidence/finishing-2026.jsonl: SHA-256 is" in result.stderr


def test_importer_copy_without_evidence_verifies_with_notes(
    reported: tuple[Path, Path, Year, str], tmp_path: Path
) -> None:
    _, out, _, _ = reported
    copy = tmp_path / "importer"
    copy.mkdir()
    for name in ("summary.json", "summary.xlsx", "manifest.json", "summary.sig", "operator-public-key.pem"):
        shutil.copy(out / name, copy / name)
    result = plantstream("verify", str(copy))
    assert result.returncode == 0, result.stderr
    assert "evidence/finishing-2026.jsonl: not in this folder" in result.stdout
    assert plantstream("verify", str(copy), "--require-evidence").returncode == 1


def test_check_accepts_the_steel_example() -> None:
    result = plantstream("check", "-c", str(STEEL))
    assert result.returncode == 0, result.stderr
    assert "cbam: installation hcm-tubes, 1 process(es), 1 good(s) (73063077)" in " ".join(
        result.stdout.split()
    )


def test_bad_cbam_data_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    text = STEEL.read_text()
    bad = (
        text.replace("      cn_code: 7306 30 77\n", "")
        .replace(
            "      see_direct: 1.90          # from the supplier's verified 2025 report (illustrative)\n", ""
        )
        .replace("      see_indirect: 0.25\n", "")
    )
    assert bad.count("cn_code") == text.count("cn_code") - 1
    path = tmp_path / "steel.yaml"
    path.write_text(bad)
    result = plantstream("check", "-c", str(path))
    assert result.returncode == 2
    err = " ".join(result.stderr.split())
    assert "steel.yaml:66 cbam.goods[0].cn_code: required key is missing" in err
    assert "steel.yaml:84 cbam.purchased_precursors[0]: precursor 'hrc-kr' has neither an actual SEE" in err
    # References are checked once the file is well formed.
    path.write_text(text.replace("machines: [furnace, mill]", "machines: [furnace, mill, press9]"))
    result = plantstream("check", "-c", str(path))
    assert result.returncode == 2
    assert "steel.yaml:64 cbam.processes[0].machines[2]: machine 'press9' does not exist" in result.stderr


def test_replay_into_a_ledger_needs_a_cbam_section(tmp_path: Path) -> None:
    minimal = ROOT / "examples" / "minimal.yaml"
    shift = ROOT / "examples" / "minimal-shift.jsonl"
    result = plantstream("replay", "-c", str(minimal), "--readings", str(shift), "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "there is no cbam section" in result.stderr


def test_report_without_a_ledger_says_so(tmp_path: Path) -> None:
    result = plantstream("report", "cbam", "-c", str(STEEL), "--year", "2026", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no CBAM ledger in" in result.stderr


def test_a_year_before_2026_is_refused_at_once_naming_the_year_and_why(tmp_path: Path) -> None:
    # Four hours of November 2025 (08:00-12:00 local): a day of the transitional period.
    start = datetime(2025, 11, 3, 1, tzinfo=UTC)
    lines = [
        json.dumps({"ts": f"{start:%Y-%m-%dT%H:%M:%SZ}", "machine": m, "signal": "state", "value": "running"})
        for m in ("furnace", "mill")
    ]
    for hour in range(5):
        ts = f"{start + timedelta(hours=hour):%Y-%m-%dT%H:%M:%SZ}"
        for machine, signal_name, per_hour in (("furnace", "gas", 300.0), ("mill", "good", 10)):
            value = per_hour * hour
            lines.append(json.dumps({"ts": ts, "machine": machine, "signal": signal_name, "value": value}))
    readings = tmp_path / "2025.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    state, points = tmp_path / "state", tmp_path / "points.jsonl"
    args = ("--readings", str(readings), "--out", str(points), "--state-dir", str(state))
    fed = plantstream("replay", "-c", str(STEEL), *args)
    # The replay runs (its windows are kept) but the ledger makes no 2025 figures, and says why.
    assert fed.returncode == 0, fed.stderr
    warning = " ".join(fed.stderr.split())
    assert "CBAM ledger: the windows of 2025 are kept but have no cbam figures" in warning
    assert "(IR 2023/1773) are not supported" in warning
    assert '"measurement":"cbam"' not in points.read_text()
    result = plantstream(
        "report",
        "cbam",
        "-c",
        str(STEEL),
        "--year",
        "2025",
        "--state-dir",
        str(state),
        "--out",
        str(tmp_path / "r"),
    )
    assert result.returncode == 2
    error = " ".join(result.stderr.split())
    assert "year 2025 is before the CBAM definitive period, which starts in 2026" in error
    assert "quarterly reports (IR (EU) 2023/1773, up to 2025-12-31) are not supported" in error
    assert not (tmp_path / "r").exists()


# --- data completeness --------------------------------------------------------------------------
# The steel line on a day shift, Monday to Saturday 06:00-22:00 local, with a week of data.
DAY_SHIFT = (
    'calendars:\n  days:\n    shifts:\n      - {name: day, start: "06:00", end: "22:00", '
    "days: [mon, tue, wed, thu, fri, sat]}\n"
)
# The furnace's electricity meter is silent for the readings at 11:00, 12:00 and 13:00 local on
# Monday 2026-01-05 (04:00-06:00 UTC): its samples of 10:00 and 14:00 are 4 h apart, beyond its
# max_gap_s of 7 200 s, so the windows 10:00-14:00 have no coverage.
SILENT = {datetime(2026, 1, 5, h, tzinfo=UTC) for h in (4, 5, 6)}


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("week")
    plant = base / "steel-day-shift.yaml"
    text = STEEL.read_text().replace(
        "    country: VN\n    carbon:", "    country: VN\n    calendar: days\n    carbon:"
    )
    assert "calendar: days" in text
    plant.write_text(text + DAY_SHIFT)
    lines = [
        json.dumps({"ts": "2025-12-31T17:00:00Z", "machine": m, "signal": "state", "value": "running"})
        for m in ("furnace", "mill")
    ]
    for hour in range(7 * 24 + 1):  # 2026-01-01 00:00 to 2026-01-08 00:00 local
        at = START + timedelta(hours=hour)
        for machine, signal_name, per_hour in (
            ("furnace", "gas", 300.0),
            ("furnace", "kwh", 50.0),
            ("mill", "good", 10),
            ("mill", "kwh", 800.0),
        ):
            if machine == "furnace" and signal_name == "kwh" and at in SILENT:
                continue
            value = per_hour * hour
            lines.append(
                json.dumps(
                    {
                        "ts": f"{at:%Y-%m-%dT%H:%M:%SZ}",
                        "machine": machine,
                        "signal": signal_name,
                        "value": value,
                    }
                )
            )
    readings = base / "week.jsonl"
    readings.write_text("\n".join(lines) + "\n")
    state = base / "state"
    fed = plantstream(
        "replay",
        "-c",
        str(plant),
        "--readings",
        str(readings),
        "--out",
        os.devnull,
        "--state-dir",
        str(state),
    )
    assert fed.returncode == 0, fed.stderr
    return plant, state


# Operating hours of 2026: 365 days from Thursday 1 January, so 52 Sundays and 313 days Monday to
# Saturday, 16 h each: 5 008 h. The week of data covers the shifts of Thursday 1, Friday 2,
# Saturday 3, Monday 5, Tuesday 6 and Wednesday 7 January: 6 x 16 = 96 h, less the furnace's 4 h
# on Monday: 92 h with data; 92 / 5 008 = 1.837 %. The gaps: Monday 10:00-14:00 (4 h), and from
# Thursday 8 January 06:00 to Thursday 31 December 22:00 (5 008 - 96 = 4 912 h; Sundays and nights
# in between do not split it).
OPERATING_H, WITH_DATA_H = 313 * 16, 6 * 16 - 4


def test_a_year_under_the_completeness_threshold_is_refused_naming_the_process_and_gaps(
    week: tuple[Path, Path], tmp_path: Path
) -> None:
    plant, state = week
    assert (OPERATING_H, WITH_DATA_H) == (5008, 92)
    out = tmp_path / "report"
    args = (
        "report",
        "cbam",
        "-c",
        str(plant),
        "--year",
        "2026",
        "--state-dir",
        str(state),
        "--out",
        str(out),
    )
    result = plantstream(*args)
    assert result.returncode == 1
    error = " ".join(result.stderr.split())
    assert "report cbam 2026: data under the completeness threshold of 95 %" in error
    assert (
        "process 'finishing': 92 of 5008 operating hours with data (1.84 %); by meter kind: "
        # The gas meter and the mill's counter miss only the rest of the year: 96 / 5008 = 1.92 %.
        "electricity 1.84 %, fuel 1.92 %, production 1.92 %; biggest gaps: "
        "2026-01-08T06:00+07:00 to 2026-12-31T22:00+07:00 (4912 h, electricity meter of furnace; "
        "electricity meter of mill; fuel meter(s) gas of furnace; production of good 'welded-tube' "
        "(counter of mill) silent), "
        "2026-01-05T10:00+07:00 to 2026-01-05T14:00+07:00 (4 h, electricity meter of furnace silent)"
    ) in error
    assert "give --allow-partial" in error
    assert not out.exists()
    # A threshold under 1.837 % lets it through, as a complete report by that threshold.
    result = plantstream(*args, "--min-completeness", "0.018")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_completeness"]["partial"] is False
    assert summary["data_completeness"]["threshold"] == 0.018


def test_allow_partial_signs_a_summary_that_says_it_is_partial(
    week: tuple[Path, Path], tmp_path: Path
) -> None:
    plant, state = week
    # The threshold from the plant file: 2 % is above 1.837 %.
    strict = tmp_path / "strict.yaml"
    strict.write_text(plant.read_text().replace("\ncbam:\n", "\ncbam:\n  min_data_completeness: 0.02\n"))
    out = tmp_path / "report"
    args = (
        "report",
        "cbam",
        "-c",
        str(strict),
        "--year",
        "2026",
        "--state-dir",
        str(state),
        "--out",
        str(out),
    )
    accepted = plantstream(*args, "--min-completeness", "0.018")  # the command line wins
    assert accepted.returncode == 0, accepted.stderr
    refused = plantstream(*args)
    assert refused.returncode == 1
    assert "under the completeness threshold of 2 %" in refused.stderr
    result = plantstream(*args, "--allow-partial")
    assert result.returncode == 0, result.stderr
    assert "PARTIAL DATA, issued with --allow-partial" in " ".join(result.stderr.split())
    summary = json.loads((out / "summary.json").read_text())
    statement = summary["data_completeness"]
    assert statement["partial"] is True
    assert statement["gaps_filled"] is False
    assert (
        "process 'finishing': 1.84 % of its operating hours (electricity 1.84 %, fuel 1.92 %, "
        "production 1.92 %) (threshold 2 %)"
    ) in statement["statement"]
    [process] = summary["processes"]
    assert process["data_completeness"] == {
        "operating_hours": 5008.0,
        "hours_with_data": 92.0,
        "share": round(92 / 5008, 4),
        "gaps": 2,
        "longest_gap_hours": 4912.0,
        # Per kind: the electricity meters miss the furnace's 4 h too (92 h); the gas meter and the
        # mill's counter have the week's 96 h: 96 / 5008 = 0.0192. The share is the lowest.
        "by_meter_kind": [
            {"kind": "electricity", "share": round(92 / 5008, 4)},
            {"kind": "fuel", "share": round(96 / 5008, 4)},
            {"kind": "production", "share": round(96 / 5008, 4)},
        ],
        "null_reasons": {},
    }
    [good] = summary["goods"]
    assert good["data_completeness"] == round(92 / 5008, 4)
    # The operator report lists the gaps for the verifier; the summary only counts them.
    report = json.loads((out / "operator-report.json").read_text())
    gaps = report["data_completeness"]["processes"]["finishing"]["gaps"]
    assert gaps == [
        {
            "start": "2026-01-05T10:00+07:00",
            "end": "2026-01-05T14:00+07:00",
            "missing_operating_hours": 4.0,
            "meters": ["electricity meter of furnace"],
        },
        {
            "start": "2026-01-08T06:00+07:00",
            "end": "2026-12-31T22:00+07:00",
            "missing_operating_hours": 4912.0,
            "meters": [
                "electricity meter of furnace",
                "electricity meter of mill",
                "fuel meter(s) gas of furnace",
                "production of good 'welded-tube' (counter of mill)",
            ],
        },
    ]
    verified = plantstream("verify", str(out))
    assert verified.returncode == 0, verified.stderr
    assert "WARNING  summary.json: PARTIAL DATA, issued with --allow-partial" in verified.stdout
