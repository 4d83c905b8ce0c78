"""Internal transfers measured: a good made in one process and weighed into the next."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from plantstream.plant import PlantError, parse_plant
from plantstream.records import Point
from runtimes.cbam import CbamLedger, write_report
from streams.cbam_ledger import CbamSpec, MachineTotals, build_cbam_spec, period_figures

PLANT = """\
sites:
  - id: s1
    timezone: Asia/Ho_Chi_Minh
    country: VN
    lines:
      - id: l1
        machines:
          - id: eaf
            ideal_cycle_s: 0.01
            signals: {billets: good_count, kwh: energy_kwh}
          - id: mill
            ideal_cycle_s: 0.01
            signals: {bars: good_count, kwh: energy_kwh}
          - id: mill-entry
            ideal_cycle_s: 0.01
            signals: {kg: good_count}
cbam:
  operator: {name: Example Steel JSC}
  installation: {id: inst1, name: Example, country: VN, unlocode: VNSGN}
  electricity: {factor_t_per_mwh: 0.5, source: "test factor"}
  processes:
    - {id: melt, route: Electric arc furnace, machines: [eaf]}
    - {id: rolling, route: All production routes, machines: [mill]}
  goods:
    - {id: billet, cn_code: 7207 11 14, process: melt, output: {machine: eaf, weighed: true}}
    - id: bar
      cn_code: 7214 20 00
      process: rolling
      output: {machine: mill, weighed: true}
      precursors:
        - {good: billet, metered: {machine: mill-entry, weighed: true}}
"""


def spec(text: str = PLANT) -> CbamSpec:
    built = build_cbam_spec(parse_plant(text).model)
    assert built is not None
    return built


def year(totals: dict[str, MachineTotals]):  # type: ignore[no-untyped-def]
    return period_figures(spec(), "2026", date(2026, 1, 1), date(2027, 1, 1), totals)


def test_the_transfer_is_the_mass_weighed_into_the_next_process() -> None:
    # 1 000 t of billets cast, 600 t weighed into the mill, 570 t of bars rolled. The melt shop
    # emits 100 t CO2 (SEE 0.1), the mill 57 t: bar SEE direct = (57 + 600 x 0.1) / 570 = 0.20526.
    totals = {
        "eaf": MachineTotals(good_count=1_000_000, co2_kg=100_000),
        "mill-entry": MachineTotals(good_count=600_000),
        "mill": MachineTotals(good_count=570_000, co2_kg=57_000),
    }
    figures = year(totals)
    billet, bar = figures.goods["billet"], figures.goods["bar"]
    [pre] = bar.precursors
    assert pre.mass_t == pytest.approx(600.0, rel=1e-12)
    assert bar.see_direct == pytest.approx((57 + 600 * 0.1) / 570, rel=1e-12)
    # Sold (or stocked) and transferred: 400 t and 600 t of the 1 000 t cast.
    assert (billet.transferred_t, billet.sold_t) == (pytest.approx(600.0), pytest.approx(400.0))
    assert billet.transfer_excess is None
    assert spec().machines == {"eaf", "mill", "mill-entry"}


def test_more_consumed_than_made_is_named() -> None:
    totals = {
        "eaf": MachineTotals(good_count=500_000, co2_kg=50_000),
        "mill-entry": MachineTotals(good_count=600_000),
        "mill": MachineTotals(good_count=570_000),
    }
    billet = year(totals).goods["billet"]
    assert billet.sold_t == pytest.approx(-100.0)
    assert billet.transfer_excess == (
        "the installation consumed 600.000 t of good 'billet' but made 500.000 t in the period: a "
        "consumption meter, the output meter or stock from an earlier period explains the difference"
    )


def test_a_metered_precursor_takes_no_declared_mass_too() -> None:
    text = PLANT.replace("{good: billet, metered:", "{good: billet, mass_t_per_t: 1.05, metered:")
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    [issue] = info.value.issues
    assert str(issue) == (
        "plant.yaml:31 cbam.goods[1].precursors[0]: give exactly one of mass_t_per_t, mass_t_by_year "
        "and metered"
    )


def test_a_metered_precursor_needs_a_counting_machine() -> None:
    text = PLANT.replace("machine: mill-entry, weighed", "machine: mill-exit, weighed")
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    [issue] = info.value.issues
    assert str(issue) == (
        "plant.yaml:31 cbam.goods[1].precursors[0].metered.machine: machine 'mill-exit' does not exist "
        "(known: eaf, mill, mill-entry)"
    )


def test_the_operator_report_shows_the_split_and_the_check(tmp_path: Path) -> None:
    # Through the durable ledger and write_report: the metered machine's windows are kept, and
    # the operator report (never the summary) shows made, transferred and sold per good.
    plant = parse_plant(PLANT).model
    built = spec()
    ledger = CbamLedger(built, tmp_path / "state")
    time = datetime(2026, 3, 2, 1, tzinfo=UTC)
    tags = {"site": "s1", "line": "l1", "window": "1h"}

    def oee(machine: str, kg: int) -> Point:
        return Point(
            measurement="oee",
            tags={**tags, "machine": machine},
            fields={"good_count": kg, "count_coverage": 1.0},
            time=time,
        )

    ledger.write([oee("eaf", 1_000_000), oee("mill-entry", 600_000), oee("mill", 570_000)])
    ledger.commit()
    ledger.close()
    write_report(plant, built, tmp_path / "state", 2026, tmp_path / "report", allow_partial=True)
    report = json.loads((tmp_path / "report" / "operator-report.json").read_text())
    goods = report["periods"][0]["goods"]
    assert (goods["billet"]["activity_t"], goods["billet"]["transferred_t"], goods["billet"]["sold_t"]) == (
        1000.0,
        600.0,
        400.0,
    )
    assert goods["billet"]["transfer_check"] == "consumed here no more than made"
    assert goods["bar"]["precursors"][0]["mass_basis"] == "metered on machine 'mill-entry'"
    # The entry scale's windows are evidence of the rolling process, beside the mill's.
    rolling = (tmp_path / "report" / "evidence" / "rolling-2026.jsonl").read_text()
    assert '"machine":"mill-entry"' in rolling
    summary = (tmp_path / "report" / "summary.json").read_text()
    assert "transferred" not in summary
    # The entry scale is a meter of the rolling process's completeness: kind "transfer". Each meter
    # covered one window, and the plant's windows are the default 60 s: 1 / 60 h of data.
    kinds = report["data_completeness"]["processes"]["rolling"]["by_kind"]
    assert kinds["transfer"]["meters"] == ["transfer of 'billet' into good 'bar' (counter of mill-entry)"]
    assert kinds["transfer"]["hours_with_data"] == pytest.approx(1 / 60)
    assert kinds["production"]["meters"] == ["production of good 'bar' (counter of mill)"]
    assert "sold" not in summary
