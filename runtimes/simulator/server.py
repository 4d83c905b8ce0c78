"""The simulator's shell: an asyncua server (and optionally an MQTT publisher) driven in real time.

Simulated time is ``start + speed × elapsed wall time``; a loop steps the pure model
(:mod:`runtimes.simulator.model`) about ten times a second (faster when load tags need it) and
writes every update with its SourceTimestamp at the simulated instant it happened and the
ServerTimestamp at the wall-clock instant it was written. Because the model's updates do not
depend on how often it is stepped, a run with the same seed, start and speed produces the same
values at the same simulated instants, however the event loop's timing jitters.

Address space (namespace URI :data:`NAMESPACE_URI`, stable across runs and versions):

- ``Objects/<machine>`` folders (node id ``s=<machine>``) with one variable per signal, node id
  ``s=<machine>.<signal>`` (the plant file's names): Int32 for numeric PLC state codes, String for
  state category names and products, UInt32 for counters and integer registers (a 32-bit Wh
  register), Double for power, energy in kWh and fuel.
- ``Objects/load`` with ``s=load.tag<k>`` Double variables (k = 1 … ``tags``): a sine per tag plus
  noise, written at ``rate`` Hz of wall time, for load tests.
- ``Objects/GroundTruth`` with the String variable ``s=GroundTruth.Json``: ``json.dumps`` of the
  model's :meth:`~runtimes.simulator.model.PlantSimulation.truth`, refreshed every second.

MQTT (``mqtt`` option): every meter sample (one per machine per simulated second) is published as
``{"ts": ISO 8601, "power_w": W, "energy_wh": Wh}`` to ``plant/<line>/<machine>/meter`` at QoS 1.
``energy_wh`` is the meter's cumulative energy, which does not roll over (a JSON number has no
register width). The publisher has its own reconnect loop with capped, jittered back-off and a
bounded queue that drops the oldest samples when the broker is away (counted in
:attr:`SimulatorStats.mqtt_dropped`); the OPC UA side never waits for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import random
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from asyncua import Server, ua

from collectors.backoff import Backoff
from plantstream.plant import PlantModel, load_plant
from plantstream.plant.schema import Role
from runtimes.simulator.alarms import REFRESH_SEVERITY, SimulatorAlarms
from runtimes.simulator.history import ServerHistory
from runtimes.simulator.model import MeterSample, PlantSimulation, TagUpdate, ValueType, generic_plant

__all__ = [
    "DEMO_PLANT",
    "NAMESPACE_URI",
    "SimulatorOptions",
    "SimulatorServer",
    "SimulatorStats",
    "run",
]

NAMESPACE_URI = "urn:plantstream:simulator"
"""The namespace of every simulator node; clients resolve its index by this URI."""

DEMO_PLANT = Path(__file__).resolve().parents[2] / "examples" / "demo-line.yaml"
"""The demonstration line, simulated when neither a plant file nor a machine count is given."""

_log = logging.getLogger("plantstream.simulator")

_VARIANT: dict[ValueType, ua.VariantType] = {
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
    "uint64": ua.VariantType.UInt64,
    "double": ua.VariantType.Double,
    "string": ua.VariantType.String,
}
_STEP_S = 0.1
_MQTT_QUEUE = 10_000
# A bound on the history the simulator keeps per tag (each value about 320 bytes, see history.py).
_MAX_HISTORY = 1_000_000
_MQTT_BATCH = 200


@dataclass(frozen=True)
class SimulatorOptions:
    """How to run the simulator.

    Attributes:
        plant: The plant file whose machines to simulate; :data:`DEMO_PLANT` when neither this nor
            ``machines`` is given.
        machines: Simulate this many generic machines instead (see
            :func:`~runtimes.simulator.model.generic_plant`).
        host: The address to listen on (``0.0.0.0`` in containers).
        port: The port to listen on; 0 picks a free one.
        seed: The seed of the simulation.
        speed: Simulated seconds per wall-clock second.
        start: The simulated start instant (timezone-aware); the current second when absent.
        tags: Extra analog load tags.
        rate: How often the load tags are written, in Hz of wall time.
        mqtt: Also publish the meters to this broker (``mqtt://host[:port]`` or ``mqtts://``).
        duration: Stop after this many wall-clock seconds (the simulation then ends exactly at
            ``start + speed × duration``); run until stopped when absent.
        meter_period_s: Simulated seconds between two meter samples.
        truth_period_s: Wall-clock seconds between two refreshes of the ground-truth node.
        resume: Raw counter and register values to continue from, per machine and signal
            (:class:`~runtimes.simulator.model.PlantSimulation`).
        history: Values each machine tag keeps in the server's history for HistoryRead (the
            newest; :mod:`runtimes.simulator.history`); 0: the tags keep none.
        alarms: Also raise an alarm condition per stop reason code
            (:mod:`runtimes.simulator.alarms`); the tags are the same either way.

    Raises:
        ValueError: When an option is out of range or two options contradict each other.
    """

    plant: Path | None = None
    machines: int | None = None
    host: str = "127.0.0.1"
    port: int = 4840
    seed: int = 1
    speed: float = 1.0
    start: datetime | None = None
    tags: int = 0
    rate: float = 1.0
    mqtt: str | None = None
    duration: float | None = None
    meter_period_s: float = 1.0
    truth_period_s: float = 1.0
    resume: Mapping[str, Mapping[str, float]] | None = None
    history: int = 3_600
    alarms: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.plant is not None and self.machines is not None:
            problems.append("give a plant file or a number of machines, not both")
        if self.machines is not None and self.machines < 1:
            problems.append(f"machines must be at least 1, got {self.machines}")
        if not 0 <= self.port <= 65_535:
            problems.append(f"port must be 0..65535, got {self.port}")
        if not (math.isfinite(self.speed) and self.speed > 0):
            problems.append(f"speed must be > 0, got {self.speed}")
        if self.tags < 0:
            problems.append(f"tags must be >= 0, got {self.tags}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            problems.append(f"rate must be > 0 Hz, got {self.rate}")
        if self.duration is not None and not self.duration >= 0:
            problems.append(f"duration must be >= 0 s, got {self.duration}")
        if not self.meter_period_s > 0:
            problems.append(f"meter_period_s must be > 0, got {self.meter_period_s}")
        if not 0 <= self.history <= _MAX_HISTORY:
            problems.append(f"history must be 0..{_MAX_HISTORY} values per tag, got {self.history}")
        if not self.truth_period_s > 0:
            problems.append(f"truth_period_s must be > 0, got {self.truth_period_s}")
        if self.start is not None and self.start.tzinfo is None:
            problems.append(f"start must have a time zone, got {self.start.isoformat()}")
        if self.mqtt is not None and not re.fullmatch(r"mqtts?://[^/:\s]+(:\d{1,5})?/?", self.mqtt):
            problems.append(f"mqtt must be mqtt://host[:port] or mqtts://host[:port], got {self.mqtt!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def plant_model(self) -> PlantModel:
        """The plant to simulate: the generic machines, the plant file, or the demonstration line.

        Raises:
            plantstream.plant.PlantError: When the plant file is missing or invalid.
        """
        if self.machines is not None:
            return generic_plant(self.machines)
        return load_plant(self.plant or DEMO_PLANT).model


@dataclass
class SimulatorStats:
    """What the simulator has done, for benchmarks and the operator.

    Attributes:
        steps: Iterations of the real-time loop.
        writes: Machine tag values written (each with its own source timestamp).
        load_writes: Load tag values written.
        late_steps: Iterations that started more than one step period late (the host is too slow
            for the requested speed, machines or load).
        mqtt_published: Meter messages the broker acknowledged.
        mqtt_dropped: Meter messages dropped because the queue was full while the broker was away.
        mqtt_connected: Whether the publisher is connected now.
    """

    steps: int = 0
    writes: int = 0
    load_writes: int = 0
    late_steps: int = 0
    mqtt_published: int = 0
    mqtt_dropped: int = 0
    mqtt_connected: bool = False


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class SimulatorServer:
    """The simulator as an async context manager: an OPC UA server on ``options.host:port``.

    With ``port=0`` it picks a free port (see :attr:`port` and :attr:`endpoint`), which is what
    tests want. Example::

        async with SimulatorServer(SimulatorOptions(port=0, speed=60)) as sim:
            print(sim.endpoint, sim.truth())

    Args:
        options: How to run.
    """

    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options
        self.stats = SimulatorStats()
        self.done = asyncio.Event()
        """Set when ``options.duration`` has elapsed and the simulation has reached its end."""
        self.published_truth: dict[str, Any] | None = None
        """The ground truth most recently written to the ``GroundTruth.Json`` node."""
        self._plant = options.plant_model()
        self._start = (options.start or datetime.now(tz=UTC).replace(microsecond=0)).astimezone(UTC)
        self.simulation = PlantSimulation(
            self._plant,
            options.seed,
            start=self._start,
            meter_period_s=options.meter_period_s,
            record_meters=options.mqtt is not None,
            resume=options.resume,
        )
        self._port = options.port
        self._server: Server | None = None
        self._ns = 0
        self._nodes: dict[tuple[str, str], tuple[ua.NodeId, ua.VariantType]] = {}
        self._load_nodes: list[ua.NodeId] = []
        self._load_shape: list[tuple[float, float, float]] = []
        self._load_rng = random.Random(f"plantstream-simulator:{options.seed}:load")
        self._truth_node: ua.NodeId | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._wall0 = 0.0
        self._sim_now = self._start
        self._mqtt: _MqttPublisher | None = None
        self._history: ServerHistory | None = None
        self._alarms: SimulatorAlarms | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Build the address space, start listening and start the real-time loop."""
        options = self.options
        if self._port == 0:
            self._port = _free_port(options.host)
        server = Server()
        if options.alarms:
            # ConditionRefresh and its RefreshStart/End events (asyncua binds them only when asked).
            server.iserver.bind_condition_methods = REFRESH_SEVERITY
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("plantstream simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        await server.set_application_uri(f"{NAMESPACE_URI}:server")
        self._ns = await server.register_namespace(NAMESPACE_URI)
        await self._build_address_space(server)
        if options.alarms:
            signals = {m.id: m.signal_of(Role.REASON) for _, _, m in self._plant.machines()}
            self._alarms = SimulatorAlarms(server, self._ns, {m: s for m, s in signals.items() if s})
        if options.history:
            self._history = ServerHistory(server, options.history)
            for node_id, _ in self._nodes.values():
                await self._history.add(node_id)
        try:
            await server.start()
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {options.host}:{self._port}: {exc.strerror}"
            ) from None
        self._server = server
        _log.info(
            "simulator: %d machines on %s (namespace %s), seed %d, speed %g",
            len(self._plant.machines()),
            self.endpoint,
            NAMESPACE_URI,
            options.seed,
            options.speed,
        )
        if options.mqtt is not None:
            self._mqtt = _MqttPublisher(options.mqtt, self.stats)
            self._tasks.append(asyncio.create_task(self._mqtt.run(), name="simulator-mqtt"))
        self._wall0 = asyncio.get_running_loop().time()
        await self._advance(self._start)
        await self._publish_truth()
        self._loop_task = asyncio.create_task(self._loop(), name="simulator-loop")
        self._tasks.append(self._loop_task)

    async def stop(self) -> None:
        """Stop the loop and the publisher, then the server. Safe to call twice.

        A run stopped before its duration is first brought up to the current simulated instant,
        so :meth:`truth` afterwards covers everything the run produced.
        """
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if tasks and self._server is not None and not self.done.is_set():
            elapsed = asyncio.get_running_loop().time() - self._wall0
            if self.options.duration is not None:
                elapsed = min(elapsed, self.options.duration)
            await self._advance(self._sim_at(elapsed))
        server, self._server = self._server, None
        if server is not None:
            await server.stop()

    # -- what tests and the CLI see ---------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The server's endpoint URL, ``opc.tcp://host:port``."""
        host = self.options.host
        return f"opc.tcp://[{host}]:{self._port}" if ":" in host else f"opc.tcp://{host}:{self._port}"

    @property
    def port(self) -> int:
        """The port the server listens on (the one picked, when ``options.port`` was 0)."""
        return self._port

    @property
    def namespace_index(self) -> int:
        """The index of :data:`NAMESPACE_URI` in this server's namespace array."""
        return self._ns

    @property
    def start_time(self) -> datetime:
        """The simulated start instant."""
        return self._start

    @property
    def sim_time(self) -> datetime:
        """The simulated instant the simulation has reached."""
        return self._sim_now

    def simulated_now(self) -> datetime:
        """The simulated instant of this moment: ``start + speed × wall seconds since the loop began``.

        :attr:`sim_time` is the instant last stepped to (up to a step behind). At speed 1 the
        difference ``datetime.now(UTC) - simulated_now()`` is the constant by which source
        timestamps trail this process's wall clock (the start is a whole second, taken before
        the address space was built), which lets a benchmark put them on the wall clock.

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        if self._loop_task is None:
            raise RuntimeError("the simulator has not been started")
        return self._sim_at(asyncio.get_running_loop().time() - self._wall0)

    def truth(self) -> dict[str, Any]:
        """The ground truth now (see :meth:`~runtimes.simulator.model.PlantSimulation.truth`)."""
        return self.simulation.truth()

    async def finished(self) -> None:
        """Wait until the run has reached its duration (forever without one).

        Raises:
            RuntimeError: Before :meth:`start`.
            Exception: Whatever stopped the real-time loop, should it fail.
        """
        if self._loop_task is None:
            raise RuntimeError("the simulator has not been started")
        await asyncio.shield(self._loop_task)

    async def wait_until(self, instant: datetime) -> None:
        """Wait until the simulation has reached the simulated ``instant``.

        Raises:
            RuntimeError: When the run ends (duration) before ``instant``.
        """
        while self._sim_now < instant:
            if self.done.is_set():
                raise RuntimeError(f"the simulation ended at {_iso(self._sim_now)}, before {_iso(instant)}")
            await asyncio.sleep(0.02)

    # -- the address space ------------------------------------------------------------------------

    async def _build_address_space(self, server: Server) -> None:
        ns = self._ns
        objects = server.nodes.objects
        current = {(u.machine, u.signal): u.value for u in self.simulation.snapshot()}
        folders: dict[str, Any] = {}
        for spec in self.simulation.tags():
            folder = folders.get(spec.machine)
            if folder is None:
                folder = await objects.add_folder(
                    ua.NodeId(spec.machine, ns), ua.QualifiedName(spec.machine, ns)
                )
                folders[spec.machine] = folder
            node_id = ua.NodeId(f"{spec.machine}.{spec.signal}", ns)
            variant = _VARIANT[spec.value_type]
            initial = ua.Variant(current[(spec.machine, spec.signal)], variant)
            await folder.add_variable(node_id, ua.QualifiedName(spec.signal, ns), initial)
            self._nodes[(spec.machine, spec.signal)] = (node_id, variant)
        if self.options.tags:
            load = await objects.add_folder(ua.NodeId("load", ns), ua.QualifiedName("load", ns))
            shape_rng = random.Random(f"plantstream-simulator:{self.options.seed}:load-shape")
            for k in range(1, self.options.tags + 1):
                node_id = ua.NodeId(f"load.tag{k}", ns)
                await load.add_variable(
                    node_id, ua.QualifiedName(f"tag{k}", ns), ua.Variant(0.0, ua.VariantType.Double)
                )
                self._load_nodes.append(node_id)
                period_s = shape_rng.uniform(30.0, 600.0)
                self._load_shape.append(
                    (period_s, shape_rng.uniform(0, 2 * math.pi), shape_rng.uniform(10, 100))
                )
        truth = await objects.add_object(ua.NodeId("GroundTruth", ns), ua.QualifiedName("GroundTruth", ns))
        self._truth_node = ua.NodeId("GroundTruth.Json", ns)
        await truth.add_variable(
            self._truth_node, ua.QualifiedName("Json", ns), ua.Variant("{}", ua.VariantType.String)
        )

    # -- the real-time loop -----------------------------------------------------------------------

    def _sim_at(self, elapsed: float) -> datetime:
        return self._start + timedelta(seconds=self.options.speed * elapsed)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        options = self.options
        period = min(_STEP_S, 1.0 / options.rate) if options.tags else _STEP_S
        load_period = 1.0 / options.rate
        next_wake = self._wall0 + period
        next_load = self._wall0
        next_truth = self._wall0 + options.truth_period_s
        while True:
            delay = next_wake - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                # Behind schedule: still let the server answer its clients before the next step.
                await asyncio.sleep(0)
                if -delay > period:
                    self.stats.late_steps += 1
                    next_wake = loop.time()
            now = loop.time()
            elapsed = now - self._wall0
            finished = options.duration is not None and elapsed >= options.duration
            if finished:
                assert options.duration is not None
                elapsed = options.duration
            await self._advance(self._sim_at(elapsed))
            if self._load_nodes and (now >= next_load or finished):
                await self._write_load()
                next_load = max(next_load + load_period, now)
            if now >= next_truth or finished:
                await self._publish_truth()
                next_truth = now + options.truth_period_s
            if finished:
                self.done.set()
                return
            next_wake += period

    async def _advance(self, instant: datetime) -> None:
        """Step the model to ``instant`` and write what changed."""
        updates = self.simulation.step(instant)
        self._sim_now = max(self._sim_now, instant)
        self.stats.steps += 1
        await self._write(updates)
        if self._mqtt is not None:
            self._mqtt.offer(self.simulation.take_meter_samples())

    async def _write(self, updates: list[TagUpdate]) -> None:
        server = self._server
        if server is None:
            return
        wall = datetime.now(tz=UTC)
        for update in updates:
            node_id, variant = self._nodes[(update.machine, update.signal)]
            value = ua.DataValue(
                Value=ua.Variant(update.value, variant),
                SourceTimestamp=update.source_ts,
                ServerTimestamp=wall,
            )
            await server.write_attribute_value(node_id, value)
            if self._history is not None:
                await self._history.save(node_id, value)
        self.stats.writes += len(updates)
        if self._alarms is not None:
            await self._alarms.take(updates)

    async def _write_load(self) -> None:
        server = self._server
        if server is None:
            return
        wall = datetime.now(tz=UTC)
        sim_now = self._sim_now
        seconds = (sim_now - self._start).total_seconds()
        rng = self._load_rng
        for node_id, (period_s, phase, amplitude) in zip(self._load_nodes, self._load_shape, strict=True):
            level = amplitude * (1.0 + 0.5 * math.sin(2 * math.pi * seconds / period_s + phase))
            value = ua.DataValue(
                Value=ua.Variant(level + rng.gauss(0.0, 0.01 * amplitude), ua.VariantType.Double),
                SourceTimestamp=sim_now,
                ServerTimestamp=wall,
            )
            await server.write_attribute_value(node_id, value)
        self.stats.load_writes += len(self._load_nodes)

    async def _publish_truth(self) -> None:
        truth = self.simulation.truth()
        server = self._server
        if server is not None and self._truth_node is not None:
            value = ua.DataValue(
                Value=ua.Variant(json.dumps(truth), ua.VariantType.String),
                SourceTimestamp=self._sim_now,
                ServerTimestamp=datetime.now(tz=UTC),
            )
            await server.write_attribute_value(self._truth_node, value)
        self.published_truth = truth


class _MqttPublisher:
    """Meter samples to an MQTT broker, QoS 1, through a bounded drop-oldest queue."""

    def __init__(self, url: str, stats: SimulatorStats, capacity: int = _MQTT_QUEUE) -> None:
        parts = urlsplit(url)
        self._tls = parts.scheme == "mqtts"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (8883 if self._tls else 1883)
        self._stats = stats
        self._queue: collections.deque[MeterSample] = collections.deque()
        self._capacity = capacity
        self._ready = asyncio.Event()
        self._backoff = Backoff(first_s=0.5, cap_s=15.0)

    def offer(self, samples: list[MeterSample]) -> None:
        """Queue samples without waiting; the oldest go when the queue is full."""
        for sample in samples:
            if len(self._queue) >= self._capacity:
                self._queue.popleft()
                self._stats.mqtt_dropped += 1
            self._queue.append(sample)
        if self._queue:
            self._ready.set()

    async def run(self) -> None:
        """Connect, publish, and reconnect with back-off, until cancelled."""
        last_error = None
        while True:
            try:
                async with aiomqtt.Client(
                    self._host,
                    self._port,
                    tls_context=ssl.create_default_context() if self._tls else None,
                    timeout=10,
                ) as client:
                    # A batch is published concurrently: that many pending calls are expected.
                    client.pending_calls_threshold = 2 * _MQTT_BATCH
                    self._stats.mqtt_connected = True
                    self._backoff.reset()
                    last_error = None
                    _log.info("simulator: publishing meters to %s:%s", self._host, self._port)
                    await self._publish(client)
            except Exception as exc:  # the OPC UA side goes on whatever happens to the broker
                message = str(exc) or type(exc).__name__
                if message != last_error:
                    _log.warning("simulator: broker %s:%s: %s; retrying", self._host, self._port, message)
                last_error = message
            self._stats.mqtt_connected = False
            await asyncio.sleep(self._backoff.next_delay())

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            await self._ready.wait()
            batch = [self._queue.popleft() for _ in range(min(_MQTT_BATCH, len(self._queue)))]
            if not self._queue:
                self._ready.clear()
            try:
                await asyncio.gather(*(self._send(client, sample) for sample in batch))
            except BaseException:
                # Put the batch back: QoS 1 is at least once, and a meter value is cumulative.
                self._queue.extendleft(reversed(batch))
                while len(self._queue) > self._capacity:
                    self._queue.pop()
                    self._stats.mqtt_dropped += 1
                self._ready.set()
                raise
            self._stats.mqtt_published += len(batch)

    @staticmethod
    async def _send(client: aiomqtt.Client, sample: MeterSample) -> None:
        payload = json.dumps(
            {"ts": _iso(sample.ts), "power_w": sample.power_w, "energy_wh": sample.energy_wh}
        )
        await client.publish(f"plant/{sample.line}/{sample.machine}/meter", payload, qos=1)


async def run(
    options: SimulatorOptions,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run the simulator until ``options.duration`` has elapsed, ``stop`` is set, or cancellation.

    Args:
        options: How to run.
        ready: Set once the server listens.
        stop: Set it to end the run.

    Returns:
        The final ground truth (see :meth:`~runtimes.simulator.model.PlantSimulation.truth`).

    Raises:
        OSError: When the server cannot listen on ``host:port``.
        plantstream.plant.PlantError: When the plant file is missing or invalid.
    """
    async with SimulatorServer(options) as sim:
        if ready is not None:
            ready.set()
        waiters: list[asyncio.Task[Any]] = [asyncio.create_task(sim.finished())]
        if stop is not None:
            waiters.append(asyncio.create_task(stop.wait()))
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        for waiter in done:
            waiter.result()  # the loop's failure, if it failed
    return sim.truth()
