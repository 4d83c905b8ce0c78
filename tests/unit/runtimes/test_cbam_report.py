"""The summary report's closed schema, and what it is built from."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import load_workbook
from pydantic import ValidationError

from plantstream.plant import parse_plant
from runtimes.cbam import summary_workbook
from streams.cbam_ledger import MachineTotals, build_cbam_spec, period_figures
from streams.cbam_summary import CbamSummary, build_summary

PLANT = (
    __import__("pathlib").Path(__file__).resolve().parents[3] / "examples" / "steel-cbam.yaml"
).read_text()


def summary() -> CbamSummary:
    spec = build_cbam_spec(parse_plant(PLANT).model)
    assert spec is not None
    # 2 000 tubes x 0.5 t = 1 000 t; 150 t CO2e from the furnace's gas.
    totals = {"mill": MachineTotals(good_count=2_000), "furnace": MachineTotals(scope1_kg=150_000)}
    return build_summary(spec, period_figures(spec, "2026", date(2026, 1, 1), date(2027, 1, 1), totals))


def test_summary_figures() -> None:
    s = summary()
    [good] = s.goods
    # 150 / 1 000 + 0.80 x 1.90 + 0.26 x 2.0 x 1.10 = 0.15 + 1.52 + 0.572 = 2.242 t/t.
    assert good.see_direct == pytest.approx(2.242, abs=1e-9)
    assert good.default_share_total == pytest.approx(round(0.572 / 2.242, 4), abs=1e-9)
    assert s.reporting_period.start == date(2026, 1, 1)
    assert s.reporting_period.end == date(2026, 12, 31)
    [default] = s.precursors_default
    assert (default.cn_code, default.origin, default.mark_up) == ("72083900", "IN", pytest.approx(0.1))
    [actual] = s.precursors_actual
    assert actual.supplier_installation_id == "KR-INST-0042"


def test_an_unknown_key_anywhere_is_refused() -> None:
    data = summary().model_dump(mode="json")
    CbamSummary.model_validate(data)
    data["goods"][0]["activity_t"] = 1_000.0
    with pytest.raises(ValidationError, match="activity_t"):
        CbamSummary.model_validate(data)
    data = summary().model_dump(mode="json")
    data["machines"] = ["mill"]
    with pytest.raises(ValidationError, match="machines"):
        CbamSummary.model_validate(data)


def test_workbook_has_the_summary_communication_sheet() -> None:
    book = load_workbook(io.BytesIO(summary_workbook(summary())))
    assert book.sheetnames == ["Summary_Communication", "Summary_Processes"]
    sheet = book["Summary_Communication"]
    assert sheet["A1"].value == "Installation name"
    assert sheet["B3"].value == "VN"
    assert sheet["B6"].value == "2026-01-01"
    header = [cell.value for cell in sheet[9]]
    assert header[:4] == ["Production process", "Aggregated good type", "Product name", "CN code"]
    row = [cell.value for cell in sheet[10]]
    assert row[3] == "73063077"
    assert row[4] == pytest.approx(2.242, abs=1e-9)
