"""The roll-up stage of ``plantstream process`` without a broker: machine windows in, roll-ups out.

The machine engines (``MachineStates``) and the stage (``RollupStates``) are driven as the
worker drives them, batch by batch, with the windows messages handed over in between; what comes
out must be what one embedded engine of the whole plant emits for the same readings, however the
machines' partitions are skewed against each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from support import M3_FROM, ROLLUP_PLANT, rollup_shift

from plantstream.plant import parse_plant
from plantstream.records import Point, Reading
from runtimes.kafka.batches import partition_of
from runtimes.kafka.calculate import MachineStates
from runtimes.kafka.rollup import RollupStates
from streams.config import EngineSpec, build_spec
from streams.engine import Engine

ROOT = Path(__file__).resolve().parents[3]
READINGS = rollup_shift((ROOT / "examples" / "minimal-shift.jsonl").read_text().splitlines())
Identity = tuple[str, str, str]


def spec() -> EngineSpec:
    return build_spec(parse_plant(ROLLUP_PLANT).model)


def identity(p: Point) -> Identity:
    return (p.measurement, json.dumps(p.tags, sort_keys=True), p.time.isoformat())


def last_per_identity(points: list[Point]) -> dict[Identity, dict]:
    return {identity(p): p.fields for p in points if p.measurement != "reading"}


def embedded() -> list[Point]:
    """What one engine of the whole plant emits for the readings as a stream (no flush)."""
    engine = Engine(spec())
    for line in READINGS:
        engine.push(Reading.from_json(line))
    return engine.take_points()


class Worker:
    """The machine engines and the roll-up stage, driven batch by batch as ``process`` drives them."""

    def __init__(self) -> None:
        self.machines = MachineStates(spec())
        self.stage = RollupStates(spec())
        self.points: list[Point] = []
        self.windows: list[tuple[bytes, bytes]] = []
        self.delivered = 0
        self.stale = 0

    def readings(self, records: list[tuple[int, str]], partition_machines: list[str]) -> None:
        """One batch of one readings partition; then its windows messages, as the worker sends them."""
        touched, newest = [], None
        for offset, line in records:
            machine = json.loads(line)["machine"]
            outcome = self.machines.take(machine.encode(), line.encode(), offset, f"r@{offset}")
            assert outcome.dead_letter is None
            self.points += outcome.points
            touched.append(machine)
            newest = outcome.ts if newest is None else max(newest, outcome.ts or newest)
        messages = [self.machines.windows(m) for m in dict.fromkeys(touched)]
        assert newest is not None
        until = newest - self.machines.spec.allowed_lateness_us
        messages += self.machines.silences(partition_machines, until)
        self.windows += [(site.encode(), value) for site, value in filter(None, messages)]

    def roll_up(self) -> None:
        """The stage takes every windows message not taken yet (one site: one windows partition)."""
        for offset in range(self.delivered, len(self.windows)):
            key, value = self.windows[offset]
            outcome = self.stage.take(key, value, offset, f"w@{offset}")
            assert outcome.dead_letter is None, outcome.dead_letter
            self.points += outcome.points
            self.stale += outcome.stale
        self.delivered = len(self.windows)


def rollups(points: dict[Identity, dict]) -> dict[Identity, dict]:
    return {key: fields for key, fields in points.items() if '"machine"' not in key[1]}


def test_one_partition_per_machine_each_far_behind_the_last_gives_the_embedded_roll_ups() -> None:
    worker = Worker()
    for machine in ("m1", "m2", "m3"):  # m1's whole shift first, then m2's, then m3's
        own = [(o, line) for o, line in enumerate(READINGS) if json.loads(line)["machine"] == machine]
        for i in range(0, len(own), 500):
            worker.readings(own[i : i + 500], [machine])
            worker.roll_up()
    expected = last_per_identity(embedded())
    got = last_per_identity(worker.points)
    assert got == expected
    assert len(rollups(got)) > 2 * 3 * 400, "line and site: oee, energy, carbon for most minutes"
    # Every roll-up was emitted once: none had to be corrected for a machine that came late.
    assert all(fields["revision"] == 0 for fields in rollups(got).values())
    site = {key[2][11:16]: f for key, f in rollups(got).items() if key[0] == "oee" and '"line"' not in key[1]}
    assert (site["09:29"]["machines"], site["09:30"]["machines"], site["15:00"]["machines"]) == (2, 3, 3)
    assert M3_FROM == "2026-03-02T09:30:30Z"


def test_one_partition_of_every_machine_tells_the_stage_a_machine_without_data_is_silent() -> None:
    worker = Worker()
    records = list(enumerate(READINGS))
    for i in range(0, len(records), 300):
        worker.readings(records[i : i + 300], ["m1", "m2", "m3"])
        worker.roll_up()
    assert last_per_identity(worker.points) == last_per_identity(embedded())
    silences = [orjson.loads(v) for _, v in worker.windows if b"silent_until" in v]
    assert silences, "m3 has no data before 09:30:30: its partition said so"
    assert {s["machine"] for s in silences} == {"m3"}


def test_a_restarted_stage_skips_what_its_state_holds_and_repeated_windows_change_nothing() -> None:
    whole = Worker()
    for i in range(0, len(READINGS), 400):
        whole.readings(list(enumerate(READINGS))[i : i + 400], ["m1", "m2", "m3"])
    whole.roll_up()
    messages = whole.windows
    half = len(messages) // 2
    first = Worker()
    first.windows = messages[:half]
    first.roll_up()
    saved = first.stage.state("demo")
    # The restarted stage goes on from the saved state; the records up to it come again
    # (redelivered after a crash before the commit) and are skipped by their offsets; then a
    # machine worker that repeated a batch sends some of its windows again, at new offsets.
    second = Worker()
    assert second.stage.load("demo", saved) == half - 1
    second.windows = messages + messages[half - 40 : half]
    redelivered = [second.stage.take(k, v, o, "w") for o, (k, v) in enumerate(messages[:half])]
    assert all(o.skipped and not o.points for o in redelivered)
    second.delivered = half
    second.roll_up()
    got = last_per_identity(first.points + second.points)
    assert got == rollups(last_per_identity(whole.points))
    assert got == rollups(last_per_identity(embedded()))
    # The repeats emitted nothing: their windows' roll-ups were emitted, or forgotten past the
    # horizon (not started again with one machine); each roll-up identity was written once.
    assert second.stale > 0
    emitted = [identity(p) for p in first.points + second.points if "machine" not in p.tags]
    assert len(emitted) == len(set(emitted))


def test_each_bad_windows_record_becomes_one_dead_letter_with_its_reason() -> None:
    stage = RollupStates(spec())
    good = orjson.dumps({"machine": "m1", "closed_until": 0, "results": []})
    cases = {
        "malformed": (b"demo", b'{"machine": "m1"'),
        "unknown_machine": (b"demo", b'{"machine": "m9", "closed_until": 0, "results": []}'),
        "wrong_key": (b"other", good),
    }
    for offset, (reason, (key, value)) in enumerate(cases.items()):
        outcome = stage.take(key, value, offset, f"w[0]@{offset}")
        assert outcome.dead_letter is not None, reason
        assert (outcome.dead_letter.reason, outcome.dead_letter.where) == (reason, f"w[0]@{offset}")
        assert outcome.dead_letter.source == "rollup"
    assert stage.take(b"demo", good, 3, "w").dead_letter is None


def test_a_saved_roll_up_state_of_another_plant_is_refused_by_name() -> None:
    stage = RollupStates(spec())
    rollups = {"rollups": [], "forgotten": []}
    saved = orjson.dumps({"version": 1, "offset": 4, "marks": {"m7": 0}, "silent": [], "rollups": rollups})
    with pytest.raises(ValueError, match="m7"):
        stage.load("demo", saved)


def test_the_worker_finds_a_machines_partition_where_the_producers_put_it() -> None:
    # The silences rest on it: a worker speaks only for the machines of the partitions it holds.
    producers = DefaultPartitioner()
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for machine in (b"m1", b"m2", b"m3", b"press-01", b"meter.2000", b"Line_7-oven"):
            assert partition_of(machine, count) == producers(machine, partitions, partitions)
