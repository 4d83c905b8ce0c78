"""The CBAM ledger in a state directory, ``plantstream report cbam`` and ``plantstream verify``.

The ledger (:class:`CbamLedger`) joins the pure part (streams.cbam_ledger) and the durable store
(sinks.cbam_store): the runtimes hand it every point they write; at each commit it makes the store
durable and returns the ``cbam`` points of the days that changed, for the sinks.

The report writes into one folder:

- ``summary.json`` (the §1.2 summary: the only thing meant for importers), ``summary.xlsx``;
- ``operator-report.json`` (everything, for the verifier) and ``evidence/`` (the window points
  behind each figure and the factor table, for the verifier);
- ``manifest.json`` (SHA-256 of every evidence set and document), ``summary.sig`` (Ed25519 over
  the summary and the manifest) and ``operator-public-key.pem``.

The operator's key is made on first use as ``<state-dir>/cbam-operator-key.pem``, mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from plantstream.plant.schema import PlantModel
from plantstream.private import private_dir
from plantstream.records import EPOCH, Point
from sinks.cbam_store import LEDGER_FILE, CbamStore
from streams import carbon
from streams.cbam import DEFINITIVE_PERIOD_START_YEAR, require_definitive_year
from streams.cbam_completeness import (
    NOT_MEASURED,
    Gap,
    Meter,
    ProcessCompleteness,
    data_spans,
    local_text,
    operating_spans,
    process_completeness,
)
from streams.cbam_ledger import (
    CbamSpec,
    MachineTotals,
    PeriodFigures,
    build_cbam_spec,
    daily_points,
    day_start_utc,
    period_figures,
    periods_of_year,
)
from streams.cbam_summary import (
    SUMMARY_FORMAT,
    CbamSummary,
    build_operator_report,
    build_summary,
    completeness_statement,
    factor_table,
    percent,
)
from streams.config import EngineSpec, build_spec

__all__ = [
    "GAPS_LISTED",
    "KEY_FILE",
    "PUBLIC_KEY_FILE",
    "CbamLedger",
    "IncompleteData",
    "ReportFiles",
    "VerifyResult",
    "describe_completeness",
    "open_ledger",
    "operator_key",
    "verify_report",
    "write_report",
    "year_completeness",
]

KEY_FILE = "cbam-operator-key.pem"
PUBLIC_KEY_FILE = "operator-public-key.pem"
SIGNATURE_FILE = "summary.sig"
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"
_SIGNING_CONTEXT = b"plantstream-cbam-summary-signature/1\n"
_FIELD_OF = {"oee": "good_count", "energy": "kwh", "carbon": "co2_kg"}
_ONE_US = timedelta(microseconds=1)


class CbamLedger:
    """The durable CBAM ledger of one installation in a state directory."""

    def __init__(self, spec: CbamSpec, state_dir: Path) -> None:
        """Open (or create) ``<state_dir>/cbam-ledger.sqlite`` for ``spec``."""
        self.spec = spec
        self.store = CbamStore(state_dir / LEDGER_FILE, spec.machines, spec.timezone)
        self._dirty: set[date] = set()
        self.years_before_definitive: set[int] = set()
        """Years before 2026 whose windows were kept but turned into no ``cbam`` points."""
        self._per_year_masses = any(u.mass_t_by_year for g in spec.goods.values() for u in g.precursors)

    def write(self, points: Iterable[Point]) -> None:
        """Take the points a runtime writes; the ledger keeps its machines' closed windows."""
        self._dirty |= self.store.write(points)

    def commit(self) -> list[Point]:
        """Make the ledger durable; return the ``cbam`` points of every day that changed.

        Days before 2026 are kept in the store but get no points: their years are added to
        :attr:`years_before_definitive`, for the runtime to say so once.
        """
        self.store.commit()
        if not self._dirty:
            return []
        days, self._dirty = sorted(self._dirty), set()
        # The definitive-period rules (mark-ups, factors) do not apply before 2026: no figures.
        self.years_before_definitive |= {d.year for d in days if d.year < DEFINITIVE_PERIOD_START_YEAR}
        days = [d for d in days if d.year >= DEFINITIVE_PERIOD_START_YEAR]
        points: list[Point] = []
        for year in sorted({d.year for d in days}):
            wanted = [d for d in days if d.year == year]
            per_day = self.day_totals(wanted[0], wanted[-1] + timedelta(days=1))
            # Only precursors given per year need the year's activity (a query over the year).
            annual = self.year_activity(year) if self._per_year_masses else {}
            points.extend(daily_points(self.spec, [(d, per_day.get(d, {})) for d in wanted], annual))
        return points

    def close(self) -> None:
        """Commit and close the store."""
        self.store.close()

    def day_totals(self, first: date, after: date) -> dict[date, dict[str, MachineTotals]]:
        """Machine totals per local day in ``[first, after)``."""
        out: dict[date, dict[str, MachineTotals]] = {}
        for day, machine, measurement, value, count in self.store.machine_days(first, after):
            totals = out.setdefault(date.fromisoformat(day), {}).setdefault(machine, MachineTotals())
            _add(totals, measurement, value, count)
        return out

    def machine_totals(self, first: date, after: date) -> dict[str, MachineTotals]:
        """Machine totals over ``[first, after)``."""
        out: dict[str, MachineTotals] = {}
        for _, machine, measurement, value, count in self.store.machine_days(first, after):
            _add(out.setdefault(machine, MachineTotals()), measurement, value, count)
        return out

    def year_activity(self, year: int) -> dict[str, float]:
        """Good id -> activity level (t) of the year so far."""
        totals = self.machine_totals(date(year, 1, 1), date(year + 1, 1, 1))
        return {
            gid: totals.get(g.output_machine, MachineTotals()).good_count * g.t_per_unit
            for gid, g in self.spec.goods.items()
        }

    def periods(self, year: int) -> list[PeriodFigures]:
        """The figures of the year, its quarters and its months."""
        annual = self.year_activity(year)
        # Source streams meet the factors of each day (laboratory values per period).
        per_day = self.day_totals(date(year, 1, 1), date(year + 1, 1, 1)) if self.spec.streams else {}
        return [
            period_figures(
                self.spec,
                label,
                first,
                after,
                self.machine_totals(first, after),
                annual,
                days=[(d, t) for d, t in sorted(per_day.items()) if first <= d < after],
            )
            for label, first, after in periods_of_year(year)
        ]


