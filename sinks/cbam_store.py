"""The CBAM ledger's durable part: the closed machine windows behind every CBAM figure, in SQLite.

Kept in ``<state-dir>/cbam-ledger.sqlite``. One row per window point identity (measurement, tags,
time) of the ledger's machines: ``oee`` (good pieces), ``energy`` (kWh) and ``carbon`` (the CO2
of the fuels, kg: CBAM counts CO2, not the CO2e of combustion's CH4 and N2O) tumbling windows;
shift windows and roll-ups repeat those sums and are not kept. A corrected window (same
identity, ``revision`` + 1) replaces its row, so corrections never add up, and a window written
again after a restart with the same revision changes nothing. Each row keeps
the value the ledger uses, the SHA-256 of the point's JSON line (the link to the raw point
archive, kept small: a row is about 200 bytes) and the installation's local day.

Why SQLite rather than a JSON-lines journal with snapshots: replacing a corrected window is a
primary-key upsert, a commit is atomic and durable without a hand-made snapshot protocol, and the
sums per day and machine a report needs are one indexed query; the module ships with Python.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from plantstream.private import private_sqlite
from plantstream.records import EPOCH, Point

__all__ = ["COVERAGE_FIELDS", "LEDGER_FIELDS", "LEDGER_FILE", "CbamStore", "MachineDayRow"]

LEDGER_FILE = "cbam-ledger.sqlite"
"""The store's file name in the state directory."""

LEDGER_FIELDS = {"oee": "good_count", "energy": "kwh", "carbon": "scope1_co2_kg"}
"""Measurement -> the field the ledger takes from it (docs/points.md)."""

COVERAGE_FIELDS = {"oee": "count_coverage", "energy": "coverage", "carbon": "fuel_coverage"}
"""Measurement -> the field that says how much of the window its meters covered (docs/points.md):
the counters' for ``oee``, the electricity meter's for ``energy``, the fuel meters' for ``carbon``."""

_ONE_US = timedelta(microseconds=1)

MachineDayRow = tuple[str, str, str, float, int]
"""(local day ISO, machine, measurement, sum of the field, window count)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    machine TEXT NOT NULL,
    day TEXT NOT NULL,
    revision INTEGER NOT NULL,
    value REAL NOT NULL,
    sha256 TEXT NOT NULL,
    covered REAL,
    field TEXT,
    PRIMARY KEY (measurement, tags, time_us)
);
CREATE INDEX IF NOT EXISTS windows_by_day ON windows (day, machine);
"""

_UPSERT = """
INSERT INTO windows (measurement, tags, time_us, machine, day, revision, value, sha256, covered, field)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (measurement, tags, time_us) DO UPDATE SET
    revision = excluded.revision, value = excluded.value, sha256 = excluded.sha256, day = excluded.day,
    covered = excluded.covered, field = excluded.field
WHERE excluded.revision >= windows.revision
"""


