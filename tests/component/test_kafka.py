"""The kafka roles (collect, process, sink) on a real Apache Kafka broker (KRaft, one node).

Each test has its own topics and consumer groups on the session's broker. Expected points come
from the same pure engine through ``replay``, compared as :mod:`parity` says: the kafka roles
never flush at the end of input (a stream has no end), so the windows still open when the input
stops (the shift and its last minute) are left out of the comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from parity import (
    Identity,
    complete_lines,
    expected_points,
    identity,
    last_per_identity,
    sink_writes,
    written_points,
)
from services import KafkaBroker, VictoriaMetrics, expected_samples, free_port, same_samples
from support import ROLLUP_PLANT, rollup_shift

from plantstream.plant import parse_plant
from plantstream.plant.schema import InfluxDbSink, Kafka
from plantstream.records import Point
from runtimes.kafka.process import rollup_state_topic
from runtimes.kafka.sink import OutboxSink, SinkRole
from runtimes.kafka.topics import STATE_RECORD_BYTES, ensure_compacted, ensure_topics
from runtimes.plant import load_and_resolve
from sinks.influx import InfluxSink
from streams.config import build_spec

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = ROOT / "examples" / "minimal.yaml"
SHIFT = ROOT / "examples" / "minimal-shift.jsonl"
READINGS = SHIFT.read_text().splitlines()
PARITY = expected_points(MINIMAL, READINGS)
EXPECTED = PARITY.closed


# Line l1 (m1, m2) and site demo (m1, m2, m3) are rolled up: five scopes (support.ROLLUP_PLANT).
ROLLUP_READINGS = rollup_shift(READINGS)
ROLLUP_PARITY = expected_points(build_spec(parse_plant(ROLLUP_PLANT).model), ROLLUP_READINGS)
EXPECTED_ROLLUP = ROLLUP_PARITY.closed


def test_the_stream_leaves_the_shift_and_its_last_minute_open() -> None:
    # oee, losses, energy and carbon of the shift and of its last minute, per machine, line or site
    assert PARITY.still_open == 8
    assert ROLLUP_PARITY.still_open == 8 * 5


def dead_letters(state: Path) -> list[dict]:
    files = sorted((state / "deadletter").glob("*.jsonl"))
    return [json.loads(line) for file in files for line in complete_lines(file)]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


class Roles:
    """Starts ``plantstream collect|process|sink`` processes for one plant file; stops them all."""

    def __init__(self, plant: Path, logs: Path) -> None:
        exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
        assert exe, "the plantstream console script is not installed in this environment"
        self.exe = exe
        self.plant = plant
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, role: str, *args: str, name: str | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name or role}.log").open("ab")
        process = subprocess.Popen([self.exe, role, "-c", str(self.plant), *args], stdout=log, stderr=log)
        log.close()
        self.running.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.running:
            self.stop(process)


@pytest.fixture
def plant_file(tmp_path: Path, kafka: KafkaBroker) -> Callable[[int, str | None], Path]:
    """The minimal plant with a kafka section of fresh topics and groups on the test broker."""

    def write(partitions: int, plant: str | None = None) -> Path:
        run = uuid.uuid4().hex[:8]
        path = tmp_path / "plant.yaml"
        path.write_text(
            (plant or MINIMAL.read_text())
            + f"""
kafka:
  bootstrap: {kafka.bootstrap}
  topics: {{readings: t{run}.readings.v1, points: t{run}.points.v1, deadletter: t{run}.deadletter.v1,
            windows: t{run}.windows.v1}}
  partitions: {partitions}
  replication: 1
  group: g{run}