def _add(totals: MachineTotals, measurement: str, value: float, count: int) -> None:
    setattr(totals, _FIELD_OF[measurement], getattr(totals, _FIELD_OF[measurement]) + value)
    totals.windows += count


def open_ledger(plant: PlantModel, state_dir: Path) -> CbamLedger | None:
    """The plant's ledger in ``state_dir``, or ``None`` when the plant file has no ``cbam`` section.

    Raises:
        streams.config.ConfigProblem: the ``cbam`` section cannot be resolved.
    """
    spec = build_cbam_spec(plant)
    return None if spec is None else CbamLedger(spec, state_dir)


# --------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n").encode()


def _write(path: Path, data: bytes) -> str:
    """Write ``data`` atomically (temporary file, fsync, rename); return its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return _digest(data)


def operator_key(state_dir: Path) -> Ed25519PrivateKey:
    """The operator's signing key, generated on first use into ``state_dir`` with mode 0600."""
    path = state_dir / KEY_FILE
    if path.exists():
        try:
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return loaded
    private_dir(state_dir)  # created 0700 if missing, like every state directory
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL: never overwrite a key that appeared meanwhile; 0600 from the first byte.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return key


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed_message(signed: dict[str, str]) -> bytes:
    return _SIGNING_CONTEXT + json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def _fuel_factors(plant: PlantModel, spec: CbamSpec) -> dict[str, Any]:
    fuels: dict[str, Any] = {}
    for site, _, machine in plant.machines():
        if machine.id not in spec.machines:
            continue
        for name, signal in machine.signals.items():
            fuel = getattr(signal, "fuel", None)
            if fuel is not None and fuel in carbon.FUELS:
                fuels[f"{machine.id}.{name}"] = {
                    **asdict(carbon.FUELS[fuel]),
                    "unit": getattr(signal, "unit", None),
                    "gwp": site.carbon.gwp if site.carbon else None,
                }
    return fuels


