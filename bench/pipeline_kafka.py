"""The kafka half of ``bench/pipeline.py``: the three kafka roles between the simulator and the file sink.

One kafka round runs the plant of :func:`bench.endtoend.plant_document` with a ``kafka`` section
of fresh topics and groups (so no round reads another's backlog) on the run's Kafka node
(:class:`bench.kafka_node.KafkaBroker`, Kafka's default flush policy as compose.yaml runs it):

- **collect**: ``plantstream collect -c PLANT``, the installed command, in its own process;
- **process**: in its own process, the same :class:`runtimes.kafka.process.ProcessRole` that
  ``plantstream process`` runs (``python -m bench.pipeline_kafka process PLANT CLOSES``), with one
  addition: a wrapper of its per-record step notes the wall-clock instant each window's OEE
  point was made (the record that moved that machine's watermark past the window's end) in a
  file the benchmark reads after the round;
- **sink**: :class:`runtimes.kafka.sink.SinkRole` with the file sink, in the benchmark's own
  process, so that every batch is timed after its write returned (fsync included), as the
  embedded pipeline's ``on_write`` hook is. The benchmark's process does nothing else during
  the timed window but sample a counter once a second.

Why processes and not tasks in one event loop: that is how the roles are deployed, and on a
2-core machine one loop would give the three roles one core between them while the broker, the
simulator and the roles could use both. The CPU of each role and of the broker is read from
``/proc`` around the timed window.

Both ends of every latency are on the machine's wall clock (``time.time()``), shared by the
processes; the sink's write time minus the close instant noted by ``process`` is **OEE close ->
write**, across the two processes and two topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from bench.common import dies_with_bench, stop_task, timed_window
from bench.endtoend import PipelineRound, PipelineSettings, Recorder, plant_document
from bench.kafka_node import KafkaBroker
from bench.opcua import Round, ServerProcess, _first_values
from plantstream.records import Point, Reading, ReadingRow
from runtimes.kafka.calculate import Outcome
from runtimes.kafka.process import ProcessRole
from runtimes.kafka.rollup import RollupOutcome
from runtimes.kafka.sink import FileSink, SinkRole
from runtimes.plant import load_and_resolve

__all__ = [
    "KafkaRecorder",
    "TimedFileSink",
    "kafka_section",
    "main",
    "oee_key",
    "process_cpu_s",
    "process_waited_s",
    "run_kafka_round",
]

ROLE_STOP_TIMEOUT_S = 30.0
"""How long a role gets to stop by itself after SIGTERM before it is killed."""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def kafka_section(bootstrap: str, name: str) -> dict[str, Any]:
    """The plant file's ``kafka`` section of one round: topics and groups of their own, named ``name``."""
    return {
        "bootstrap": bootstrap,
        "topics": {
            "readings": f"{name}.readings",
            "points": f"{name}.points",
            "deadletter": f"{name}.deadletter",
        },
        "group": name,
    }


def oee_key(point: Point) -> str:
    """Names an OEE point's emission (window tags, time, revision) alike in ``process`` and the sink.

    With the revision, a corrected window's point (revision + 1, made when the correction came) is
    timed from its own making, as in the embedded rounds, not from the window's first close.
    """
    tags = ",".join(f"{k}={v}" for k, v in sorted(point.tags.items()))
    return f"{point.time.isoformat()} {tags} r{point.fields.get('revision', 0)}"


