"""``plantstream report cbam`` and ``verify``: the CBAM reports and their check."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

if TYPE_CHECKING:
    pass

from runtimes.cli.group import (
    PLANT_OPTION,
    err,
    load_or_exit,
    main,
    table_console,
)


@main.group(name="report")
def report_group() -> None:
    """Reports built from the ledgers in a state directory."""


@report_group.command(name="cbam")
@PLANT_OPTION
@click.option("--year", type=int, required=True, help="The reporting year (a calendar year, 2026 or later).")
@click.option(
    "--state-dir",
    default="plantstream-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the CBAM ledger and the operator's signing key are kept.",
)
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="The report folder (default: <state-dir>/reports/cbam-<installation>-<year>).",
)
@click.option(
    "--min-completeness",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of each process's operating hours that must have data (default: the plant file's "
    "cbam.min_data_completeness, 0.95 unless set).",
)
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Sign a summary from data under the completeness threshold; the summary says it is partial.",
)
def report_cbam_command(
    plant_path: Path,
    year: int,
    state_dir: Path,
    out_dir: Path | None,
    min_completeness: float | None,
    allow_partial: bool,
) -> None:
    """The CBAM summary (json, xlsx), operator report, manifest and signature of one year.

    Refused when a process's data covers less of its operating hours than the threshold, unless
    --allow-partial (docs/cbam.md).
    """
    from zoneinfo import ZoneInfo

    from runtimes.cbam import IncompleteData, describe_completeness, write_report
    from runtimes.progress import TerminalProgress
    from sinks.cbam_store import LEDGER_FILE
    from streams.cbam import require_definitive_year
    from streams.cbam_ledger import build_cbam_spec

    plant, _ = load_or_exit(plant_path)
    cbam_spec = build_cbam_spec(plant.model)
    if cbam_spec is None:
        err.print(f"[red]error[/red] {plant_path}: no cbam section; nothing to report")
        sys.exit(2)
    try:
        require_definitive_year(year)
    except ValueError as exc:
        err.print(f"[red]error[/red] report cbam: {exc}", soft_wrap=True)
        sys.exit(2)
    if not (state_dir / LEDGER_FILE).exists():
        err.print(
            f"[red]error[/red] no CBAM ledger in {state_dir} ({LEDGER_FILE}); run or replay with it first"
        )
        sys.exit(2)
    folder = out_dir or state_dir / "reports" / f"cbam-{cbam_spec.installation.id}-{year}"
    try:
        with TerminalProgress(err, f"report cbam {year}") as progress:

            def step(doing: str) -> None:
                progress.update(description=f"report cbam {year}: {doing}")

            result = write_report(
                plant.model,
                cbam_spec,
                state_dir,
                year,
                folder,
                on_step=step,
                min_completeness=min_completeness,
                allow_partial=allow_partial,
            )
    except IncompleteData as exc:
        err.print(f"[red]error[/red] report cbam {exc}", soft_wrap=True)
        sys.exit(1)
    except (OSError, ValueError) as exc:
        # An unreadable key or ledger, a folder that cannot be written: one line, nothing half-signed.
        err.print(f"[red]error[/red] report cbam: {exc}")
        sys.exit(1)
    console = table_console(stderr=False)
    table = Table(title=f"CBAM {year}: {cbam_spec.installation.name}", show_edge=False, pad_edge=False)
    for column in ("good", "CN", "SEE direct", "SEE indirect", "SEE total", "SEE counted", "defaults"):
        table.add_column(column)
    for good in result.summary.goods:
        share = good.default_share_cbam
        table.add_row(
            good.name,
            good.cn_code,
            *("-" if v is None else f"{v:.3f}" for v in (good.see_direct, good.see_indirect, good.see_total)),
            ("-" if good.see_cbam is None else f"{good.see_cbam:.3f}")
            + (" (direct only)" if good.direct_emissions_only else ""),
            "-" if share is None else f"{share:.1%}",
        )
    console.print(table)
    for good in result.summary.goods:
        by_reason: dict[str, list[str]] = {}
        for name, why in good.null_reasons.items():
            by_reason.setdefault(why, []).append(name)
        for why, names in by_reason.items():
            err.print(
                f"[yellow]warning[/yellow] {good.name} ({good.cn_code}): {', '.join(names)} empty: {why}",
                soft_wrap=True,
            )
    for figures in result.periods[0].goods.values():
        if figures.transfer_excess:
            err.print(
                f"[yellow]warning[/yellow] internal transfer: {figures.transfer_excess}", soft_wrap=True
            )
    zone = ZoneInfo(cbam_spec.timezone)
    for process in result.completeness.values():
        err.print(f"data: {describe_completeness(process, zone)}", soft_wrap=True)
    statement = result.summary.data_completeness
    if statement.partial:
        err.print(f"[yellow]warning[/yellow] {statement.statement}", soft_wrap=True)
    err.print(
        f"report written to {folder}: summary.json, summary.xlsx and manifest.json, summary.sig, "
        "operator-public-key.pem go to importers; operator-report.json and evidence/ to the verifier only"
    )


@main.command(name="verify")
@click.argument("folder", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The operator's public key obtained independently (default: the one in the folder).",
)
@click.option(
    "--require-evidence", is_flag=True, help="A verifier's check: every evidence set must be present."
)
def verify_command(folder: Path, public_key: Path | None, require_evidence: bool) -> None:
    """Check a CBAM report folder: signature, summary and manifest, evidence digests (exit 0 / 1)."""
    from runtimes.cbam import verify_report

    result = verify_report(folder, public_key, require_evidence)
    for name in result.checked:
        click.echo(f"ok       {name}")
    for note in result.notes:
        click.echo(f"note     {note}")
    for figure in result.figures:
        click.echo(f"figure   {figure}")
    for warning in result.warnings:
        click.echo(f"WARNING  {warning}")
    for problem in result.problems:
        err.print(f"[red]mismatch[/red] {problem}", soft_wrap=True)
    if not result.ok:
        err.print(f"{folder}: {len(result.problems)} problem(s); do not rely on this report")
        sys.exit(1)
    click.echo(f"{folder}: signature and digests verified")