@dataclass
class ReportFiles:
    """What ``report cbam`` wrote, and the figures it wrote them from."""

    folder: Path
    summary: CbamSummary
    periods: list[PeriodFigures]
    files: dict[str, str] = field(default_factory=dict)  # name -> SHA-256
    completeness: dict[str, ProcessCompleteness] = field(default_factory=dict)


GAPS_LISTED = 10
"""Gaps listed per process in the operator report (the largest); the rest are counted."""


class IncompleteData(ValueError):
    """A process's data covers less of its operating hours than the threshold, and no ``allow_partial``."""


def process_meters(engine: EngineSpec, spec: CbamSpec, pid: str) -> list[tuple[str, str, str, str]]:
    """The meters besides electricity that ``pid``'s figures rest on: (kind, name, machine, measurement).

    Source-stream activity and the goods' production and metered transfers are counters
    (``oee`` windows' ``count_coverage``); the fuel meters of the process's machines are
    ``carbon`` windows' ``fuel_coverage`` (docs/cbam.md, data completeness).
    """
    out = []
    for stream in spec.streams.values():
        if stream.process == pid:
            out.append(
                (
                    "source_stream",
                    f"source stream {stream.id!r} (counter of {stream.machine})",
                    stream.machine,
                    "oee",
                )
            )
    for machine in spec.processes[pid].machines:
        fuels = sorted(engine.machines[machine].fuels)
        if fuels:
            out.append(("fuel", f"fuel meter(s) {', '.join(fuels)} of {machine}", machine, "carbon"))
    for gid, good in spec.goods.items():
        if good.process != pid:
            continue
        out.append(
            (
                "production",
                f"production of good {gid!r} (counter of {good.output_machine})",
                good.output_machine,
                "oee",
            )
        )
        for use in good.precursors:
            if use.machine is not None:
                out.append(
                    (
                        "transfer",
                        f"transfer of {use.ref!r} into good {gid!r} (counter of {use.machine})",
                        use.machine,
                        "oee",
                    )
                )
    return out


def year_completeness(
    plant: PlantModel, spec: CbamSpec, ledger: CbamLedger, year: int
) -> dict[str, ProcessCompleteness]:
    """Each process's data completeness over ``year`` (streams.cbam_completeness), from the ledger.

    Raises:
        ValueError: the ledger holds counter or fuel windows of the year written before their
            coverage was kept, so their data cannot be told from a silence; the message names them
            and the fix (replay the year).
    """
    engine = build_spec(plant)
    first, after = date(year, 1, 1), date(year + 1, 1, 1)
    start_us = (day_start_utc(first, spec.timezone) - EPOCH) // _ONE_US
    end_us = (day_start_utc(after, spec.timezone) - EPOCH) // _ONE_US
    days = (first, after - timedelta(days=1))

    def operating_of(machine: str) -> list[tuple[int, int]]:
        return operating_spans(engine.machines[machine].schedule, start_us, end_us, days)

    old: dict[tuple[str, str], int] = {}
    out = {}
    for pid, process in spec.processes.items():
        operating = {m: operating_of(m) for m in process.machines}
        data = {
            m: data_spans(ledger.store.covered_windows(m, first, after), engine.window_us)
            for m in process.machines
            if m not in process.unmetered
        }
        meters = []
        for kind, name, machine, measurement in process_meters(engine, spec, pid):
            uncovered = ledger.store.uncovered_windows(machine, measurement, first, after)
            if uncovered:
                old[(machine, measurement)] = uncovered
            covered = ledger.store.covered_windows(machine, first, after, measurement)
            meters.append(Meter(kind, name, operating_of(machine), data_spans(covered, engine.window_us)))
        out[pid] = process_completeness(pid, operating, data, meters)
    if old:
        listed = ", ".join(f"{n} {k[1]} window(s) of {k[0]}" for k, n in sorted(old.items()))
        # Their counters' or fuel meters' silences cannot be told from data: not guessed either way.
        raise ValueError(
            f"the ledger holds {listed} of {year} written before the coverage of counters and fuel "
            "meters was kept: replay the year's readings with --state-dir again (the same windows "
            "replace them)"
        )
    return out