def process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` (all its threads) from ``/proc``; NaN if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return math.nan
    # Fields after the command name (which may hold spaces): state is the first, utime the 12th.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_waited_s(pid: int) -> float:
    """Seconds the threads of process ``pid`` were ready to run but waited for a core; NaN if unknown.

    The second field of each thread's ``/proc/PID/task/TID/schedstat`` (run-queue delay, in ns):
    on a machine shared with other jobs it says how much a role was held back by them.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text(encoding="ascii").split()[1])
    except OSError:
        return math.nan
    return total / 1e9


# -- the sink side --------------------------------------------------------------------------------


class KafkaRecorder(Recorder):
    """:class:`Recorder` for the kafka roles: OEE writes are joined with ``process``'s closes later."""

    def __init__(self, clock_offset_s: float) -> None:
        super().__init__(clock_offset_s)
        self.oee_writes: list[tuple[str, float]] = []
        self.unmatched = 0
        """OEE points written whose close ``process`` did not note (it made them in an earlier run)."""

    def oee_written(self, point: Point, wall: float) -> None:
        """Keep the point's window and write time until the closes are known."""
        self.oee_writes.append((oee_key(point), wall))

    def join(self, closes: dict[str, tuple[float, float]]) -> None:
        """The OEE latencies from ``closes``: window -> (close instant, closing reading's source time)."""
        for key, wall in self.oee_writes:
            found = closes.get(key)
            if found is None:
                self.unmatched += 1
                continue
            close, source = found
            self.oee_close_s.append(wall - close)
            if not math.isnan(source):  # a roll-up's close has no reading of its own
                self.oee_source_s.append(wall - source - self.clock_offset_s)


class TimedFileSink(FileSink):
    """The kafka sink role's file sink, telling a :class:`Recorder` of every batch once it is on disk."""

    def __init__(self, directory: Path, recorder: Recorder) -> None:
        super().__init__(directory)
        self.recorder = recorder

    async def write(self, points: list[Point | ReadingRow]) -> None:
        """Write and fsync (as the role does), then hand the batch and the time to the recorder."""
        await super().write(points)
        self.recorder.on_write(points, time.time())


def read_closes(path: Path) -> dict[str, tuple[float, float]]:
    """``process``'s notes: window -> (close instant, source time or NaN); a window's first close wins."""
    closes: dict[str, tuple[float, float]] = {}
    if not path.exists():
        return closes
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            note = json.loads(line)
            source = math.nan if note["source"] is None else float(note["source"])
            closes.setdefault(note["key"], (float(note["close"]), source))
    return closes


# -- the two role processes -----------------------------------------------------------------------


class RoleProcesses:
    """``collect`` and ``process`` of one round as child processes, their output in ``work``."""

    def __init__(self, work: Path, plant_file: Path, profile: bool = False) -> None:
        self.work = work
        self.plant_file = plant_file
        self.profile = profile
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    def command(self, role: str) -> list[str]:
        """The command line of ``role`` (under cProfile when profiling)."""
        profiled = ["-m", "cProfile", "-o", str(self.work / f"{role}.prof")] if self.profile else []
        if role == "collect":
            script = str(Path(sys.executable).with_name("plantstream"))
            args = ["collect", "-c", str(self.plant_file), "--state-dir", str(self.work / "collect")]
            return [sys.executable, *profiled, script, *args]
        args = ["process", str(self.plant_file), str(self.work / "closes.jsonl")]
        return [sys.executable, *profiled, "-m", "bench.pipeline_kafka", *args]

    async def start(self) -> None:
        """Start ``process`` first (it joins its group while ``collect`` connects to the server)."""
        for role in ("process", "collect"):
            with (self.work / f"{role}.out").open("wb") as out, (self.work / f"{role}.err").open("wb") as err:
                # Forked from the loop's thread (the main thread of a bench): it lives as long as the bench.
                self.procs[role] = await asyncio.create_subprocess_exec(
                    *self.command(role), stdout=out, stderr=err, **dies_with_bench()
                )

    async def supervise(self, sink: Coroutine[Any, Any, object], stop: asyncio.Event) -> None:
        """Run the sink until ``stop``; then stop the roles (collect first). A role that ends early raises.

        Raises:
            RuntimeError: a role process ended before ``stop`` was set (with the end of its stderr).
        """
        sink_task = asyncio.create_task(sink)
        ends = {asyncio.create_task(proc.wait()): role for role, proc in self.procs.items()}
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([sink_task, stopper, *ends], return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                ended = [role for task, role in ends.items() if task.done()]
                if ended:
                    role = ended[0]
                    raise RuntimeError(f"{role} ended early: {self.tail(role)}")
                sink_task.result()  # the sink's own failure
                raise RuntimeError("the sink role ended before it was asked to")
        finally:
            stop.set()
            await self.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await sink_task
            for task in [stopper, *ends]:
                task.cancel()
            await asyncio.gather(stopper, *ends, return_exceptions=True)

    async def stop(self) -> None:
        """SIGTERM each role still running (collect first, so ``process`` sees its last readings)."""
        for role in ("collect", "process"):
            proc = self.procs.get(role)
            if proc is None or proc.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), ROLE_STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def process_assigned(self, timeout_s: float) -> None:
        """Return once ``process`` has been given its readings partitions.

        The sink shows raw readings as soon as ``collect`` sends them; a round is timed only once
        the calculators run too.

        Raises:
            TimeoutError: not within ``timeout_s``.
        """
        path = self.work / "process.out"
        async with asyncio.timeout(timeout_s):
            while True:
                text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
                if re.search(r"assigned readings partitions \[\d", text):
                    return
                await asyncio.sleep(0.1)

    def copy_files(self, destination: Path) -> None:
        """Copy the round's files (logs, stats, profiles, closes; not the points, tens of MB) there."""
        destination.mkdir(parents=True, exist_ok=True)
        for path in self.work.iterdir():
            if path.is_file():
                shutil.copy2(path, destination / path.name)

    def tail(self, role: str, chars: int = 1500) -> str:
        """The end of a role's stderr."""
        path = self.work / f"{role}.err"
        return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""

    def stats(self) -> dict[str, int]:
        """What the roles said they did when they stopped (from their last lines)."""
        out: dict[str, int] = {}
        collected = re.findall(r"stopped: (\d+) readings", self.tail("collect", 4000))
        if collected:
            out["collected"] = int(collected[-1])
        path = self.work / "process.out"
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for line in reversed(lines):
            if line.startswith("{"):
                out.update({f"process_{k}": int(v) for k, v in json.loads(line).items()})
                break
        return out


# -- one kafka round ------------------------------------------------------------------------------


async def run_kafka_round(
    server: ServerProcess,
    broker: KafkaBroker,
    settings: PipelineSettings,
    *,
    profiler: cProfile.Profile | None = None,
    keep: Path | None = None,
) -> PipelineRound:
    """Start the three roles on fresh topics, let them catch up, time them, stop them.

    With ``profiler``, the sink's timed window is profiled here and the two role processes run
    under cProfile for their whole life. With ``keep``, the round's files (the roles' output and
    profiles, the closes, the plant; not the points) are copied into ``keep/<round name>/``.
    """
    loop = asyncio.get_running_loop()
    s = settings.opcua
    stop = asyncio.Event()
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="plantstream-bench-kafka-") as tmp:
        work = Path(tmp)
        plant_file = work / "plant.yaml"
        document = plant_document(server.endpoint, settings)
        name = f"bench-{secrets.token_hex(4)}"
        document["kafka"] = kafka_section(broker.bootstrap, name)
        plant_file.write_text(json.dumps(document), encoding="utf-8")
        plant, spec = load_and_resolve(plant_file)
        assert plant.model.kafka is not None
        recorder = KafkaRecorder(server.clock_offset_s)
        sink = SinkRole(plant.model.kafka, [TimedFileSink(work / "sink", recorder)], spec=spec)
        roles = RoleProcesses(work, plant_file, profile=profiler is not None)
        started = loop.time()
        await roles.start()
        task = asyncio.create_task(roles.supervise(sink.run(stop), stop))
        try:
            await _first_values(recorder, task, s.tags, s.connect_timeout_s)
            await roles.process_assigned(max(1.0, s.connect_timeout_s - (loop.time() - started)))
            connect_s = loop.time() - started
            await asyncio.sleep(s.warmup_s)
            before = await server.stats()
            recorder.clock_offset_s = before.clock_offset_s
            cpu0, waited0 = _times(roles, broker)
            window = await timed_window(s.seconds, lambda: recorder.timed, recorder, profiler)
            cpu1, waited1 = _times(roles, broker)
            after = await server.stats()
        finally:
            await stop_task(task, stop, 2 * ROLE_STOP_TIMEOUT_S + 10)
        task.result()
        recorder.join(read_closes(work / "closes.jsonl"))
        if keep is not None:
            roles.copy_files(keep / name)
        detail = {
            **roles.stats(),
            "sink_points": sink.stats.points,
            "sink_raw_points": sink.stats.raw_points,
            "sink_batches": sink.stats.batches,
            "sink_dead_letters": sink.stats.dead_letters,
            "oee_written_in_window": len(recorder.oee_writes),
            "oee_without_close": recorder.unmatched,
        }
    cpu = {name: cpu1[name] - cpu0[name] for name in cpu0}
    waited = {name: waited1[name] - waited0[name] for name in waited0}
    roles_cpu = cpu["collect"] + cpu["process"] + cpu["sink"]
    r = Round(
        "collector",
        window.wall_s,
        window.count,
        after.load_writes - before.load_writes,
        after.t - before.t,
        roles_cpu,
        after.cpu_s - before.cpu_s,
        after.late_steps - before.late_steps,
        window.per_second,
        0,
        detail,
        connect_s,
    )
    return PipelineRound(
        r, recorder.reading_s, recorder.oee_close_s, recorder.oee_source_s, detail, "kafka", cpu, waited
    )


def _times(roles: RoleProcesses, broker: KafkaBroker) -> tuple[dict[str, float], dict[str, float]]:
    """CPU and run-queue seconds so far of each role (the sink is this process) and of the broker."""
    pids = {
        **{role: proc.pid for role, proc in roles.procs.items()},
        "sink": os.getpid(),
        "broker": broker.pid,
    }
    return (
        {name: process_cpu_s(pid) for name, pid in pids.items()},
        {name: process_waited_s(pid) for name, pid in pids.items()},
    )


def describe_cpu(p: PipelineRound) -> str:
    """Each process's share of a core in a kafka round's timed window, and its wait for one."""
    seconds = p.round.seconds
    return ", ".join(
        f"{name} {cpu / seconds:.0%} (waited {p.wait_s.get(name, math.nan) / seconds:.0%})"
        for name, cpu in p.cpu_s.items()
    )


# -- the process role with its closes noted (a child process of a round) -------------------------


def note_closes(role: ProcessRole, out: TextIO, clock: Callable[[], float] = time.time) -> None:
    """Wrap the role's per-record steps: for each OEE point made, note the window and the instant.

    The instant is when the record that closed the window began its step. A machine's window is
    closed by one of its readings, whose source time is noted too; a line's or a site's (the
    roll-up stage) by the windows record of the last machine to report, which has no source time
    of its own (``null``). One JSON line per OEE point: ``{"key", "close", "source"}``.
    """
    take, roll = role.machines.take, role.rollups.take

    def note(points: list[Point], started: float, value: bytes | None, reading: bool) -> None:
        for point in points:
            if point.measurement == "oee":
                source = Reading.from_json(value or b"").ts.timestamp() if reading else None
                out.write(json.dumps({"key": oee_key(point), "close": started, "source": source}) + "\n")

    def timed_take(
        key: bytes | None, value: bytes | None, offset: int, where: str, received: int | None = None
    ) -> Outcome:
        started = clock()
        outcome = take(key, value, offset, where, received)
        points = outcome.points
        # Most records make their raw point alone: the measuring stays out of the role's way.
        if len(points) > 1 or (points and points[0].measurement != "reading"):
            note(points, started, value, reading=True)
        return outcome

    def timed_roll(key: bytes | None, value: bytes | None, offset: int, where: str) -> RollupOutcome:
        started = clock()
        outcome = roll(key, value, offset, where)
        note(outcome.points, started, value, reading=False)
        return outcome

    role.machines.take = timed_take  # type: ignore[method-assign]
    role.rollups.take = timed_roll  # type: ignore[method-assign]


async def _run_until_signalled(role: ProcessRole) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await role.run(stop)


def process_main(plant_path: Path, closes_path: Path) -> int:
    """The ``process`` role as ``plantstream process`` runs it, noting closes in ``closes_path``.

    Prints its stats as one JSON line on exit (the round reads them).
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plant, spec = load_and_resolve(plant_path)
    if plant.model.kafka is None:
        print(f"{plant_path}: no kafka: section", file=sys.stderr)
        return 2
    role = ProcessRole(plant.model.kafka, spec)
    with closes_path.open("w", encoding="utf-8") as closes:
        note_closes(role, closes)
        asyncio.run(_run_until_signalled(role))
    stats = role.stats
    fields = ("records", "skipped", "points", "dead_letters", "batches", "windows", "rollup_points")
    print(json.dumps({name: getattr(stats, name) for name in fields}), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.pipeline_kafka process PLANT CLOSES`` (started by :func:`run_kafka_round`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "process":
        print("usage: python -m bench.pipeline_kafka process PLANT CLOSES", file=sys.stderr)
        return 2
    return process_main(Path(args[1]), Path(args[2]))


if __name__ == "__main__":
    sys.exit(main())