"""
        )
        return path

    return write


@pytest.fixture
def roles(plant_file: Callable[[int, str | None], Path], tmp_path: Path) -> Iterator[Callable[..., Roles]]:
    made: list[Roles] = []

    def make(partitions: int, plant: str | None = None) -> Roles:
        made.append(Roles(plant_file(partitions, plant), tmp_path))
        return made[-1]

    yield make
    for r in made:
        r.stop_all()


def settings_of(plant: Path) -> Kafka:
    plant_model, _ = load_and_resolve(plant)
    assert plant_model.model.kafka is not None
    return plant_model.model.kafka


def produce(plant: Path, records: list[tuple[bytes | None, bytes]]) -> None:
    """A test producer writing raw records to the readings topic."""
    settings = settings_of(plant)

    async def send() -> None:
        await ensure_topics(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.servers(), acks="all")
        await producer.start()
        try:
            for key, value in records:
                await producer.send(settings.topics.readings, value, key=key)
        finally:
            await producer.stop()

    asyncio.run(send())


def committed(plant: Path, group: str, topic: str | None = None) -> int:
    """Sum of the committed offsets of ``group`` (on ``topic`` only, if given)."""
    settings = settings_of(plant)

    async def ask() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.servers())
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return sum(o.offset for tp, o in offsets.items() if topic in (None, tp.topic))

    return asyncio.run(ask())


async def produce_points(settings: Kafka, minute: int) -> list[Point]:
    """Five oee points of m1, one a minute from 08:``minute``, on the points topic."""
    points = [
        Point(
            measurement="oee",
            tags={"machine": "m1"},
            fields={"oee": i / 10},
            time=f"2026-03-02T08:{minute + i:02d}:00Z",
        )
        for i in range(5)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.servers(), acks="all")
    await producer.start()
    for p in points:
        await producer.send_and_wait(settings.topics.points, p.to_json().encode(), key=b"m1")
    await producer.stop()
    return points


def as_records(lines: list[str]) -> list[tuple[bytes | None, bytes]]:
    return [(json.loads(line)["machine"].encode(), line.encode()) for line in lines]


def test_collect_process_sink_give_the_points_of_replay(roles: Callable[..., Roles], tmp_path: Path) -> None:
    r = roles(3)
    state = tmp_path / "sink"
    collect = r.start("collect", "--from-file", str(SHIFT))
    assert collect.wait(timeout=60) == 0, r.log("collect")
    assert "4497 readings" in r.log("collect")
    r.start("process")
    r.start("sink", "--state-dir", str(state))
    wait_for(lambda: len(last_per_identity(sink_writes(state))) >= len(EXPECTED), "every closed window")
    time.sleep(1)  # anything more (a window counted twice, an extra identity) would show now
    assert last_per_identity(sink_writes(state)) == EXPECTED
    raw = written_points(state)
    assert {p["tags"]["signal"] for p in raw if p["measurement"] == "reading"} == {
        "state",
        "total_count",
        "good_count",
        "reject_count",
        "power_kw",
        "energy_kwh",
    }
    assert not dead_letters(state)
    # An operator follows the points topic: JSON lines, filtered.
    topics = settings_of(r.plant).topics
    tail = subprocess.run(
        [
            *(r.exe, "tail", "--kafka", settings_of(r.plant).bootstrap, "--topics", topics.points),
            *("--from-beginning", "--measurement", "energy", "--json", "--count", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tail.returncode == 0, tail.stderr
    shown = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [p["measurement"] for p in shown] == ["energy"] * 3
    assert all(identity(p) in EXPECTED for p in shown)
    # The live table from the same topic: the shift's A, P and Q from the elements of its closed
    # minutes summed (ratios of sums, never a mean of ratios).
    minutes = [fields for (measurement, _, _), fields in EXPECTED.items() if measurement == "oee"]
    run = sum(f["run_s"] for f in minutes)
    availability = run / sum(f["planned_busy_s"] for f in minutes)
    performance = sum(f["ideal_run_s"] for f in minutes) / run
    quality = sum(f["good_count"] for f in minutes) / sum(f["total_count"] for f in minutes)
    table = subprocess.run(
        [
            *(r.exe, "tail", "--kafka", settings_of(r.plant).bootstrap, "--topics", topics.points),
            *("--from-beginning", "--measurement", "oee", "--table", "--count", str(len(minutes))),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert table.returncode == 0, table.stderr
    [row] = [line for line in table.stdout.splitlines() if "demo/l1/m1" in line]
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[3] == "-"  # the stop reason: not stopped (no plant file, no state known)
    assert cells[5:10] == [
        f"{availability * performance * quality:.1%}",
        f"{availability:.1%}",
        f"{performance:.1%}",
        f"{quality:.1%}",
        "-",  # no power reading followed and no energy point: no kW
    ], row


def test_tail_names_what_it_cannot_follow(kafka: KafkaBroker) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    result = subprocess.run(
        [exe, "tail", "--kafka", kafka.bootstrap, "--topics", "no.such.topic"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "topic no.such.topic does not exist" in result.stderr


def test_a_poison_record_is_dead_lettered_with_its_reason_and_the_rest_is_processed(
    roles: Callable[..., Roles], tmp_path: Path
) -> None:
    r = roles(1)
    state = tmp_path / "sink"
    half = len(READINGS) // 2
    poison = [
        (b"m1", b'{"ts": "2026-03-02T10:00:00Z", "machine": "m1", "signal": '),  # cut short
        (b"m9", b'{"ts": "2026-03-02T10:00:00Z", "machine": "m9", "signal": "state", "value": "running"}'),
        (b"m1", b"\xff\xfe not even text"),
        # A PLC clock a year ahead: refused against the record's timestamp (when collect sent it).
        (b"m1", b'{"ts": "2027-12-02T10:00:00Z", "machine": "m1", "signal": "state", "value": "running"}'),
    ]
    produce(r.plant, [*as_records(READINGS[:half]), *poison, *as_records(READINGS[half:])])
    r.start("process")
    r.start("sink", "--state-dir", str(state))
    wait_for(lambda: len(last_per_identity(sink_writes(state))) >= len(EXPECTED), "every closed window")
    wait_for(lambda: len(dead_letters(state)) >= 4, "four dead letters")
    assert last_per_identity(sink_writes(state)) == EXPECTED
    topic = settings_of(r.plant).topics.readings
    letters = {letter["where"]: letter for letter in dead_letters(state)}
    assert {where: (d["reason"], d["source"]) for where, d in letters.items()} == {
        f"{topic}[0]@{half}": ("malformed", "process"),
        f"{topic}[0]@{half + 1}": ("unknown_machine", "process"),
        f"{topic}[0]@{half + 2}": ("malformed", "process"),
        f"{topic}[0]@{half + 3}": ("future", "process"),
    }
    assert letters[f"{topic}[0]@{half}"]["raw"] == poison[0][1].decode()
    assert "not in the plant model" in letters[f"{topic}[0]@{half + 1}"]["error"]
    assert letters[f"{topic}[0]@{half + 2}"]["raw"].startswith("\\xff\\xfe not even text")
    # The log says each (reason, source) once at once; the two malformed records are one line.
    said = [line for line in r.log("process").splitlines() if "dead letter from source process" in line]
    assert [line.split("dead letter from ")[1].split(",")[1].strip() for line in said] == [
        "reason malformed",
        "reason unknown_machine",
        "reason future",
    ], said


def test_a_worker_killed_mid_run_and_restarted_loses_no_window_and_counts_none_twice(
    roles: Callable[..., Roles], tmp_path: Path
) -> None:
    r = roles(3)
    state = tmp_path / "sink"
    r.start("sink", "--state-dir", str(state))
    # Save points every second (5 s by default), so there is one to go on from well before the end.
    first = r.start("process", "--save-every", "1", name="process-1")
    # Mid-run by construction, whatever the machine's load: the first worker only ever sees the
    # first half of the shift, and the second half is sent after its kill.
    records = as_records(READINGS)
    half = len(records) // 2
    produce(r.plant, records[:half])
    group = settings_of(r.plant).group
    # Killed once it has saved a state and committed, so the restart has something to go on from.
    wait_for(lambda: len(sink_writes(state)) >= 100 and committed(r.plant, group) > 0, "a first commit")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = len(last_per_identity(sink_writes(state)))
    assert at_kill < len(EXPECTED), "the first half of the shift cannot close every window"
    r.start("process", name="process-2")
    produce(r.plant, records[half:])
    wait_for(lambda: len(last_per_identity(sink_writes(state))) >= len(EXPECTED), "every closed window")
    time.sleep(2)
    writes = sink_writes(state)
    assert last_per_identity(writes) == EXPECTED
    # A window written again after the restart is the same window: same revision, same numbers.
    versions: dict[tuple[Identity, object], set[str]] = {}
    for p in writes:
        versions.setdefault((identity(p), p["fields"].get("revision")), set()).add(
            json.dumps(p["fields"], sort_keys=True)
        )
    assert all(len(v) == 1 for v in versions.values())
    # The windows may all have been made by the first worker before its kill (the sink catching up
    # on them after it): the restarted one takes the partitions over in its own time.
    # It goes on from m1's saved state.
    taken_over = ("process: assigned readings partitions [0, 1, 2]", "restored 1 machine state(s)")
    wait_for(lambda: all(line in r.log("process-2") for line in taken_over), "the second worker's takeover")


def rollup_identities(expected: dict[Identity, dict]) -> dict[Identity, dict]:
    """The line and site points among ``expected`` (no machine tag)."""
    return {key: fields for key, fields in expected.items() if '"machine"' not in key[1]}


def test_collect_process_sink_give_the_line_and_site_roll_ups_of_replay(
    roles: Callable[..., Roles], tmp_path: Path
) -> None:
    r = roles(3, ROLLUP_PLANT)
    state = tmp_path / "sink"
    readings = tmp_path / "rollup-shift.jsonl"
    readings.write_text("\n".join(ROLLUP_READINGS) + "\n")
    collect = r.start("collect", "--from-file", str(readings))
    assert collect.wait(timeout=120) == 0, r.log("collect")
    r.start("process")
    r.start("sink", "--state-dir", str(state))
    wait_for(
        lambda: len(last_per_identity(sink_writes(state))) >= len(EXPECTED_ROLLUP), "every closed window"
    )
    time.sleep(1)  # anything more (a roll-up counted twice, an extra identity) would show now
    got = last_per_identity(sink_writes(state))
    assert got == EXPECTED_ROLLUP
    rolled = rollup_identities(got)
    # Line l1 and site demo: oee, losses, energy and carbon of every minute closed, 08:00 to 15:58.
    assert len(rolled) == 2 * 4 * 479
    site = {key[2][11:16]: f for key, f in rolled.items() if key[0] == "oee" and '"line"' not in key[1]}
    assert (site["09:29"]["machines"], site["09:31"]["machines"]) == (2, 3), "m3 comes at 09:30:30"
    assert not dead_letters(state)


def test_a_worker_killed_mid_run_and_restarted_loses_no_roll_up_and_counts_none_twice(
    roles: Callable[..., Roles], tmp_path: Path
) -> None:
    r = roles(3, ROLLUP_PLANT)
    state = tmp_path / "sink"
    r.start("sink", "--state-dir", str(state))
    first = r.start("process", "--save-every", "1", name="process-1")  # save points every second
    # Mid-run by construction, as in the machine test above: the first worker sees only the first
    # half of the shift (sorted by time), and the second half is sent after its kill.
    records = as_records(ROLLUP_READINGS)
    half = len(records) // 2
    produce(r.plant, records[:half])
    settings = settings_of(r.plant)

    def rolled_up_and_saved() -> bool:
        written = rollup_identities(last_per_identity(sink_writes(state)))
        return len(written) >= 60 and committed(r.plant, settings.group, settings.topics.windows) > 0

    # Killed once the roll-up stage has written points and committed, so it has a state to go on from.
    wait_for(rolled_up_and_saved, "a first roll-up commit")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = rollup_identities(last_per_identity(sink_writes(state)))
    assert len(at_kill) < len(rollup_identities(EXPECTED_ROLLUP)), "the first half cannot close every window"
    r.start("process", name="process-2")
    produce(r.plant, records[half:])
    wait_for(
        lambda: len(last_per_identity(sink_writes(state))) >= len(EXPECTED_ROLLUP), "every closed window"
    )
    time.sleep(2)
    writes = sink_writes(state)
    assert last_per_identity(writes) == EXPECTED_ROLLUP
    # A roll-up written again after the restart is the same roll-up: same revision, same numbers.
    versions: dict[tuple[Identity, object], set[str]] = {}
    for p in writes:
        versions.setdefault((identity(p), p["fields"].get("revision")), set()).add(
            json.dumps(p["fields"], sort_keys=True)
        )
    assert all(len(v) == 1 for v in versions.values())
    assert "restored 1 site roll-up state(s)" in r.log("process-2"), "the stage went on from its state"


def test_two_workers_share_the_partitions(roles: Callable[..., Roles], tmp_path: Path) -> None:
    r = roles(4)
    state = tmp_path / "sink"
    one = r.start("process", name="process-a")
    wait_for(lambda: "assigned readings partitions [0, 1, 2, 3]" in r.log("process-a"), "worker a alone")
    two = r.start("process", name="process-b")

    def last_assignment(name: str) -> list[int] | None:
        lines = [x for x in r.log(name).splitlines() if x.startswith("process: assigned readings partitions")]
        return json.loads(lines[-1].split("partitions ", 1)[1]) if lines else None

    def shared() -> bool:
        a, b = last_assignment("process-a"), last_assignment("process-b")
        return bool(a) and bool(b) and sorted(a + b) == [0, 1, 2, 3]  # type: ignore[operator]

    wait_for(shared, "both workers to hold partitions")
    produce(r.plant, as_records(READINGS))
    r.start("sink", "--state-dir", str(state))
    wait_for(lambda: len(last_per_identity(sink_writes(state))) >= len(EXPECTED), "every closed window")
    assert last_per_identity(sink_writes(state)) == EXPECTED
    assert r.stop(one) == 0, r.log("process-a")
    assert r.stop(two) == 0, r.log("process-b")


def test_two_workers_share_the_machines_and_the_roll_ups(roles: Callable[..., Roles], tmp_path: Path) -> None:
    r = roles(4, ROLLUP_PLANT)  # m1 and m3 in readings partition 0, m2 in 3 (process.partition_of)
    state = tmp_path / "sink"
    one = r.start("process", name="process-a")
    wait_for(lambda: "assigned windows partitions [0, 1, 2, 3]" in r.log("process-a"), "worker a alone")
    two = r.start("process", name="process-b")

    def both_hold_windows() -> bool:
        held = [
            [x for x in r.log(name).splitlines() if x.startswith("process: assigned windows partitions")]
            for name in ("process-a", "process-b")
        ]
        return all(held) and held[0][-1] != "process: assigned windows partitions [0, 1, 2, 3]"

    wait_for(both_hold_windows, "both workers to hold partitions")
    produce(r.plant, as_records(ROLLUP_READINGS))
    r.start("sink", "--state-dir", str(state))
    wait_for(lambda: len(last_per_identity(sink_writes(state))) >= len(EXPECTED_ROLLUP), "every window")
    time.sleep(1)
    assert last_per_identity(sink_writes(state)) == EXPECTED_ROLLUP
    assert r.stop(one) == 0, r.log("process-a")
    assert r.stop(two) == 0, r.log("process-b")


class FlakySink:
    """Fails its first writes, like a database that is down; then reports the committed offsets."""

    name = "flaky"

    def __init__(self, settings: Kafka, group: str, failures: int) -> None:
        self.settings, self.group, self.failures = settings, group, failures
        self.calls = 0
        self.written: list[Point] = []
        self.committed_during_write: dict | None = None

    async def write(self, points: list[Point]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("the database is down")
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.servers())
        await admin.start()
        try:
            self.committed_during_write = await admin.list_consumer_group_offsets(self.group)
        finally:
            await admin.close()
        self.written += points

    async def dead_letter(self, letters: list) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_the_sink_commits_only_after_the_write_and_retries_a_failing_sink(
    plant_file: Callable[..., Path],
) -> None:
    settings = settings_of(plant_file(1))
    await ensure_topics(settings)
    points = await produce_points(settings, minute=0)
    flaky = FlakySink(settings, f"{settings.group}.sink", failures=2)
    stop = asyncio.Event()
    role = SinkRole(settings, [flaky], first_backoff_s=0.05)
    task = asyncio.create_task(role.run(stop))
    deadline = time.monotonic() + 60
    while len(flaky.written) < len(points) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.servers())
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        committed: dict = {}
        while not committed and time.monotonic() < deadline:
            committed = await admin.list_consumer_group_offsets(f"{settings.group}.sink")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    stop.set()
    await task
    assert flaky.written == points
    assert (flaky.calls, role.stats.failed_writes) == (3, 2)
    assert flaky.committed_during_write == {}, "offsets moved before the write returned"
    assert [o.offset for o in committed.values()] == [len(points)]


@pytest.mark.parametrize("role", ["collect", "process", "sink"])
def test_a_role_names_the_broker_it_cannot_reach_or_the_missing_section(role: str, tmp_path: Path) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    closed = free_port()  # nothing listens there
    plant = tmp_path / "plant.yaml"
    plant.write_text(MINIMAL.read_text() + f"kafka:\n  bootstrap: 127.0.0.1:{closed}\n")
    result = subprocess.run(
        [exe, role, "-c", str(plant)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert f"error Kafka at 127.0.0.1:{closed}: " in result.stderr
    result = subprocess.run(
        [exe, role, "-c", str(MINIMAL)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "no kafka: section" in result.stderr


async def test_the_sink_role_delivers_to_influxdb_through_the_outbox(
    plant_file: Callable[..., Path], victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    settings = settings_of(plant_file(1))
    await ensure_topics(settings)
    points = await produce_points(settings, minute=10)
    influx = InfluxDbSink(
        type="influxdb", url=victoria.url, org="o", bucket="b", token_env="INFLUX_TOKEN", flush_interval_s=0.1
    )
    token = {"INFLUX_TOKEN": "t"}
    sink = InfluxSink(influx, tmp_path / "outbox", on_dead_letter=lambda _: None, environ=token)
    outbox = OutboxSink(sink)
    stop = asyncio.Event()
    task = asyncio.create_task(SinkRole(settings, [outbox]).run(stop))
    expected = expected_samples([json.loads(p.to_json()) for p in points])
    deadline = time.monotonic() + 60
    while not same_samples(victoria.samples(), expected) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    stop.set()
    await task
    assert same_samples(victoria.samples(), expected)
    assert sink.outbox.lines == 0


def test_the_sink_role_names_a_missing_influxdb_token(tmp_path: Path) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    plant = tmp_path / "plant.yaml"
    plant.write_text(
        MINIMAL.read_text()
        + f"kafka:\n  bootstrap: 127.0.0.1:{free_port()}\n"
        + "sinks:\n  - {type: influxdb, url: 'http://127.0.0.1:8086', org: o, bucket: b,\n"
        + "     token_env: NO_SUCH_TOKEN}\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "NO_SUCH_TOKEN"}
    result = subprocess.run(
        [exe, "sink", "-c", str(plant), "--state-dir", str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )
    assert result.returncode == 2, result.stderr
    assert "NO_SUCH_TOKEN" in result.stderr


async def test_a_state_record_of_several_megabytes_is_written_and_loaded(kafka: KafkaBroker) -> None:
    # The roll-up state of a site of 2 010 machines was 1.4 MB, over Kafka's default 1 MiB: the
    # state topics and process's producer and loader are made for records up to 64 MiB.
    settings = Kafka(bootstrap=kafka.bootstrap, group=f"g{uuid.uuid4().hex[:8]}")
    topic = rollup_state_topic(settings)
    await ensure_compacted(settings, topic)
    record = os.urandom(3 * 1024 * 1024)  # incompressible, 3 MiB
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.servers(), acks="all", max_request_size=STATE_RECORD_BYTES
    )
    await producer.start()
    try:
        await (await producer.send(topic, record, key=b"site", partition=0))
    finally:
        await producer.stop()
    loader = AIOKafkaConsumer(
        bootstrap_servers=settings.servers(), max_partition_fetch_bytes=STATE_RECORD_BYTES
    )
    await loader.start()
    try:
        partition = TopicPartition(topic, 0)
        loader.assign([partition])
        await loader.seek_to_beginning(partition)
        got = await loader.getmany(partition, timeout_ms=10_000)
    finally:
        await loader.stop()
    assert [r.value for r in got[partition]] == [record]


def test_an_operators_reason_sent_to_the_readings_topic_rewrites_the_stop(
    roles: Callable[..., Roles], tmp_path: Path
) -> None:
    # The minimal shift stops m1 09:00-09:20 (and twice more); the horizon covers the whole shift,
    # so at its end 09:00 can still be corrected.
    plant = (
        MINIMAL.read_text().replace(
            "  micro_stop_max_s: 0\n", "  micro_stop_max_s: 0\n  correction_horizon_s: 28800\n"
        )
        + "\nreasons:\n  groups: {mechanical: breakdown}\n  codes:\n    7: {reason: jam, group: mechanical}\n"
    )
    r = roles(1, plant)
    state = tmp_path / "sink"
    collect = r.start("collect", "--from-file", str(SHIFT))
    assert collect.wait(timeout=60) == 0, r.log("collect")
    r.start("process")
    r.start("sink", "--state-dir", str(state))

    def stops() -> list[dict]:
        return [p for p in written_points(state) if p["measurement"] == "stop"]

    wait_for(lambda: len(stops()) == 3, "the shift's three stops")

    def reason(*args: str) -> subprocess.CompletedProcess[str]:
        command = [r.exe, "reason", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    unknown = reason("m1", "2026-03-02T09:05:00Z", "jamm", "--kafka", "-c", str(r.plant))
    assert unknown.returncode == 2
    assert "'jamm' is neither a code nor a reason of the tree (reasons: jam)" in unknown.stderr
    assert reason("m1", "2026-03-02T09:05:00Z", "jam", "--kafka").returncode == 2  # no -c: a usage error
    sent = reason("m1", "2026-03-02T09:05:00Z", "jam", "--kafka", "-c", str(r.plant))
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: any(p["fields"]["revision"] == 1 for p in stops()), "the stop at 09:00, revision 1")
    [again] = [p for p in stops() if p["fields"]["revision"] == 1]
    assert (again["time"], again["tags"]["reason"], again["fields"]["code"], again["fields"]["cause"]) == (
        "2026-03-02T09:00:00Z",
        "jam",
        "7",
        "operator",
    )
    assert not dead_letters(state)