def _gap_dict(gap: Gap, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "start": local_text(gap.start_us, zone),
        "end": local_text(gap.end_us, zone),
        "missing_operating_hours": gap.hours,
        "meters": list(gap.meters),
    }


def _completeness_dict(result: ProcessCompleteness, zone: ZoneInfo) -> dict[str, Any]:
    listed = result.largest(GAPS_LISTED)
    by_kind = {}
    for kind in result.kinds:
        biggest = sorted(kind.gaps, key=lambda g: (-g.missing_us, g.start_us))[:GAPS_LISTED]
        by_kind[kind.kind] = {
            "share": kind.share,
            "hours_with_data": kind.hours_with_data,
            "meters": list(kind.meters),
            "gaps": [_gap_dict(g, zone) for g in sorted(biggest, key=lambda g: g.start_us)],
            "gaps_not_listed": len(kind.gaps) - len(biggest),
        }
    return {
        "operating_hours": result.operating_hours,
        "hours_with_data": result.hours_with_data,
        "share": result.share,
        "share_rule": "the lowest share of the kinds of meters (each figure rests on one kind)",
        "by_kind": by_kind,
        "machines_without_electricity_meter": list(result.unmetered),
        "gaps": [_gap_dict(g, zone) for g in listed],
        "gaps_not_listed": len(result.gaps) - len(listed),
    }


def describe_completeness(result: ProcessCompleteness, zone: ZoneInfo, gaps: int = 3) -> str:
    """One line: the process, its hours with data against its operating hours, its biggest gaps."""
    if result.share is None:
        return f"process {result.process!r}: completeness not measurable: {NOT_MEASURED}"
    text = (
        f"process {result.process!r}: {result.hours_with_data:g} of {result.operating_hours:g} operating "
        f"hours with data ({percent(result.share)})"
    )
    kinds = [k for k in result.kinds if k.share < 1]
    if len(result.kinds) > 1 and kinds:
        text += "; by meter kind: " + ", ".join(
            f"{k.kind.replace('_', ' ')} {percent(k.share)}" for k in result.kinds
        )
    biggest = sorted(result.gaps, key=lambda g: -g.missing_us)[:gaps]
    if biggest:
        listed = ", ".join(
            f"{local_text(g.start_us, zone)} to {local_text(g.end_us, zone)} ({g.hours:g} h"
            + (f", {'; '.join(g.meters)} silent" if g.meters else "")
            + ")"
            for g in biggest
        )
        more = len(result.gaps) - len(biggest)
        text += f"; biggest gaps: {listed}" + (f" and {more} more" if more else "")
    return text


def _refuse_legacy_windows(ledger: CbamLedger, year: int) -> None:
    legacy = ledger.store.legacy_windows(date(year, 1, 1), date(year + 1, 1, 1))
    if legacy:
        # Their CO2e is not the CBAM figure, and summing it with CO2 windows would mix the two.
        raise ValueError(
            f"the ledger holds {legacy} carbon window(s) of {year} written before the CO2 of "
            "fuels was kept apart from the Scope 1 CO2e: replay the year's readings with "
            "--state-dir again (the same windows replace them)"
        )


def _refuse_negative_emissions(year: PeriodFigures) -> None:
    for pid, process in year.processes.items():
        if process.direct_t < 0:
            # A mass balance whose outputs carry more carbon than its inputs: a carbon content
            # or a meter is wrong, and a negative figure must not be signed.
            raise ValueError(
                f"process {pid!r}: direct emissions of {year.label} are {process.direct_t:.3f} t, below "
                "zero: its mass balance has more carbon out than in; check the streams' carbon "
                "contents and meters (operator report: not written)"
            )


