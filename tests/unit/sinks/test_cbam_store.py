"""The CBAM ledger's SQLite store: corrections replace, nothing else is kept, it survives a reopen."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

from plantstream.records import Point
from sinks.cbam_store import CbamStore

TAGS = {"site": "hcm", "line": "tubes", "machine": "mill", "window": "1h"}


def oee(good: int, revision: int, *, hour: int = 1, **tags: str) -> Point:
    return Point(
        measurement="oee",
        tags={**TAGS, **tags},
        fields={"good_count": good, "revision": revision},
        time=datetime(2026, 3, 2, hour, tzinfo=UTC),
    )


def totals(store: CbamStore) -> list[tuple[str, str, str, float, int]]:
    return store.machine_days(date(2026, 1, 1), date(2027, 1, 1))


def test_a_corrected_window_replaces_its_first_version(tmp_path: Path) -> None:
    with CbamStore(tmp_path / "l.sqlite", ["mill"], "Asia/Ho_Chi_Minh") as store:
        store.write([oee(10, 0), oee(7, 0, hour=2)])
        store.write([oee(12, 1)])  # late data corrected the 01:00 window: 12, not 10 + 12
        assert totals(store) == [("2026-03-02", "mill", "oee", 19.0, 2)]


def test_an_older_revision_never_overwrites_a_newer_one(tmp_path: Path) -> None:
    with CbamStore(tmp_path / "l.sqlite", ["mill"], "UTC") as store:
        store.write([oee(12, 1)])
        store.write([oee(10, 0)])  # written again after a restart from an older checkpoint
        assert totals(store) == [("2026-03-02", "mill", "oee", 12.0, 1)]


def test_only_the_ledgers_machine_windows_are_kept(tmp_path: Path) -> None:
    with CbamStore(tmp_path / "l.sqlite", ["mill"], "UTC") as store:
        days = store.write(
            [
                oee(10, 0, window="shift", shift="A"),  # a shift repeats its windows' sum
                oee(10, 0, machine="press"),  # not a machine of a CBAM process
                Point(
                    measurement="oee",
                    tags={"site": "hcm", "window": "1h"},
                    fields={"good_count": 3},
                    time=datetime(2026, 3, 2, 1, tzinfo=UTC),
                ),  # a roll-up
                Point(
                    measurement="reading",
                    tags=TAGS,
                    fields={"value": 1.0},
                    time=datetime(2026, 3, 2, tzinfo=UTC),
                ),
            ]
        )
        assert days == set()
        assert totals(store) == []


def test_days_are_the_installations_local_days(tmp_path: Path) -> None:
    with CbamStore(tmp_path / "l.sqlite", ["mill"], "Asia/Ho_Chi_Minh") as store:
        # 2026-03-02 17:00 UTC is 2026-03-03 00:00 in Ho Chi Minh City (UTC+7).
        assert store.write([oee(5, 0, hour=17)]) == {date(2026, 3, 3)}


def test_committed_rows_survive_a_reopen_and_keep_their_evidence(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with CbamStore(path, ["mill"], "UTC") as store:
        store.write([oee(10, 0)])
        store.commit()
    with CbamStore(path, ["mill"], "UTC") as store:
        assert totals(store) == [("2026-03-02", "mill", "oee", 10.0, 1)]
        [line] = store.evidence(["mill"], date(2026, 3, 1), date(2026, 3, 3))
        assert json.loads(line) == {
            "measurement": "oee",
            "tags": TAGS,
            "time": "2026-03-02T01:00:00Z",
            "day": "2026-03-02",
            "revision": 0,
            "good_count": 10.0,
            "point_sha256": hashlib.sha256(oee(10, 0).to_json().encode()).hexdigest(),
        }


def energy(kwh: float, coverage: float, hour: int) -> Point:
    return Point(
        measurement="energy",
        tags=TAGS,
        fields={"kwh": kwh, "coverage": coverage, "revision": 0},
        time=datetime(2026, 3, 2, hour, tzinfo=UTC),
    )


def test_windows_with_data_are_those_the_meter_covered(tmp_path: Path) -> None:
    with CbamStore(tmp_path / "l.sqlite", ["mill"], "Asia/Ho_Chi_Minh") as store:
        # 01:00 covered, 02:00 an empty window of a silence, 03:00 the increase booked after it.
        store.write([energy(10.0, 1.0, 1), energy(0.0, 0.0, 2), energy(30.0, 0.0, 3)])
        store.commit()
        starts = list(store.covered_windows("mill", date(2026, 3, 2), date(2026, 3, 3)))
        assert starts == [int(datetime(2026, 3, 2, 1, tzinfo=UTC).timestamp() * 1_000_000)]
        [line, *_] = store.evidence(["mill"], date(2026, 3, 2), date(2026, 3, 3))
        assert '"kwh":10.0,"coverage":1.0,"point_sha256":' in line


def test_a_ledger_from_before_coverage_gains_the_column_and_shows_no_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE windows (measurement TEXT NOT NULL, tags TEXT NOT NULL, time_us INTEGER NOT NULL, "
            "machine TEXT NOT NULL, day TEXT NOT NULL, revision INTEGER NOT NULL, value REAL NOT NULL, "
            "sha256 TEXT NOT NULL, PRIMARY KEY (measurement, tags, time_us))"
        )
        db.execute("INSERT INTO windows VALUES ('energy', '{}', 1, 'mill', '2026-03-02', 0, 5.0, 'x')")
    db.close()
    with CbamStore(path, ["mill"], "Asia/Ho_Chi_Minh") as store:
        assert list(store.covered_windows("mill", date(2026, 3, 2), date(2026, 3, 3))) == []
        store.write([energy(10.0, 1.0, 1)])
        store.commit()
        assert len(list(store.covered_windows("mill", date(2026, 3, 2), date(2026, 3, 3)))) == 1


def carbon(co2: float, co2e: float, revision: int = 0) -> Point:
    return Point(
        measurement="carbon",
        tags={**TAGS, "machine": "furnace"},
        fields={"scope1_co2_kg": co2, "scope1_co2e_kg": co2e, "revision": revision},
        time=datetime(2026, 3, 2, 1, tzinfo=UTC),
    )


def test_carbon_windows_keep_the_co2_not_the_scope1_co2e(tmp_path: Path) -> None:
    # 1 TJ of natural gas [IPCC06]: CO2 56 100 kg; CO2e 56 100 + 28 + 26.5 = 56 154.5 kg (AR5).
    with CbamStore(tmp_path / "l.sqlite", ["furnace"], "UTC") as store:
        store.write([carbon(56_100.0, 56_154.5)])
        assert totals(store) == [("2026-03-02", "furnace", "carbon", 56_100.0, 1)]
        assert store.legacy_windows(date(2026, 1, 1), date(2027, 1, 1)) == 0


def test_carbon_windows_of_an_older_ledger_are_counted_until_replayed(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    # A ledger as it was before CO2 was kept apart: no `field` column, carbon rows held the CO2e.
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE windows (measurement TEXT NOT NULL, tags TEXT NOT NULL, time_us INTEGER NOT NULL, "
        "machine TEXT NOT NULL, day TEXT NOT NULL, revision INTEGER NOT NULL, value REAL NOT NULL, "
        "sha256 TEXT NOT NULL, covered REAL, PRIMARY KEY (measurement, tags, time_us))"
    )
    tags = json.dumps({**TAGS, "machine": "furnace"}, sort_keys=True, separators=(",", ":"))
    time_us = int(datetime(2026, 3, 2, 1, tzinfo=UTC).timestamp() * 1_000_000)
    db.execute(
        "INSERT INTO windows VALUES ('carbon', ?, ?, 'furnace', '2026-03-02', 0, 56154.5, 'x', NULL)",
        (tags, time_us),
    )
    db.commit()
    db.close()
    year = (date(2026, 1, 1), date(2027, 1, 1))
    with CbamStore(path, ["furnace"], "UTC") as store:
        assert store.legacy_windows(*year) == 1
        store.write([carbon(56_100.0, 56_154.5)])  # the same window, replayed
        assert store.legacy_windows(*year) == 0
        assert totals(store) == [("2026-03-02", "furnace", "carbon", 56_100.0, 1)]


def counted(good: float, coverage: float | None, hour: int) -> Point:
    fields: dict[str, float | int] = {"good_count": good, "revision": 0}
    if coverage is not None:
        fields["count_coverage"] = coverage
    return Point(measurement="oee", tags=TAGS, fields=fields, time=datetime(2026, 3, 2, hour, tzinfo=UTC))


def test_a_weigh_scale_window_has_data_when_its_counter_covered_it(tmp_path: Path) -> None:
    day, after = date(2026, 3, 2), date(2026, 3, 3)
    with CbamStore(tmp_path / "l.sqlite", ["mill"], "Asia/Ho_Chi_Minh") as store:
        # 01:00 the scale reported through the hour; 02:00 it was silent (count_coverage 0).
        store.write([counted(500.0, 1.0, 1), counted(0.0, 0.0, 2)])
        store.commit()
        starts = list(store.covered_windows("mill", day, after, "oee"))
        assert starts == [int(datetime(2026, 3, 2, 1, tzinfo=UTC).timestamp() * 1_000_000)]
        assert list(store.covered_windows("mill", day, after)) == []  # no electricity meter windows
        assert store.uncovered_windows("mill", "oee", day, after) == 0
        [line, *_] = store.evidence(["mill"], day, after)
        assert '"good_count":500.0,"count_coverage":1.0,"point_sha256":' in line


def test_counter_windows_from_before_their_coverage_are_counted_for_a_clear_refusal(tmp_path: Path) -> None:
    day, after = date(2026, 3, 2), date(2026, 3, 3)
    with CbamStore(tmp_path / "l.sqlite", ["mill"], "Asia/Ho_Chi_Minh") as store:
        store.write([counted(500.0, None, 1), counted(400.0, None, 2)])  # an older engine's points
        store.commit()
        assert store.uncovered_windows("mill", "oee", day, after) == 2
        store.write([counted(500.0, 1.0, 1)])  # replayed: the same window, now with its coverage
        store.commit()
        assert store.uncovered_windows("mill", "oee", day, after) == 1
