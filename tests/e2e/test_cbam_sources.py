"""CBAM source streams end to end: four example plants, replayed, reported, verified, by hand.

Each plant of examples/ (a cement kiln by the input method, an EAF by mass balance, a primary
aluminium smelter with PFCs, a nitric acid plant with metered N2O) runs 35 days from 2026-01-01
(examples/make_cbam_readings.py, deterministic); its readings go through ``plantstream replay
--state-dir``, ``report cbam --allow-partial`` (35 days are under the year's completeness
threshold) and ``verify``. The test sums what the generator made, day by day, and computes the
direct emissions with the regulation's formulas; the report must say the same.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

from streams.cbam_summary import CbamSummary

ROOT = Path(__file__).resolve().parents[2]
DAYS = 35  # past 1 February, when the smelter's anode-effect minutes change
CO2_PER_C = 44.01 / 12.011
pytestmark = pytest.mark.e2e

PLANT_FILES = {
    "cement": "cement-cbam.yaml",
    "eaf": "eaf-cbam.yaml",
    "aluminium": "aluminium-cbam.yaml",
    "nitric": "nitric-acid-cbam.yaml",
}


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


Days = dict[date, dict[str, float]]


def run(plant: str, base: Path) -> tuple[Days, dict[str, object], dict[str, object], Path]:
    """Generate, replay, report and verify one example; return the day totals, summary, report, folder."""
    plant_file = ROOT / "examples" / PLANT_FILES[plant]
    out = io.StringIO()
    days: Days = generator().write_readings(out, plant, DAYS)
    readings = base / f"{plant}.jsonl"
    readings.write_text(out.getvalue())
    state, report = base / f"{plant}-state", base / f"{plant}-report"
    result = plantstream(
        "replay", "-c", str(plant_file), "--readings", str(readings), "--out", str(base / "p.jsonl"),
        "--state-dir", str(state),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = plantstream(
        "report", "cbam", "-c", str(plant_file), "--year", "2026", "--state-dir", str(state),
        "--out", str(report), "--allow-partial",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = plantstream("verify", str(report), "--require-evidence")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signature and digests verified" in result.stdout
    summary = json.loads((report / "summary.json").read_text())
    CbamSummary.model_validate(summary)
    operator = json.loads((report / "operator-report.json").read_text())
    return days, summary, operator, report


def total(days: Days, name: str, since: date | None = None, until: date | None = None) -> float:
    """Tonnes (kg / 1000) of ``name`` over the days in ``[since, until)``."""
    return (
        sum(
            amounts.get(name, 0.0)
            for day, amounts in days.items()
            if (since is None or day >= since) and (until is None or day < until)
        )
        / 1000
    )


def annual_process(operator: dict[str, object], process: str) -> dict[str, object]:
    periods = operator["periods"]
    assert isinstance(periods, list)
    return periods[0]["processes"][process]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cbam-sources")


def test_cement_kiln_by_the_input_method(base: Path) -> None:
    days, summary, operator, _ = run("cement", base)
    lab_from = date(2026, 1, 8)  # the laboratory's composition applies from 8 January
    meal_default, meal_lab = (
        total(days, "meal-feeder.meal", until=lab_from),
        total(days, "meal-feeder.meal", since=lab_from),
    )
    # Raw meal, method A: default 0.78 x 0.440 + 0.015 x 0.522 = 0.35103 t CO2/t; laboratory
    # 0.80 x 0.440 + 0.012 x 0.522 = 0.358264 t CO2/t.
    calcination = meal_default * 0.35103 + meal_lab * 0.358264
    # Coal, standard method: t x 0.0258 TJ/t x 94.6 t CO2/TJ x OF 1 = t x 2.44068.
    coal = total(days, "coal-feeder.coal") * 0.0258 * 94.6
    direct = calcination + coal
    process = annual_process(operator, "clinker")
    assert process["attributed_direct_t"] == pytest.approx(direct, rel=1e-9)
    streams = process["source_streams"]
    assert isinstance(streams, dict)
    assert streams["raw-meal"]["co2_t"] == pytest.approx(calcination, rel=1e-9)
    assert streams["coal"]["co2_t"] == pytest.approx(coal, rel=1e-9)
    clinker = total(days, "kiln.clinker")
    mwh = total(days, "kiln.kwh")  # kWh / 1000
    [good] = summary["goods"]  # type: ignore[misc]
    assert good["see_direct"] == pytest.approx(round(direct / clinker, 3), abs=0.0005)
    # Clinker is not an Annex II good: its indirect emissions count (0.465 t/MWh, other countries).
    assert good["see_cbam"] == pytest.approx(round((direct + mwh * 0.465) / clinker, 3), abs=0.001)
    [summary_process] = summary["processes"]  # type: ignore[misc]
    assert summary_process["direct_emissions_t"] == pytest.approx(round(direct, 3), abs=0.0005)
    # No raw activity leaves the plant: no stream, no composition, no tonnage of meal or coal.
    text = json.dumps(summary)
    for private in ("raw-meal", "meal-feeder", "coal-feeder", "composition", "CaCO3", "activity_t"):
        assert private not in text


def test_eaf_by_mass_balance(base: Path) -> None:
    days, summary, operator, _ = run("eaf", base)
    carbon_in = (
        total(days, "scrap-crane.scrap") * 0.002
        + total(days, "electrode-store.electrodes") * 600 * 0.995  # pieces x 600 kg, / 1000 in total()
        + total(days, "coal-injector.coal") * 0.80
    )
    carbon_out = total(days, "eaf.billets") * 0.0015 + total(days, "slag-scale.slag") * 0.001
    direct = CO2_PER_C * (carbon_in - carbon_out)
    process = annual_process(operator, "melt-shop")
    assert process["attributed_direct_t"] == pytest.approx(direct, rel=1e-9)
    streams = process["source_streams"]
    assert isinstance(streams, dict)
    assert streams["billets"]["co2_t"] < 0  # an output: its carbon leaves the installation
    billets = total(days, "eaf.billets")
    [good] = summary["goods"]  # type: ignore[misc]
    assert good["see_direct"] == pytest.approx(round(direct / billets, 3), abs=0.0005)
    assert good["see_cbam"] == good["see_direct"]  # iron and steel: Annex II, direct only


def test_primary_aluminium_with_pfcs(base: Path) -> None:
    days, summary, operator, _ = run("aluminium", base)
    february = date(2026, 2, 1)
    # Slope method, CWPB: CF4 [t] = 0.143 x AEM x Pr_Al [t] / 1000; C2F6 = 0.121 x CF4;
    # CO2e = CF4 x 6 630 + C2F6 x 11 100 = CF4 x (6 630 + 0.121 x 11 100) = CF4 x 7 973.1.
    cf4 = (
        0.143
        * (
            0.1 * total(days, "potline.metal", until=february)
            + 0.08 * total(days, "potline.metal", since=february)
        )
        / 1000
    )
    pfc = cf4 * 6630 + cf4 * 0.121 * 11100
    # Anodes: pieces x 1 000 kg x 3.6 t CO2/t.
    anodes = total(days, "anode-crane.anodes") * 1000 * 3.6
    direct = pfc + anodes
    process = annual_process(operator, "electrolysis")
    assert process["attributed_direct_t"] == pytest.approx(direct, rel=1e-9)
    streams = process["source_streams"]
    assert isinstance(streams, dict)
    assert streams["pfc"]["cf4_t"] == pytest.approx(cf4, rel=1e-9)
    assert streams["pfc"]["c2f6_t"] == pytest.approx(cf4 * 0.121, rel=1e-9)
    assert streams["pfc"]["co2e_t"] == pytest.approx(cf4 * 7973.1, rel=1e-9)
    metal = total(days, "potline.metal")
    [good] = summary["goods"]  # type: ignore[misc]
    assert good["see_direct"] == pytest.approx(round(direct / metal, 3), abs=0.0005)


def test_nitric_acid_with_metered_n2o(base: Path) -> None:
    days, summary, operator, _ = run("nitric", base)
    n2o = total(days, "stack-cems.n2o")
    direct = n2o * 265  # AR5 GWP of N2O
    process = annual_process(operator, "nitric-acid")
    assert process["attributed_direct_t"] == pytest.approx(direct, rel=1e-9)
    acid = total(days, "acid-plant.acid")
    mwh = total(days, "acid-plant.kwh")
    [good] = summary["goods"]  # type: ignore[misc]
    assert good["see_direct"] == pytest.approx(round(direct / acid, 3), abs=0.0005)
    # Fertilisers are not Annex II goods: direct and indirect count.
    assert good["see_cbam"] == pytest.approx(round((direct + mwh * 0.465) / acid, 3), abs=0.001)
    assert summary["data_completeness"]["partial"] is True  # type: ignore[index]


def test_check_lists_the_source_streams() -> None:
    result = plantstream("check", "-c", str(ROOT / "examples" / "eaf-cbam.yaml"))
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert (
        "cbam source stream billets: process melt-shop, mass_balance (output), activity from machine eaf, "
        "1 factor period(s)"
    ) in out