def write_report(
    plant: PlantModel,
    spec: CbamSpec,
    state_dir: Path,
    year: int,
    out: Path,
    on_step: Callable[[str], None] = lambda _: None,
    *,
    min_completeness: float | None = None,
    allow_partial: bool = False,
) -> ReportFiles:
    """Compute the year's figures from the ledger in ``state_dir`` and write the report to ``out``.

    ``on_step`` hears what is being done as each long step starts (for a progress display).
    ``min_completeness`` (default: the plant file's ``cbam.min_data_completeness``) is the share of
    each process's operating hours that must have data; under it the report is refused, unless
    ``allow_partial``, and then the summary says it is partial. Nothing is written when refused.

    Raises:
        IncompleteData: a process is under the threshold (or cannot be measured) and not
            ``allow_partial``; the message names each, its completeness and its biggest gaps.
        ValueError: ``year`` is before 2026 (see :func:`streams.cbam.require_definitive_year`), or
            the key or the ledger cannot be read.
    """
    require_definitive_year(year)
    assert plant.cbam is not None  # spec was built from it
    threshold = plant.cbam.min_data_completeness if min_completeness is None else min_completeness
    zone = ZoneInfo(spec.timezone)
    ledger = CbamLedger(spec, state_dir)
    try:
        on_step("reading the ledger")
        _refuse_legacy_windows(ledger, year)
        completeness = year_completeness(plant, spec, ledger, year)
        under = [c for c in completeness.values() if not c.meets(threshold)]
        if under and not allow_partial:
            listing = "\n".join(f"  {describe_completeness(c, zone)}" for c in under)
            raise IncompleteData(
                f"{year}: data under the completeness threshold of {percent(threshold)} "
                f"(cbam.min_data_completeness, --min-completeness):\n{listing}\n"
                "gaps are not filled; to sign a summary marked partial anyway, give --allow-partial"
            )
        data_statement = completeness_statement(completeness, threshold, allow_partial)
        periods = ledger.periods(year)
        _refuse_negative_emissions(periods[0])
        first, after = date(year, 1, 1), date(year + 1, 1, 1)
        totals = ledger.machine_totals(first, after)
        files: dict[str, str] = {}
        evidence: dict[str, Any] = {}
        for pid in spec.processes:
            on_step(f"evidence of process {pid}")
            lines = list(ledger.store.evidence(spec.evidence_machines(pid), first, after))
            name = f"evidence/{pid}-{year}.jsonl"
            files[name] = _write(out / name, "".join(line + "\n" for line in lines).encode())
            evidence[f"process:{pid}:{year}"] = {
                "file": name,
                "sha256": files[name],
                "window_points": len(lines),
            }
    finally:
        ledger.close()
    factors = factor_table(spec, year, _fuel_factors(plant, spec))
    files["evidence/factors.json"] = _write(out / "evidence/factors.json", _json_bytes(factors))
    evidence["factors"] = {"file": "evidence/factors.json", "sha256": files["evidence/factors.json"]}
    on_step("summary and operator report")
    year_figures = periods[0]
    summary = build_summary(spec, year_figures, completeness, data_statement)
    files[SUMMARY_FILE] = _write(out / SUMMARY_FILE, _json_bytes(summary.model_dump(mode="json")))
    files["summary.xlsx"] = _write(out / "summary.xlsx", summary_workbook(summary))
    report = build_operator_report(
        spec, periods, {m: asdict(t) for m, t in sorted(totals.items())}, factors, evidence
    )
    report["data_completeness"] = {
        "threshold": threshold,
        "partial": data_statement.partial,
        "statement": data_statement.statement,
        "rule": "operating hours from each machine's calendar; data: windows whose meters covered part "
        "of them (electricity: energy coverage; source streams, production and transfers: the "
        "counter's count_coverage; fuels: fuel_coverage > 0); per kind of meter, the overall share "
        "the lowest; gaps are not filled",
        "processes": {pid: _completeness_dict(c, zone) for pid, c in completeness.items()},
    }
    files["operator-report.json"] = _write(out / "operator-report.json", _json_bytes(report))
    figures = {
        f"good:{gid}:{year}": [f"process:{g.process}:{year}", "factors"]
        + [f"process:{spec.goods[u.ref].process}:{year}" for u in g.precursors if u.kind == "good"]
        for gid, g in spec.goods.items()
    }
    manifest = {
        "format": "plantstream-cbam-manifest/1",
        "installation": spec.installation.id,
        "reporting_year": year,
        "evidence_sets": evidence,
        "figures": figures,
        "documents": {name: files[name] for name in ("operator-report.json", "summary.xlsx")},
    }
    files[MANIFEST_FILE] = _write(out / MANIFEST_FILE, _json_bytes(manifest))
    on_step("signing")
    key = operator_key(state_dir)
    public = key.public_key()
    signed = {SUMMARY_FILE: files[SUMMARY_FILE], MANIFEST_FILE: files[MANIFEST_FILE]}
    signature = {
        "algorithm": "Ed25519",
        "public_key_sha256": _digest(_public_pem(public)),
        "signed_sha256": signed,
        "signature": base64.b64encode(key.sign(_signed_message(signed))).decode(),
    }
    files[SIGNATURE_FILE] = _write(out / SIGNATURE_FILE, _json_bytes(signature))
    files[PUBLIC_KEY_FILE] = _write(out / PUBLIC_KEY_FILE, _public_pem(public))
    return ReportFiles(out, summary, periods, files, completeness)


