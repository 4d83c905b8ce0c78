"""The summary report's closed schema, and what it is built from."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sqlite3
import stat
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from openpyxl import load_workbook
from pydantic import ValidationError

from plantstream.plant import parse_plant
from plantstream.records import Point
from runtimes.cbam import (
    KEY_FILE,
    PUBLIC_KEY_FILE,
    CbamLedger,
    operator_key,
    summary_workbook,
    verify_report,
    write_report,
)
from sinks.cbam_store import LEDGER_FILE
from streams.cbam_completeness import Gap, KindCompleteness, ProcessCompleteness
from streams.cbam_ledger import MachineTotals, build_cbam_spec, period_figures
from streams.cbam_summary import CbamSummary, build_summary, completeness_statement

PLANT = (Path(__file__).resolve().parents[3] / "examples" / "steel-cbam.yaml").read_text()


def summary() -> CbamSummary:
    spec = build_cbam_spec(parse_plant(PLANT).model)
    assert spec is not None
    # 2 000 tubes x 0.5 t = 1 000 t; 150 t CO2e from the furnace's gas.
    totals = {"mill": MachineTotals(good_count=2_000), "furnace": MachineTotals(co2_kg=150_000)}
    # Data for all 8 760 hours of 2026 but 87.6 (1 %) missing in one gap.
    hour = 3_600_000_000
    complete = {
        "finishing": ProcessCompleteness(
            "finishing", 8_760 * hour, 876 * hour // 10, (Gap(0, 1, 876 * hour // 10),), ()
        )
    }
    figures = period_figures(spec, "2026", date(2026, 1, 1), date(2027, 1, 1), totals)
    return build_summary(spec, figures, complete, completeness_statement(complete, 0.95, allow_partial=False))


VERIFIED_AND_PRICED = """
  verifications:
    - {year: 2026, verifier: Example Verification Ltd, accreditation: "EA member body, no. 0000",
       statement_reference: VS-2027-0042}
  carbon_prices_paid:
    - {year: 2026, instrument: K-ETS allowances surrendered, amount: 1250000, currency: KRW,
       goods: [welded-tube]}
    - {year: 2027, instrument: the next year's, amount: 1, currency: KRW, goods: [welded-tube]}
"""


def test_the_summary_names_the_verifier_and_the_carbon_price_of_its_year() -> None:
    spec = build_cbam_spec(parse_plant(PLANT + VERIFIED_AND_PRICED).model)
    assert spec is not None
    figures = period_figures(spec, "2026", date(2026, 1, 1), date(2027, 1, 1), {})
    hour = 3_600_000_000
    complete = {"finishing": ProcessCompleteness("finishing", 8_760 * hour, 0, (), ())}  # nothing missing
    s = build_summary(spec, figures, complete, completeness_statement(complete, 0.95, allow_partial=False))
    assert s.verification.verified is True
    assert (s.verification.verifier, s.verification.statement_reference) == (
        "Example Verification Ltd",
        "VS-2027-0042",
    )
    assert s.verification.null_reasons == {}
    # Only the reporting year's price, with the CN codes of the goods it covers, not their ids.
    [price] = s.carbon_prices_paid
    assert (price.instrument, price.amount, price.currency, price.cn_codes) == (
        "K-ETS allowances surrendered",
        1_250_000,
        "KRW",
        ["73063077"],
    )


@pytest.mark.parametrize(
    ("declared", "instead", "message"),
    [
        (
            "scrap_t_per_t: 0 ",
            "scrap_per_t: 0.1 ",
            "'scrap_per_t' is not a qualifying parameter of iron_steel goods",
        ),
        (
            "scrap_t_per_t: 0 ",
            "clinker_ratio_pct: 70 ",
            "'clinker_ratio_pct' is not a qualifying parameter of",
        ),
        ("nickel_pct: 0.02", "nickel_pct: 120", "nickel_pct: 120 is outside 0 to 100"),
        ("nickel_pct: 0.02", "nickel_pct: .nan", "nickel_pct: give a finite number"),
        ("main_reducing_agent: coke", "main_reducing_agent: 3", "main_reducing_agent: give a text"),
        ("scrap_t_per_t: 0 ", "scrap_t_per_t: true ", "scrap_t_per_t: give a finite number"),
    ],
)
def test_a_qualifying_parameter_not_of_the_goods_sector_is_refused_naming_it(
    declared: str, instead: str, message: str
) -> None:
    text = PLANT.replace(declared, instead, 1)
    assert text != PLANT
    with pytest.raises(Exception, match=re.escape(message)) as caught:
        parse_plant(text)
    assert "cbam.goods[0].qualifying_parameters" in str(caught.value)


def test_a_carbon_price_for_an_unknown_good_is_refused_naming_it() -> None:
    text = PLANT + VERIFIED_AND_PRICED.replace("goods: [welded-tube]}", "goods: [welded-pipe]}", 1)
    with pytest.raises(Exception, match=re.escape("unknown good 'welded-pipe'")) as caught:
        parse_plant(text)
    assert "cbam.carbon_prices_paid[0].goods[0]" in str(caught.value)


def test_summary_figures() -> None:
    s = summary()
    [good] = s.goods
    # 150 / 1 000 + 0.80 x 1.90 + 0.26 x 2.0 x 1.10 = 0.15 + 1.52 + 0.572 = 2.242 t/t.
    assert good.see_direct == pytest.approx(2.242, abs=1e-9)
    # A welded tube is an Annex II good from Annex II precursors: the SEE counted is the direct one.
    assert good.direct_emissions_only is True
    assert good.see_cbam == pytest.approx(2.242, abs=1e-9)
    assert good.default_share_cbam == pytest.approx(round(0.572 / 2.242, 4), abs=1e-9)
    # The whole indirect figure: no electricity in these totals (metered, 0 kWh), and the coil's
    # 0.80 x 0.25 + 0.26 x 0.2 x 1.10 = 0.2 + 0.0572 = 0.2572 t/t, rounded to 0.257.
    assert good.see_indirect == pytest.approx(0.257, abs=1e-9)
    assert good.see_total == pytest.approx(2.499, abs=1e-9)  # 2.242 + 0.2572 = 2.4992
    # On defaults: 0.572 + 0.0572 = 0.6292 of 2.4992.
    assert good.default_share_total == pytest.approx(round(0.6292 / 2.4992, 4), abs=1e-9)
    assert good.electricity_factor_t_per_mwh == 0.465
    # Only the free-allocation figures are empty, and say why.
    assert set(good.null_reasons) == {"specific_embedded_free_allocation", "benchmark_confirmation"}
    assert "IR (EU) 2025/2620" in good.null_reasons["benchmark_confirmation"]
    # The qualifying parameters as the example declares them; the sector's others are named as
    # not declared, so an importer sees what is missing.
    assert good.qualifying_parameters == {
        "main_reducing_agent": "coke", "manganese_pct": 0.45, "chromium_pct": 0.03, "nickel_pct": 0.02,
        "other_alloys_pct": 0.06, "scrap_t_per_t": 0,
    }  # fmt: skip
    assert good.qualifying_parameters_not_declared == [
        "alloy_element_pct",
        "carbon_pct",
        "pre_consumer_scrap_pct",
    ]
    assert s.verification.verified is False
    assert "cbam.verifications" in s.verification.null_reasons["statement_reference"]
    assert s.carbon_prices_paid == []
    # 8 760 - 87.6 = 8 672.4 hours with data: 99 %.
    assert good.data_completeness == 0.99
    assert good.data_completeness_processes == ["finishing"]
    [process] = s.processes
    assert process.data_completeness.hours_with_data == 8_672.4
    assert process.data_completeness.gaps == 1
    assert s.data_completeness.partial is False
    assert s.data_completeness.statement.startswith("every process has data for at least 95 % of its")
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


def test_the_process_share_must_be_the_lowest_share_of_its_meter_kinds() -> None:
    data = summary().model_dump(mode="json")
    completeness = data["processes"][0]["data_completeness"]
    # 8 760 h less 87.6 h: 0.99; as the only kind (electricity) it is the lowest.
    completeness["by_meter_kind"] = [{"kind": "electricity", "share": 0.99}, {"kind": "fuel", "share": 0.995}]
    CbamSummary.model_validate(data)
    completeness["by_meter_kind"][1]["share"] = 0.9  # a fuel meter lower than the stated share
    with pytest.raises(ValidationError, match=r"share 0.99 is not the lowest share of by_meter_kind \(0.9\)"):
        CbamSummary.model_validate(data)
    completeness["by_meter_kind"][1] = {"kind": "weigh", "share": 0.99}  # garbage: an unknown kind
    with pytest.raises(ValidationError, match=re.escape("by_meter_kind.1.kind")):
        CbamSummary.model_validate(data)


def test_a_null_figure_needs_a_reason_and_a_reason_needs_a_null_figure() -> None:
    data = summary().model_dump(mode="json")
    data["goods"][0]["see_indirect"] = None
    with pytest.raises(ValidationError, match="see_indirect is null without a reason"):
        CbamSummary.model_validate(data)
    data["goods"][0]["null_reasons"] = {"see_indirect": "not metered"}
    CbamSummary.model_validate(data)
    data["goods"][0]["null_reasons"] = {"see_indirect": "not metered", "see_direct": "x"}
    with pytest.raises(ValidationError, match="not an empty figure"):
        CbamSummary.model_validate(data)


def test_the_workbook_gives_each_process_its_completeness_per_kind_of_meter() -> None:
    spec = build_cbam_spec(parse_plant(PLANT).model)
    assert spec is not None
    hour = 3_600_000_000
    # 8 760 operating hours; the gas meter misses 87.6 h (0.99), the electricity meters nothing.
    kinds = (
        KindCompleteness("electricity", 8_760 * hour, 0, (), ("electricity meter of mill",)),
        KindCompleteness("fuel", 8_760 * hour, 876 * hour // 10, (Gap(0, 1, 876 * hour // 10),), ("gas",)),
    )
    complete = {
        "finishing": ProcessCompleteness(
            "finishing", 8_760 * hour, 876 * hour // 10, kinds[1].gaps, (), kinds
        )
    }
    totals = {"mill": MachineTotals(good_count=2_000), "furnace": MachineTotals(co2_kg=150_000)}
    figures = period_figures(spec, "2026", date(2026, 1, 1), date(2027, 1, 1), totals)
    built = build_summary(
        spec, figures, complete, completeness_statement(complete, 0.95, allow_partial=False)
    )
    book = load_workbook(io.BytesIO(summary_workbook(built)))
    sheet = book["Summary_Processes"]
    assert [cell.value for cell in sheet[1]][7:9] == [
        "Data completeness",
        "Data completeness per kind of meter",
    ]
    assert [cell.value for cell in sheet[2]][7:9] == [0.99, "electricity 100 %, fuel 99 %"]


def test_workbook_has_the_summary_communication_sheet() -> None:
    book = load_workbook(io.BytesIO(summary_workbook(summary())))
    assert book.sheetnames == ["Summary_Communication", "Summary_Processes"]
    sheet = book["Summary_Communication"]
    assert sheet["A1"].value == "Installation name"
    assert sheet["B3"].value == "VN"
    assert sheet["B6"].value == "2026-01-01"
    assert (sheet["A8"].value, sheet["B8"].value) == (
        "Verification statement",
        "not verified: no verification statement for this year in the plant file (cbam.verifications)",
    )
    assert (sheet["A9"].value, sheet["B9"].value) == (
        "Carbon price paid in the country of origin",
        "none declared",
    )
    header = [cell.value for cell in sheet[11]]
    assert header[:4] == ["Production process", "Aggregated good type", "Product name", "CN code"]
    assert header[8:11] == [
        "SEE total (tCO2e/t)",
        "SEE counted, Art. 7(1) (tCO2e/t)",
        "Share of default values in SEE counted",
    ]
    row = [cell.value for cell in sheet[12]]
    assert row[3] == "73063077"
    assert row[4] == pytest.approx(2.242, abs=1e-9)
    assert row[5] == pytest.approx(0.257, abs=1e-9)  # the whole indirect figure, not 0
    assert row[9] == pytest.approx(2.242, abs=1e-9)
    assert row[11].startswith("direct emissions only (Annex II good")
    assert header[12:14] == ["Qualifying parameters", "Qualifying parameters not declared"]
    assert row[12].startswith("main_reducing_agent: coke; manganese_pct: 0.45")
    assert row[13] == "alloy_element_pct, carbon_pct, pre_consumer_scrap_pct"


def ledger_with_a_day(state: Path) -> None:
    spec = build_cbam_spec(parse_plant(PLANT).model)
    assert spec is not None
    ledger = CbamLedger(spec, state)
    time = datetime(2026, 3, 2, 1, tzinfo=UTC)
    tags = {"site": "hcm", "line": "tubes", "window": "1h"}
    ledger.write(
        [
            Point(
                measurement="oee",
                tags={**tags, "machine": "mill"},
                fields={"good_count": 4, "count_coverage": 1.0},
                time=time,
            ),
            Point(
                measurement="carbon",
                tags={**tags, "machine": "furnace"},
                fields={"scope1_co2_kg": 100.0, "fuel_coverage": 1.0},
                time=time,
            ),
        ]
    )
    ledger.commit()
    ledger.close()


def write(state: Path, out: Path, year: int = 2026) -> None:
    plant = parse_plant(PLANT).model
    spec = build_cbam_spec(plant)
    assert spec is not None
    # One day of a year: far under the completeness threshold, reported as partial.
    write_report(plant, spec, state, year, out, allow_partial=True)


def test_the_operator_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger_with_a_day(state)
    write(state, tmp_path / "r1")
    key = state / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_bytes()
    write(state, tmp_path / "r2")
    assert key.read_bytes() == first
    assert (tmp_path / "r1" / PUBLIC_KEY_FILE).read_bytes() == (
        tmp_path / "r2" / PUBLIC_KEY_FILE
    ).read_bytes()
    assert verify_report(tmp_path / "r2", require_evidence=True).ok


def test_a_ledger_with_carbon_windows_in_co2e_is_refused_until_replayed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger_with_a_day(state)
    # As a ledger written before the CO2 was kept apart: its carbon row has no field name.
    db = sqlite3.connect(state / LEDGER_FILE)
    db.execute("UPDATE windows SET field = NULL WHERE measurement = 'carbon'")
    db.commit()
    db.close()
    with pytest.raises(
        ValueError, match=re.escape("the ledger holds 1 carbon window(s) of 2026 written before")
    ):
        write(state, tmp_path / "r")
    assert not (tmp_path / "r").exists()  # nothing written
    ledger_with_a_day(state)  # the same window written again replaces it
    write(state, tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    # 100 kg CO2 for 4 pieces of 500 kg: 0.1 t / 2 t.
    assert summary["processes"][0]["direct_emissions_t"] == 0.1


def test_a_signature_under_another_key_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger_with_a_day(state)
    write(state, tmp_path / "r")
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    result = verify_report(tmp_path / "r", public_key=other)
    assert not result.ok
    assert result.problems == [
        "summary.sig: the Ed25519 signature does not match the signed digests under this public key"
    ]


def test_a_damaged_signature_file_is_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ledger_with_a_day(state)
    write(state, tmp_path / "r")
    (tmp_path / "r" / "summary.sig").write_text("{")
    [problem] = verify_report(tmp_path / "r").problems
    assert problem.startswith("summary.sig: cannot be read as a plantstream signature")


def test_a_key_that_is_not_ed25519_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / KEY_FILE).write_text("not a key\n")
    with pytest.raises(ValueError, match=f"{KEY_FILE}: not an unencrypted PEM private key"):
        operator_key(state)


def test_days_before_2026_are_kept_without_cbam_points(tmp_path: Path) -> None:
    # 2025-11-03 01:00 UTC is 08:00 local in Ho Chi Minh City: a day of the transitional period.
    spec = build_cbam_spec(parse_plant(PLANT).model)
    assert spec is not None
    ledger = CbamLedger(spec, tmp_path)
    tags = {"site": "hcm", "line": "tubes", "machine": "mill", "window": "1h"}
    ledger.write(
        [
            Point(
                measurement="oee",
                tags=tags,
                fields={"good_count": 4, "count_coverage": 1.0},
                time=datetime(2025, 11, 3, 1, tzinfo=UTC),
            ),
            Point(
                measurement="oee",
                tags=tags,
                fields={"good_count": 6},
                time=datetime(2026, 1, 5, 1, tzinfo=UTC),
            ),
        ]
    )
    points = ledger.commit()
    assert [p.time.date() for p in points] == [date(2026, 1, 4)]  # local 2026-01-05 starts 17:00 UTC before
    assert points[0].fields["activity_t"] == 6 * 0.5
    assert ledger.years_before_definitive == {2025}
    # The window of 2025 is kept: the store is a record of what the plant wrote.
    assert ledger.machine_totals(date(2025, 11, 3), date(2025, 11, 4))["mill"].good_count == 4
    ledger.close()


def test_a_report_for_a_year_before_2026_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"year 2025 is before the CBAM definitive period.*IR \(EU\) 2023/1773"
    ):
        write(tmp_path / "state", tmp_path / "r", year=2025)
    assert not (tmp_path / "r").exists()


def resign(state: Path, folder: Path) -> None:
    """Sign the folder's summary and manifest again with the operator's key, as they now are."""
    key = operator_key(state)
    signed = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in ("summary.json", "manifest.json")
    }
    message = (
        b"plantstream-cbam-summary-signature/1\n"
        + json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()
    )
    signature = json.loads((folder / "summary.sig").read_text())
    signature["signed_sha256"] = signed
    signature["signature"] = base64.b64encode(key.sign(message)).decode()
    (folder / "summary.sig").write_text(json.dumps(signature))


def test_verify_checks_the_signed_summary_s_own_sums(tmp_path: Path) -> None:
    state, folder = tmp_path / "state", tmp_path / "r"
    ledger_with_a_day(state)
    write(state, folder)
    result = verify_report(folder)
    assert result.ok, result.problems
    assert "summary.json (schema and sums)" in result.checked
    [figure] = result.figures
    assert figure.startswith("good 73063077 (Welded tube, circular, stainless excluded): SEE counted")
    # A summary signed with a total that is not direct + indirect is named, though its signature holds.
    data = json.loads((folder / "summary.json").read_text())
    good = data["goods"][0]
    good["see_total"] = round(good["see_direct"] + good["see_indirect"] + 0.01, 3)
    (folder / "summary.json").write_text(json.dumps(data))
    resign(state, folder)
    [problem] = verify_report(folder).problems
    assert problem.startswith(
        "summary.json: good 73063077 (Welded tube, circular, stainless excluded): see_total is"
    )
    assert "but its parts add up to" in problem
    # And one that does not follow the schema (a key the schema does not have).
    good["see_total"] = round(good["see_direct"] + good["see_indirect"], 3)
    good["activity_t"] = 2.0
    (folder / "summary.json").write_text(json.dumps(data))
    resign(state, folder)
    [problem] = verify_report(folder).problems
    assert problem.startswith(
        "summary.json: does not follow the summary schema (1 error(s)); first at goods.0.activity_t"
    )


def test_a_ledger_with_counter_windows_from_before_their_coverage_is_refused_naming_the_fix(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    ledger_with_a_day(state)
    # As a ledger written before counters reported their coverage: the mill's oee row has none.
    db = sqlite3.connect(state / LEDGER_FILE)
    db.execute("UPDATE windows SET covered = NULL WHERE measurement = 'oee'")
    db.commit()
    db.close()
    message = "the ledger holds 1 oee window(s) of mill of 2026 written before the coverage of counters"
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        write(state, tmp_path / "r")
    assert "replay the year's readings with --state-dir again" in str(refused.value)
    assert not (tmp_path / "r").exists()  # nothing written
    ledger_with_a_day(state)  # the same window written again, with its coverage
    write(state, tmp_path / "r")
    assert (tmp_path / "r" / "summary.json").exists()