class CbamStore:
    """The window points behind the CBAM ledger, latest revision of each identity."""

    def __init__(self, path: Path, machines: Iterable[str], timezone: str) -> None:
        """Open (or create) the store.

        Args:
            path: the SQLite file.
            machines: machines whose windows are kept (the ledger's processes').
            timezone: the installation's IANA zone: days are local days.
        """
        self.path = path
        self.machines = frozenset(machines)
        self.zone = ZoneInfo(timezone)
        self._db = sqlite3.connect(private_sqlite(path))  # owner-only, with its WAL files
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(windows)")}
        if "covered" not in columns:
            # A ledger written before coverage was kept: its windows show no data until replayed.
            self._db.execute("ALTER TABLE windows ADD COLUMN covered REAL")
        if "field" not in columns:
            # A ledger written before CO2 was kept apart: its carbon rows hold the CO2e
            # until a replay writes the same windows again; reports refuse them meanwhile.
            self._db.execute("ALTER TABLE windows ADD COLUMN field TEXT")
        self._db.commit()
        self.rows_written = 0

    def __enter__(self) -> CbamStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, points: Iterable[Point]) -> set[date]:
        """Keep the ledger's window points among ``points``; return the local days they touched.

        Nothing is durable until :meth:`commit`.
        """
        rows = []
        days: set[date] = set()
        for point in points:
            name = LEDGER_FIELDS.get(point.measurement)
            if name is None:
                continue
            tags = point.tags
            machine = tags.get("machine")
            if machine not in self.machines or tags.get("window") == "shift":
                continue
            value = point.fields.get(name, 0.0)
            revision = point.fields.get("revision", 0)
            if not isinstance(value, int | float) or not isinstance(revision, int):
                continue
            day = point.time.astimezone(self.zone).date()
            days.add(day)
            coverage = point.fields.get(COVERAGE_FIELDS[point.measurement])
            covered = float(coverage) if isinstance(coverage, int | float) else None
            rows.append(
                (
                    point.measurement,
                    orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode(),
                    (point.time - EPOCH) // _ONE_US,
                    machine,
                    day.isoformat(),
                    revision,
                    float(value),
                    hashlib.sha256(point.to_json().encode()).hexdigest(),
                    covered,
                    name,
                )
            )
        if rows:
            self._db.executemany(_UPSERT, rows)
            self.rows_written += len(rows)
        return days

    def commit(self) -> None:
        """Make everything written so far durable (one atomic transaction)."""
        self._db.commit()

    def close(self) -> None:
        """Commit and close."""
        self._db.commit()
        self._db.close()

    def machine_days(self, first: date, after: date) -> list[MachineDayRow]:
        """Sums per local day, machine and measurement for days in ``[first, after)``."""
        cursor = self._db.execute(
            "SELECT day, machine, measurement, SUM(value), COUNT(*) FROM windows "
            "WHERE day >= ? AND day < ? GROUP BY day, machine, measurement "
            "ORDER BY day, machine, measurement",
            (first.isoformat(), after.isoformat()),
        )
        return [(str(d), str(m), str(k), float(v), int(n)) for d, m, k, v, n in cursor]

    def legacy_windows(self, first: date, after: date) -> int:
        """How many ``carbon`` windows in ``[first, after)`` hold the Scope 1 CO2e, not the CO2.

        They were written before the ledger took the CO2 alone (``scope1_co2_kg``); the CO2e is
        not the CBAM figure. Replaying the same windows replaces them.
        """
        row = self._db.execute(
            "SELECT COUNT(*) FROM windows WHERE measurement = 'carbon' AND (field IS NULL OR field != ?) "
            "AND day >= ? AND day < ?",
            (LEDGER_FIELDS["carbon"], first.isoformat(), after.isoformat()),
        ).fetchone()
        return int(row[0])

    def covered_windows(
        self, machine: str, first: date, after: date, measurement: str = "energy"
    ) -> Iterator[int]:
        """Starts (µs since the epoch) of ``machine``'s windows in ``[first, after)`` with data.

        A window has data when its meter covered part of it (:data:`COVERAGE_FIELDS` > 0:
        ``energy`` for the electricity meter, ``oee`` for the counters, ``carbon`` for the fuel
        meters; docs/points.md); the engine fills silences with empty windows, so a window alone
        is not data.
        """
        cursor = self._db.execute(
            "SELECT time_us FROM windows WHERE machine = ? AND measurement = ? AND covered > 0 "
            "AND day >= ? AND day < ? ORDER BY time_us",
            (machine, measurement, first.isoformat(), after.isoformat()),
        )
        for (time_us,) in cursor:
            yield int(time_us)

    def uncovered_windows(self, machine: str, measurement: str, first: date, after: date) -> int:
        """How many of ``machine``'s ``measurement`` windows in ``[first, after)`` carry no coverage.

        For a counted machine's ``oee`` or a fuel meter's ``carbon`` windows these were written
        before the ledger kept the counters' and fuel meters' coverage: their data cannot be told
        from a silence until the same windows are replayed.
        """
        row = self._db.execute(
            "SELECT COUNT(*) FROM windows WHERE machine = ? AND measurement = ? AND covered IS NULL "
            "AND day >= ? AND day < ?",
            (machine, measurement, first.isoformat(), after.isoformat()),
        ).fetchone()
        return int(row[0])

    def evidence(self, machines: Iterable[str], first: date, after: date) -> Iterator[str]:
        """The kept windows of ``machines`` in ``[first, after)`` as JSON lines, in a stable order.

        Each line holds the window's identity (measurement, tags, time), its revision, the value
        the ledger used, for ``energy`` windows the meter's ``coverage`` (the data completeness is
        counted from it), and ``point_sha256``: the SHA-256 of the point's JSON line exactly as the
        sinks received it, which ties the line to the raw point archive (``points/*.jsonl``).
        """
        wanted = sorted(set(machines))
        marks = ",".join("?" * len(wanted))
        cursor = self._db.execute(
            "SELECT measurement, tags, time_us, day, revision, value, sha256, covered FROM windows "
            f"WHERE machine IN ({marks}) AND day >= ? AND day < ? "
            "ORDER BY machine, measurement, time_us, tags",
            (*wanted, first.isoformat(), after.isoformat()),
        )
        for measurement, tags, time_us, day, revision, value, digest, covered in cursor:
            moment = EPOCH + timedelta(microseconds=time_us)
            coverage = "" if covered is None else f',"{COVERAGE_FIELDS[measurement]}":{covered!r}'
            yield (
                f'{{"measurement":{json.dumps(measurement)},"tags":{tags},'
                f'"time":"{moment.strftime("%Y-%m-%dT%H:%M:%S")}Z","day":"{day}",'
                f'"revision":{revision},"{LEDGER_FIELDS[measurement]}":{value!r}{coverage},'
                f'"point_sha256":"{digest}"}}'
            )