def _verification_text(summary: CbamSummary) -> str:
    v = summary.verification
    if not v.verified:
        return "not verified: " + v.null_reasons.get("statement_reference", "")
    accreditation = f" ({v.accreditation})" if v.accreditation else ""
    return f"{v.statement_reference}, by {v.verifier}{accreditation}"


def _carbon_price_text(summary: CbamSummary) -> str:
    if not summary.carbon_prices_paid:
        return "none declared"
    return "; ".join(
        f"{price.amount:g} {price.currency}, {price.instrument}, for CN {', '.join(price.cn_codes)}"
        + (f" (rebate: {price.rebate})" if price.rebate else "")
        for price in summary.carbon_prices_paid
    )


def summary_workbook(summary: CbamSummary) -> bytes:
    """The summary as an .xlsx laid out like the communication template's summary sheet.

    Sheet ``Summary_Communication`` (the tab name importers' tools look for; [CBAM-TPL]):
    installation name, city, country and the reporting period on top, then one row per product:
    production process, aggregated good type, product name, CN code, SEE direct, SEE indirect,
    share of defaults, route, as the template has them; then SEE total, the SEE counted under
    Art. 7(1) and the rule that says which, and why an empty figure is empty.
    ``Summary_Processes`` lists the processes, their emissions and their data completeness
    (overall and per kind of meter).
    """
    # Here, not at the top: openpyxl is about 15 MiB of a running pipeline's memory (issue 18),
    # and only a report writes a workbook.
    from openpyxl import Workbook  # noqa: PLC0415
    from openpyxl.styles import Font  # noqa: PLC0415

    book = Workbook()
    sheet = book.active
    sheet.title = "Summary_Communication"
    bold = Font(bold=True)
    inst = summary.installation
    head = [
        ("Installation name", inst.name),
        ("City", inst.city or ""),
        ("Country", inst.country),
        ("UN/LOCODE", inst.unlocode or ""),
        ("Operator", summary.operator.name),
        ("Reporting period start", summary.reporting_period.start.isoformat()),
        ("Reporting period end", summary.reporting_period.end.isoformat()),
        ("Verification statement", _verification_text(summary)),
        ("Carbon price paid in the country of origin", _carbon_price_text(summary)),
    ]
    for row, (label, text) in enumerate(head, start=1):
        sheet.cell(row=row, column=1, value=label).font = bold
        sheet.cell(row=row, column=2, value=text)
    columns = (
        "Production process",
        "Aggregated good type",
        "Product name",
        "CN code",
        "SEE direct (tCO2e/t)",
        "SEE indirect (tCO2e/t)",
        "Share of default values",
        "Route",
        "SEE total (tCO2e/t)",
        "SEE counted, Art. 7(1) (tCO2e/t)",
        "Share of default values in SEE counted",
        "Counted under Art. 7(1)",
        "Qualifying parameters",
        "Qualifying parameters not declared",
        "Why a figure is empty",
    )
    top = len(head) + 2
    for col, title in enumerate(columns, start=1):
        sheet.cell(row=top, column=col, value=title).font = bold
    for row, good in enumerate(summary.goods, start=top + 1):
        values: tuple[str | float | None, ...] = (
            good.production_process,
            good.goods_category,
            good.name,
            good.cn_code,
            good.see_direct,
            good.see_indirect,
            good.default_share_total,
            good.route,
            good.see_total,
            good.see_cbam,
            good.default_share_cbam,
            good.see_cbam_rule,
            "; ".join(f"{name}: {value}" for name, value in good.qualifying_parameters.items()),
            ", ".join(good.qualifying_parameters_not_declared),
            "; ".join(f"{name}: {why}" for name, why in good.null_reasons.items()),
        )
        for col, value in enumerate(values, start=1):
            sheet.cell(row=row, column=col, value=value)
    processes = book.create_sheet("Summary_Processes")
    titles = (
        "Process",
        "Route",
        "Goods categories",
        "CN codes",
        "Direct emissions (t)",
        "Indirect emissions (t)",
        "Indirect emissions counted, Art. 7(1) (t)",
        "Data completeness",
        "Data completeness per kind of meter",
    )
    for col, title in enumerate(titles, start=1):
        processes.cell(row=1, column=col, value=title).font = bold
    for row, proc in enumerate(summary.processes, start=2):
        values2: tuple[str | float | None, ...] = (
            proc.name,
            proc.route,
            ", ".join(proc.goods_categories),
            ", ".join(proc.cn_codes),
            proc.direct_emissions_t,
            proc.indirect_emissions_t,
            proc.indirect_emissions_counted_t,
            proc.data_completeness.share,
            ", ".join(
                f"{k.kind.replace('_', ' ')} {percent(k.share)}" for k in proc.data_completeness.by_meter_kind
            ),
        )
        for col, value in enumerate(values2, start=1):
            processes.cell(row=row, column=col, value=value)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------------


@dataclass
class VerifyResult:
    """What ``verify`` found: problems (any makes it fail), notes, and what the summary declares.

    ``figures`` says, per good, which SEE counts under Art. 7(1); ``warnings`` what the reader must
    know before relying on the figures (a summary signed from partial data); neither fails.
    """

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.problems


# Each figure is rounded to 3 decimals on its own, so a sum may differ from its rounded parts by 1e-3.
_SUM_TOLERANCE = 0.0015


def _check_sum(where: str, name: str, value: float | None, parts: tuple[float | None, ...]) -> str | None:
    if value is None or any(part is None for part in parts):
        return None
    expected = sum(part or 0.0 for part in parts)
    if abs(value - expected) > _SUM_TOLERANCE:
        return f"{SUMMARY_FILE}: {where}: {name} is {value} but its parts add up to {round(expected, 3)}"
    return None


def _check_summary(path: Path, result: VerifyResult) -> None:
    """Check the signed summary against its schema and its own arithmetic; say which SEE counts."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        result.problems.append(f"{SUMMARY_FILE}: cannot be read as JSON ({exc})")
        return
    if not isinstance(data, dict) or data.get("format") != SUMMARY_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        result.notes.append(
            f"{SUMMARY_FILE}: format {found!r}, not {SUMMARY_FORMAT}: its figures were not checked"
        )
        return
    try:
        summary = CbamSummary.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        result.problems.append(
            f"{SUMMARY_FILE}: does not follow the summary schema ({exc.error_count()} error(s)); "
            f"first at {where}: {first['msg']}"
        )
        return
    for good in summary.goods:
        where = f"good {good.cn_code} ({good.name})"
        for problem in (
            _check_sum(where, "see_total", good.see_total, (good.see_direct, good.see_indirect)),
            _check_sum(where, "see_cbam", good.see_cbam, (good.see_direct, good.see_indirect_counted)),
        ):
            if problem:
                result.problems.append(problem)
        counted = "-" if good.see_cbam is None else f"{good.see_cbam:.3f}"
        result.figures.append(
            f"{where}: SEE counted {counted} t CO2e/t: {good.see_cbam_rule}; direct "
            f"{good.see_direct}, indirect {good.see_indirect}, total {good.see_total}; data completeness "
            f"{'-' if good.data_completeness is None else percent(good.data_completeness)}"
        )
    if summary.data_completeness.partial:
        result.warnings.append(f"{SUMMARY_FILE}: {summary.data_completeness.statement}")
    result.checked.append(f"{SUMMARY_FILE} (schema and sums)")


def verify_report(
    folder: Path, public_key: Path | None = None, require_evidence: bool = False
) -> VerifyResult:
    """Check a report folder: the signature over summary and manifest, then the manifest's digests.

    Args:
        folder: the report folder.
        public_key: the operator's public key obtained independently; default: the one in the folder
            (which proves integrity, not who signed).
        require_evidence: a verifier's check: evidence sets missing from the folder are failures.
    """
    result = VerifyResult()
    try:
        signature = json.loads((folder / SIGNATURE_FILE).read_text(encoding="utf-8"))
        signed: dict[str, str] = signature["signed_sha256"]
        raw_signature = base64.b64decode(signature["signature"], validate=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"{SIGNATURE_FILE}: cannot be read as a plantstream signature ({exc})")
        return result
    key_path = public_key or folder / PUBLIC_KEY_FILE
    try:
        loaded = serialization.load_pem_public_key(key_path.read_bytes())
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
    except (OSError, ValueError) as exc:
        result.problems.append(f"{key_path.name}: cannot load the operator's public key ({exc})")
        return result
    if public_key is None:
        result.notes.append(
            f"public key taken from the folder ({PUBLIC_KEY_FILE}, SHA-256 "
            f"{_digest(_public_pem(loaded))[:16]}…): compare it with the operator's published key"
        )
    for name in (SUMMARY_FILE, MANIFEST_FILE):
        expected = signed.get(name)
        try:
            actual = _digest((folder / name).read_bytes())
        except OSError as exc:
            result.problems.append(f"{name}: missing or unreadable ({exc.strerror})")
            continue
        if expected != actual:
            result.problems.append(
                f"{name}: SHA-256 is {actual} but the signature covers {expected}: the file was changed "
                "after signing"
            )
        else:
            result.checked.append(name)
    try:
        loaded.verify(raw_signature, _signed_message(signed))
        result.checked.append(SIGNATURE_FILE)
    except InvalidSignature:
        result.problems.append(
            f"{SIGNATURE_FILE}: the Ed25519 signature does not match the signed digests under this public key"
        )
    if result.problems:
        return result
    _check_summary(folder / SUMMARY_FILE, result)
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    listed = [(entry["file"], entry["sha256"]) for entry in manifest.get("evidence_sets", {}).values()]
    listed += list(manifest.get("documents", {}).items())
    for name, expected in listed:
        path = folder / name
        if not path.exists():
            message = f"{name}: not in this folder, its digest was not checked"
            (result.problems if require_evidence else result.notes).append(message)
            continue
        actual = _digest(path.read_bytes())
        if actual != expected:
            result.problems.append(f"{name}: SHA-256 is {actual} but {MANIFEST_FILE} lists {expected}")
        else:
            result.checked.append(name)
    return result
