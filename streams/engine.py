"""The windowing engine: routes readings to machines, orders them, corrects late data, rolls up.

Pure, like the calculators it drives: readings in, points out, time only from the readings.

- **Ordering.** Each machine has a watermark: the newest event time it has seen minus
  ``allowed_lateness``. Readings are held (:class:`streams.held.Held`) until the watermark
  passes them and are then released in event-time order, so out-of-order arrival within the
  lateness changes nothing.
  (``replay`` orders its whole input itself and turns this off.)
- **Late data.** A reading behind what was already released corrects the past: the machine's
  state is restored from the snapshot taken at the last window close before the reading, the
  readings since are re-applied with the late one in place, and every window whose result
  changed is emitted again with the same identity and ``revision`` + 1. Readings older than
  ``correction_horizon`` are refused as too late.
- **Time sanity.** Every reading's event time is checked in O(1) before it can move anything:
  outside 2000-2099 (``bad_time``), further ahead of its receipt time than ``max_future``
  (``future``), or further ahead of the machine's newest event time than ``max_clock_jump``
  (``clock_jump``; without a receipt time, as in ``replay``, such a jump is taken once
  :data:`~streams.plausibility.REBASE_AFTER` readings in a row confirm it). A machine silent for
  longer than ``max_gap_fill`` resumes at its new time: the windows it had open are closed, and
  the empty windows of the gap are not emitted (:meth:`MachineCalc.advance`).
- **Value sanity.** Cumulative values and power go through :mod:`streams.plausibility`; a
  calculator's own check failing (``ValueError``, ``ArithmeticError``) refuses that reading as
  ``internal`` and never escapes.
- **Stops.** Each stop a machine's calculator ends (:mod:`streams.stops`) becomes a ``stop``
  point with its reason from the plant's reason tree; one that a correction changes is written
  again with the same start and ``revision`` + 1.
- **Roll-ups.** Line and site windows sum the elements of their machines (ratios are never
  averaged) and are emitted once every machine that has reported has closed the window
  (:mod:`streams.rollup`, shared with the kafka runtime's roll-up stage).
"""

from __future__ import annotations

from bisect import insort
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import repeat
from typing import Any

from plantstream.records import EPOCH, QUALITY_TEXT, Point, Reading
from streams.config import EngineSpec, MachineSpec
from streams.held import Held
from streams.history import History, Row
from streams.machine import BadValue, MachineCalc, MachineState, WindowResult
from streams.operator_reason import ReasonRefused
from streams.plausibility import EARLIEST_US, LATEST_US, REBASE_AFTER, plausible_time
from streams.points import WindowPoints, stop_point, window_label
from streams.reasons import Reason
from streams.rollup import Rollups, Scope
from streams.stops import StopEvent

__all__ = ["CHECKPOINT_VERSION", "Engine", "ReadingRejected"]

_ONE_US = timedelta(microseconds=1)
_PRUNE_BATCH = 8
_SNAPSHOT_EVERY = 4
CHECKPOINT_VERSION = 1
"""Version of :meth:`Engine.checkpoint`'s form; bump it when the form changes."""
_Released = Row
MAX_TEXT = 64
"""Characters of a text value (a product code, a state name): so a reading kept for corrections
has a bounded size, and the correction history's reading bound is also a byte bound."""
_QUALITIES = {q: q for q in QUALITY_TEXT.values()}
_TICK = ""
"""The signal of a tick: event time moves on and nothing else changes (no signal has this name)."""


class ReadingRejected(ValueError):
    """A reading the engine cannot use; ``reason`` is a short key for counting.

    ``held`` is ``None`` when the refused reading is the one just pushed. When it is a reading
    pushed earlier and held for ordering (an implausible value shows only once the readings
    before it are applied), ``held`` gives that reading's parts ``(ts, machine, signal, value,
    quality)``, ``ts`` in µs: the reading just pushed was taken.
    """

    def __init__(self, reason: str, message: str, held: tuple[int, str, str, Any, str] | None = None) -> None:
        self.reason = reason
        self.held = held
        super().__init__(message)


@dataclass(slots=True)
class _Track:
    """A machine's calculator with its ordering buffer and correction history."""

    calc: MachineCalc
    points: WindowPoints
    scopes: list[Scope]
    held: Held = field(default_factory=Held)
    """Readings held for ordering (``allowed_lateness``), in columns (streams.held)."""
    newest: int | None = None
    history: History = field(default_factory=History)
    snapshots: list[tuple[int, MachineState, int]] = field(default_factory=list)
    emitted: dict[tuple[str, int], tuple[int, WindowResult]] = field(default_factory=dict)
    closes: int = 0
    routes: dict[str, tuple[str, Callable[[int, Any], None], bool]] = field(default_factory=dict)
    """Each signal name to the plant's own string (so history entries share one copy of it), its
    feeder, and whether it takes numbers only: one lookup per reading, built once."""
    jumps: list[int] = field(default_factory=list)
    """Event times of the latest readings refused as a clock jump (confirmation without receipt time)."""
    restored_until: int | None = None
    """The released time restored from a checkpoint: older data was counted before the restart."""
    stops: dict[int, tuple[int, StopEvent]] = field(default_factory=dict)
    """Stop events written, by start: their revision and event, kept for corrections."""


class Engine:
    """Turns readings of every machine of a plant into ``oee``, ``energy`` and ``carbon`` points."""

    def __init__(self, spec: EngineSpec, *, reorder: bool = True, keep_results: bool = False) -> None:
        """Build an engine for the resolved plant ``spec``.

        Args:
            spec: the resolved plant.
            reorder: hold readings for ``allowed_lateness`` to put them in order. A caller that
                already delivers them in event-time order (``replay`` sorts its input) turns it off.
            keep_results: also keep each machine window result emitted (new or corrected) for
                :meth:`take_results` (the kafka runtime rolls them up in another stage).
        """
        self.spec = spec
        self._lateness = spec.allowed_lateness_us if reorder else 0
        self._horizon = spec.correction_horizon_us
        self._max_future = spec.max_future_us or 0
        self._use_receipt = spec.max_future_us is not None
        self._max_jump = spec.max_clock_jump_us
        # The history is what bounds memory at high rates (2 000 meters at 10 Hz send 72 million
        # readings an hour): each machine keeps at most its share, and data older than what it
        # kept is refused as too late (dead-lettered, so a replay can still use it).
        self._history_share = max(1, spec.correction_history_max // max(1, len(spec.machines)))
        # ... and at most its share of the history's byte budget, as the history counts its bytes
        # (streams.history: about 18 B a numeric reading).
        self._history_bytes_share = max(1, spec.correction_history_bytes // max(1, len(spec.machines)))
        self._label = window_label(spec.window_us)
        self._seq = 0
        self._out: list[Point] = []
        self._events: Counter[str] = Counter()
        self._rollup = Rollups(spec, kept_from=self._kept_from)
        self._tracks = {mid: self._track(m) for mid, m in spec.machines.items()}
        self._keep_results = keep_results
        self._results_out: list[tuple[str, WindowResult]] = []

    def _track(self, m: MachineSpec) -> _Track:
        tags = {"site": m.site, "line": m.line, "machine": m.id}
        points = WindowPoints(
            tags,
            m.method,
            m.micro_stop_max_us,
            self._label,
            m.has_oee,
            m.has_energy,
            m.carbon,
            per_good_unit=True,
            has_counts=bool(m.counters),
            meter_coverage=True,
            has_fuel=bool(m.fuels),
            has_rework=m.has_rework,
        )
        calc = MachineCalc(m, max_gap_fill_us=self.spec.max_gap_fill_us)
        routes = {s: (s, feeder, calc.takes_numbers(s)) for s, feeder in calc.feeders.items()}
        return _Track(calc, points, self._rollup.scopes_of(m.id), routes=routes)

    # -- input ----------------------------------------------------------------------------------

    def push(self, reading: Reading) -> None:
        """Take one reading.

        Raises:
            ReadingRejected: unknown machine or signal, a value that makes no sense for the
                signal, or data older than the correction horizon. Nothing else is affected.
        """
        ts = (reading.ts - EPOCH) // _ONE_US
        # Plain text, not the member: tuples of plain values (held, or kept whole in the history)
        # are not tracked by the GC.
        self.push_raw(ts, reading.machine, reading.signal, reading.value, QUALITY_TEXT[reading.quality])

    def push_raw(
        self,
        ts: int,
        machine: str,
        signal: str,
        value: Any,
        quality: str = "good",
        received: int | None = None,
    ) -> None:
        """Take one reading given as its parts, ``ts`` in microseconds since the epoch.

        The decoded form of :meth:`push`, for callers that never build a :class:`Reading`
        (``replay`` decodes JSON lines straight into these parts). ``received`` is when the
        pipeline received the reading (µs since the epoch, by its own clock), where known: an
        event time further ahead of it than ``max_future`` is refused.

        Raises:
            ReadingRejected: as :meth:`push`, or an implausible event time (``bad_time``,
                ``future``, ``clock_jump``), or a calculator's own check failing (``internal``).
        """
        track = self._tracks.get(machine)
        if track is None:
            raise ReadingRejected("unknown_machine", f"machine {machine!r} is not in the plant model")
        route = track.routes.get(signal)
        if route is None:
            raise ReadingRejected(
                "unknown_signal", f"signal {signal!r} is not configured for machine {machine!r}"
            )
        if value.__class__ is str and len(value) > MAX_TEXT:
            self._events["rejected_bad_value"] += 1
            raise ReadingRejected(
                "bad_value",
                f"{machine}.{signal}: a text value of {len(value)} characters (at most {MAX_TEXT})",
            )
        if not self._use_receipt:
            received = None
        newest = track.newest if track.newest is not None else track.calc.state.released_until
        if not (
            EARLIEST_US <= ts < LATEST_US
            and (received is None or ts <= received + self._max_future)
            and (newest is None or ts <= newest + self._max_jump)
            and not track.jumps
        ):
            self._check_time(track, ts, received, f"{machine}.{signal}")
        try:
            self._push(track, ts, route, value, _QUALITIES.get(quality, quality))
        except ReadingRejected:
            raise
        except (ValueError, ArithmeticError) as exc:
            # A calculator's own check: the plausibility rules should have refused the value first.
            self._events["rejected_internal"] += 1
            raise ReadingRejected("internal", f"{machine}.{signal}: {exc}") from None
        finally:
            if track.calc.state.ended:
                self._stop_points(track)

    def push_many(
        self,
        readings: Iterable[tuple[int, str, str, Any, str]],
        received: Iterable[int | None] | None = None,
    ) -> list[tuple[int, ReadingRejected]]:
        """Take readings given as their parts ``(ts, machine, signal, value, quality)``, in turn.

        The same as :meth:`push_raw` on each (``received``, if given, holds each one's receipt
        time, in the same order), with one call for the batch: the readings it refuses are
        returned as ``(index in the batch, error)`` instead of raised, and the others are taken
        all the same.

        Raises:
            ValueError: ``received`` is not as long as ``readings`` (once the shorter one ends).
        """
        refused: list[tuple[int, ReadingRejected]] = []
        push = self.push_raw
        # Without receipt times, each reading is paired with None (repeat() never ends).
        paired = (
            zip(readings, repeat(None), strict=False)
            if received is None
            else zip(readings, received, strict=True)
        )
        if self._lateness:
            self._push_many_held(paired, refused)
            return refused
        tracks = self._tracks
        max_future = self._max_future if self._use_receipt else None
        max_jump = self._max_jump
        for i, ((ts, machine, signal, value, quality), at) in enumerate(paired):
            track = tracks.get(machine)
            route = None if track is None else track.routes.get(signal)
            # push_raw's common case inline: a known signal, a plausible time, in order and
            # before any window can close, good or uncertain. Anything else goes to push_raw.
            if (
                track is not None
                and route is not None
                and quality != "bad"
                and (value.__class__ is not str or len(value) <= MAX_TEXT)
            ):
                state = track.calc.state
                released = state.released_until
                newest = track.newest
                if (
                    released is not None
                    and released <= ts <= state.next_check
                    and EARLIEST_US <= ts < LATEST_US
                    and ts <= (released if newest is None else newest) + max_jump
                    and not track.jumps
                    and (at is None or max_future is None or ts <= at + max_future)
                ):
                    self._seq = seq = self._seq + 1
                    name, feeder, _ = route
                    try:
                        feeder(ts, value)
                    except BadValue as exc:
                        self._events[f"rejected_{exc.reason}"] += 1
                        refused.append((i, ReadingRejected(exc.reason, f"{machine}.{name}: {exc}")))
                    except (ValueError, ArithmeticError) as exc:
                        self._events["rejected_internal"] += 1
                        refused.append((i, ReadingRejected("internal", f"{machine}.{name}: {exc}")))
                    else:
                        track.history.append((ts, seq, name, value, _QUALITIES.get(quality, quality)))
                    finally:
                        if state.ended:
                            self._stop_points(track)
                    continue
            try:
                push(ts, machine, signal, value, quality, at)
            except ReadingRejected as exc:
                refused.append((i, exc))
        return refused

    def _push_many_held(
        self,
        paired: Iterable[tuple[tuple[int, str, str, Any, str], int | None]],
        refused: list[tuple[int, ReadingRejected]],
    ) -> None:
        """:meth:`push_many` with readings held for ordering (``run``): the common case inline.

        A finite int or float of a numeric signal (which needs no check before it is held) with
        a plausible time, not behind the released time, that joins the held readings, is pushed
        here without :meth:`push_raw` and :meth:`_push`'s two calls; anything else goes through
        :meth:`push_raw`. Both do the same in the same order (a property test holds them equal).
        """
        push = self.push_raw
        tracks = self._tracks
        lateness = self._lateness
        max_future = self._max_future if self._use_receipt else None
        max_jump = self._max_jump
        for i, ((ts, machine, signal, value, quality), at) in enumerate(paired):
            track = tracks.get(machine)
            route = None if track is None else track.routes.get(signal)
            cls = value.__class__
            if (
                track is not None
                and route is not None
                and route[2]
                and (cls is float or cls is int)
                and value - value == 0
                and not track.jumps
                and EARLIEST_US <= ts < LATEST_US
                and (at is None or max_future is None or ts <= at + max_future)
            ):
                released = track.calc.state.released_until
                newest = track.newest
                held = track.held
                if newest is None:
                    # No newest yet: _check_time's reference is the released time.
                    plausible = released is None or ts <= released + max_jump
                    newest = ts
                else:
                    plausible = ts <= newest + max_jump
                    newest = ts if ts > newest else newest
                watermark = newest - lateness
                if plausible and (released is None or ts >= released) and (held or ts > watermark):
                    track.newest = newest
                    self._seq = seq = self._seq + 1
                    held.push((ts, seq, route[0], value, _QUALITIES.get(quality, quality)))
                    try:
                        self._release_until(track, watermark, seq)
                    except ReadingRejected as exc:
                        refused.append((i, exc))
                    except (ValueError, ArithmeticError) as exc:
                        self._events["rejected_internal"] += 1
                        refused.append((i, ReadingRejected("internal", f"{machine}.{signal}: {exc}")))
                    finally:
                        if track.calc.state.ended:
                            self._stop_points(track)
                    continue
            try:
                push(ts, machine, signal, value, quality, at)
            except ReadingRejected as exc:
                refused.append((i, exc))

    def _check_time(self, track: _Track, ts: int, received: int | None, where: str) -> None:
        """Refuse an implausible event time in O(1), before it can move the machine's time."""
        if not plausible_time(ts):
            self._events["rejected_bad_time"] += 1
            raise ReadingRejected("bad_time", f"{where}: event time {_iso(ts)} is not in 2000-2099")
        if received is not None and ts > received + self._max_future:
            self._events["rejected_future"] += 1
            raise ReadingRejected(
                "future",
                f"{where}: event time {_iso(ts)} is {(ts - received) / 1e6:.0f} s ahead of its receipt "
                f"(max_future_s: {self._max_future / 1e6:g})",
            )
        newest = track.newest if track.newest is not None else track.calc.state.released_until
        if newest is None or ts <= newest + self._max_jump:
            if track.jumps:
                track.jumps.clear()
            return
        if received is not None:
            return  # the receipt time vouches for it: the machine was silent, now it is back
        jumps = track.jumps
        if jumps and abs(ts - jumps[-1]) > self._max_jump:
            jumps.clear()  # not the same new time as the jumps before: start over
        jumps.append(ts)
        if len(jumps) >= REBASE_AFTER:
            jumps.clear()
            self._events["clock_jumps_taken"] += 1
            return
        raise self.clock_jump(where, ts, newest, "the machine's newest")

    def clock_jump(self, where: str, ts: int, newest: int, newest_of: str) -> ReadingRejected:
        """Count a reading refused as a clock jump and say why: ``ts`` is too far past ``newest``.

        The engine judges against a machine's newest event time; ``replay`` also calls this for a
        reading far past the newest of the whole file that the next readings did not confirm.
        """
        self._events["rejected_clock_jump"] += 1
        return ReadingRejected(
            "clock_jump",
            f"{where}: event time {_iso(ts)} is {(ts - newest) / 86_400e6:.1f} days past {newest_of} "
            f"{_iso(newest)} (max_clock_jump_s: {self._max_jump / 1e6:g}; taken after "
            f"{REBASE_AFTER} readings in a row confirm it)",
        )

    def _push(
        self,
        track: _Track,
        ts: int,
        route: tuple[str, Callable[[int, Any], None], bool],
        value: Any,
        quality: str,
    ) -> None:
        signal, feeder, numeric = route
        calc = track.calc
        self._seq = seq = self._seq + 1
        item = (ts, seq, signal, value, quality)
        state = calc.state
        released = state.released_until
        if released is not None and ts < released:
            self._correct(track, item)
            return
        if not self._lateness:
            if released is not None and ts <= state.next_check and quality != "bad":
                # In order and no window can close: the common case, kept to one call.
                try:
                    feeder(ts, value)
                except BadValue as exc:
                    self._events[f"rejected_{exc.reason}"] += 1
                    raise ReadingRejected(exc.reason, f"{calc.spec.id}.{signal}: {exc}") from None
                track.history.append(item)
                return
            self._release(track, item)
            return
        cls = value.__class__
        # A finite int or float needs no more checking on a numeric signal (x - x is 0 for those only).
        if quality != "bad" and not (numeric and (cls is float or cls is int) and value - value == 0):
            try:
                calc.check(signal, value, quality)  # refused now, as itself, not when released
            except BadValue as exc:
                self._events[f"rejected_{exc.reason}"] += 1
                raise ReadingRejected(exc.reason, f"{calc.spec.id}.{signal}: {exc}") from None
        newest = track.newest
        if newest is None or ts > newest:
            track.newest = newest = ts
        watermark = newest - self._lateness
        if ts <= watermark and not track.held:
            # Already behind the watermark with nothing held before it: released at once, as
            # holding would release it, without being held.
            try:
                self._release(track, item)
            except ReadingRejected as exc:
                raise ReadingRejected(exc.reason, f"{exc} (event time {_iso(ts)})") from None
            return
        track.held.push(item)
        self._release_until(track, watermark, seq)

    def _release_until(self, track: _Track, watermark: int | None, pushed: int | None = None) -> None:
        """Release the held readings up to ``watermark`` (all if ``None``), in event-time order.

        Raises:
            ReadingRejected: the first reading refused on release (an implausible value only
                shows against the readings before it), with ``held`` set unless it is the one
                numbered ``pushed``; the others are released all the same.
        """
        waiting = track.held
        if not waiting or (watermark is not None and waiting.oldest_time() > watermark):
            return
        refused = None
        calc = track.calc
        feeders = calc.feeders
        append = track.history.append
        # Nothing released pushes to this machine's held readings, so they are taken as a batch;
        # each counts as taken once its release begins.
        due = waiting.up_to(watermark)
        taken = 0
        try:
            for item in due:
                taken += 1
                ts, _, signal, value, quality = item
                try:
                    state = calc.state
                    released = state.released_until
                    if (
                        released is not None
                        and ts <= state.next_check
                        and quality != "bad"
                        and signal != _TICK
                    ):
                        # :meth:`_release`'s common case (no window can close), without the call.
                        try:
                            feeders[signal](ts, value)
                        except BadValue as exc:
                            self._events[f"rejected_{exc.reason}"] += 1
                            raise ReadingRejected(exc.reason, f"{calc.spec.id}.{signal}: {exc}") from None
                        append(item)
                    else:
                        self._release(track, item)
                except ReadingRejected as exc:
                    if refused is None:
                        ts, seq, signal, value, quality = item
                        held = None if seq == pushed else (ts, track.calc.spec.id, signal, value, quality)
                        refused = ReadingRejected(exc.reason, f"{exc} (event time {_iso(ts)})", held)
        finally:
            waiting.drop(taken)
        if refused is not None:
            raise refused

    def tick(self, machine: str, ts: int) -> None:
        """The machine's source has reported up to ``ts`` (µs) and has nothing newer for this machine.

        A tick moves the machine's event time on like a reading that changes nothing, so the
        windows of a quiet machine close (its state holds; no pieces, no energy are invented). It
        is ordered, held and corrected like a reading: real data older than the watermark that
        arrives after a tick corrects the windows it closed. A machine with no data yet, and a tick
        not newer than what the machine has seen, are ignored (time with no data stays unknown).

        Raises:
            ReadingRejected: unknown machine.
        """
        track = self._tracks.get(machine)
        if track is None:
            raise ReadingRejected("unknown_machine", f"machine {machine!r} is not in the plant model")
        released = track.calc.state.released_until
        # Readings up to ``allowed_lateness`` older than ``ts`` may still come: the tick itself
        # stands at the watermark, so it is released at once and they land after it, in order.
        at = ts - self._lateness
        if track.newest is None or ts <= track.newest or (released is not None and at <= released):
            return
        if not plausible_time(ts) or ts > track.newest + self._max_jump:
            return  # a tick only hints that time moved on: one from a wrong clock is dropped
        self._seq = seq = self._seq + 1
        self._events["ticks"] += 1
        track.held.push((at, seq, _TICK, None, "good"))
        track.newest = ts
        with self._counted():
            self._release_until(track, at)
        if track.calc.state.ended:
            self._stop_points(track)

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """For work no single reading asked for (a tick, the end of the input): refusals are counted.

        A held reading refused on release is counted under its reason already; a calculator's own
        check failing is counted as ``internal``. Neither stops the engine.
        """
        try:
            yield
        except ReadingRejected:
            pass
        except (ValueError, ArithmeticError):
            self._events["rejected_internal"] += 1

    @property
    def stats(self) -> Counter[str]:
        """Readings taken, late readings corrected, windows re-emitted, readings refused by reason.

        ``meters_rebased`` counts the counters and meters followed to a new baseline (a replaced meter).
        """
        rebased = sum(t.calc.state.stats.rebased for t in self._tracks.values())
        return self._events + Counter(readings=self._seq - self._events["ticks"], meters_rebased=rebased)

    @property
    def has_points(self) -> bool:
        """True when :meth:`take_points` has something to return."""
        return bool(self._out)

    def flush(self) -> None:
        """The input has ended: release everything held and close every window."""
        for track in self._tracks.values():
            with self._counted():
                self._release_until(track, None)
        for mid, track in self._tracks.items():
            with self._counted():
                self._results(mid, track, track.calc.close_all())
            if track.calc.state.ended:
                self._stop_points(track)
        self._out.extend(self._rollup.flush())

    @staticmethod
    def newest_event(checkpoint: dict[str, Any]) -> int | None:
        """The newest event time (µs) any machine had seen in a :meth:`checkpoint`, if any."""
        times = [m["newest"] for m in checkpoint.get("machines", {}).values() if m.get("newest") is not None]
        return max(times, default=None)

    def cumulative_values(self, checkpoint: dict[str, Any]) -> dict[str, dict[str, float]]:
        """Per machine of a :meth:`checkpoint`, the newest raw value of each cumulative signal.

        Counters, energy registers and fuel meters, taken or still held for ordering: what the
        machine's PLC showed when the checkpoint was written.

        Raises:
            KeyError, TypeError, ValueError: the checkpoint is not one of this engine's version.
        """
        out: dict[str, dict[str, float]] = {}
        for machine, saved in checkpoint["machines"].items():
            track = self._tracks.get(machine)
            if track is None:
                continue
            spec = track.calc.spec
            state = saved["state"]
            values: dict[str, float] = dict(state["counter_last"])
            if state["register_last"] is not None and spec.energy_signal is not None:
                values[spec.energy_signal] = state["register_last"][1]
            values.update({signal: last[1] for signal, last in state["fuel_last"].items()})
            cumulative = {*spec.counters, *spec.fuels, spec.energy_signal}
            # Readings held for ordering are newer than the state (oldest first: the last wins).
            for _ts, _seq, signal, value, _quality in sorted(saved["held"]):
                if signal in cumulative and value.__class__ in (int, float):
                    values[signal] = value
            out[machine] = values
        return out

    def checkpoint(self) -> dict[str, Any]:
        """A JSON-ready snapshot of everything needed to continue after a restart.

        Held readings, machine states and roll-ups still waiting for machines are kept; the
        correction history is not: after a restore, the restored state is the base for
        corrections, and data older than it is refused as too late instead of correcting windows
        emitted before the restart.
        """
        return {
            "version": CHECKPOINT_VERSION,
            "seq": self._seq,
            "stats": dict(self.stats),
            "machines": {
                mid: {
                    "state": t.calc.state.to_dict(),
                    "held": t.held.rows(),  # tuples, oldest first: JSON arrays, as restore reads them
                    "newest": t.newest,
                }
                for mid, t in self._tracks.items()
            },
            "rollups": self._rollup.checkpoint(),
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Continue from a :meth:`checkpoint` of an engine built from the same plant.

        Raises:
            ValueError: the checkpoint is of another version, or names machines the plant lacks.
        """
        if data.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {data.get('version')!r}, expected {CHECKPOINT_VERSION}")
        unknown = sorted(set(data["machines"]) - set(self._tracks))
        if unknown:
            raise ValueError(f"checkpoint has machines the plant file does not: {', '.join(unknown)}")
        self._seq = data["seq"]
        stats = Counter(data["stats"])
        stats.pop("readings", None)
        stats.pop("meters_rebased", None)  # counted from the machine states restored below
        self._events = stats
        for mid, saved in data["machines"].items():
            track = self._tracks[mid]
            track.calc.state = MachineState.from_dict(saved["state"], track.calc.spec.schedule)
            track.held = Held((ts, seq, sig, val, q) for ts, seq, sig, val, q in saved["held"])
            track.newest = saved["newest"]
            track.history, track.snapshots, track.emitted, track.stops = History(), [], {}, {}
            released = track.calc.state.released_until
            track.restored_until = released
            if released is not None:
                # The restored state is a base for corrections: a reading behind the released time
                # but after the checkpoint corrects from here; older ones are too late (their windows
                # were emitted before the restart and their history is gone).
                track.snapshots.append((released + 1, track.calc.state.snapshot(), 0))
        self._rollup.restore(data["rollups"])

    def take_points(self) -> list[Point]:
        """Return and forget the points produced so far, in emission order."""
        out, self._out = self._out, []
        return out

    def take_results(self) -> list[tuple[str, WindowResult]]:
        """Return and forget the machine window results emitted so far (with ``keep_results``).

        Each new or corrected window once, as ``(machine, result)`` in emission order.
        """
        out, self._results_out = self._results_out, []
        return out

    def shift_so_far(self, machine: str) -> tuple[WindowResult, int] | None:
        """``machine``'s current shift so far, from the readings released so far.

        See :meth:`streams.machine.MachineCalc.shift_so_far`; readings held for ordering are not
        in it yet.

        Raises:
            KeyError: ``machine`` is not in the plant.
        """
        return self._tracks[machine].calc.shift_so_far()

    def stop_at(self, machine: str, at: int) -> int:
        """The start (µs) of ``machine``'s stop that ``at`` falls in, for an operator's reason.

        A stop that ended (``start <= at < end``) or the one open now (``start <= at``); it must
        lie within ``correction_horizon_s`` and the correction history kept, since the reason
        reaches it as a late reading at its start (:mod:`streams.operator_reason`).

        Raises:
            streams.operator_reason.ReasonRefused: ``unknown_machine``, ``no_state`` (a machine
                without a state signal has no stops), ``too_late`` or ``no_stop``.
        """
        track = self._tracks.get(machine)
        if track is None:
            known = ", ".join(sorted(self._tracks)[:20])
            raise ReasonRefused(
                "unknown_machine", f"machine: {machine!r} is not in the plant (machines: {known})"
            )
        calc = track.calc
        if not calc.spec.state_signal:
            raise ReasonRefused(
                "no_state", f"machine: {machine!r} has no state signal, so no stops to give a reason"
            )
        released = calc.state.released_until
        if released is not None and at < released - self._horizon:
            raise ReasonRefused(
                "too_late",
                f"at: {_iso(at)} is more than correction_horizon_s ({self._horizon / 1e6:g}) behind "
                f"{machine}'s time {_iso(released)}",
            )
        start = calc.state.stop.start
        if start is None or at < start:
            start = next((s for s, (_, e) in track.stops.items() if s <= at < e.end), None)
        if start is None:
            ended = sorted(track.stops)
            near = [_iso(s) for s in ended if s <= at][-3:]
            hint = f"the stops before it start at {', '.join(near)}" if near else "no stop before it is kept"
            raise ReasonRefused("no_stop", f"at: {machine} was not stopped at {_iso(at)} ({hint})")
        if not any(boundary <= start for boundary, _, _ in track.snapshots) and start != released:
            raise ReasonRefused(
                "too_late",
                f"at: the stop at {_iso(start)} is older than the correction history kept "
                "(correction_history_max or correction_history_bytes, or the last restart)",
            )
        return start

    def open_stop(self, machine: str) -> tuple[int, str, Reason, str] | None:
        """``machine``'s stop open at its released time, ``None`` while it is not stopped.

        Its start (µs), state category, and the reason and cause (``first``, ``last`` or
        ``operator``) it would be written with if it ended now (:mod:`streams.stops`).
        """
        track = self._tracks[machine]
        stop = track.calc.state.stop
        if stop.start is None:
            return None
        code, cause = stop.current()
        reason = self.spec.reasons.resolve(code, track.calc.spec.machine_type)
        return stop.start, stop.state, reason, cause

    def closed_until(self, machine: str) -> int | None:
        """Until when (µs) ``machine`` has closed every window; ``None`` before it released a reading."""
        state = self._tracks[machine].calc.state
        return None if state.released_until is None else state.closed_until

    # -- release and correction -----------------------------------------------------------------

    def _release(self, track: _Track, item: _Released) -> None:
        ts, _, signal, value, quality = item
        calc = track.calc
        state = calc.state
        previous = state.released_until
        if signal == _TICK:
            self._release_tick(track, item)
            return
        try:
            if previous is not None and ts <= state.next_check:
                # No window can close: the common case.
                if quality == "bad":
                    calc.feed(ts, signal, value, quality)
                else:
                    calc.feeders[signal](ts, value)
                track.history.append(item)
                return
            calc.check(signal, value, quality)
        except BadValue as exc:
            self._events[f"rejected_{exc.reason}"] += 1
            raise ReadingRejected(exc.reason, f"{calc.spec.id}.{signal}: {exc}") from None
        closed = calc.advance(ts)
        if previous is None or (closed and ts > previous and self._snapshot_due(track)):
            self._snapshot(track, ts)
        refused = None
        try:
            calc.feed(ts, signal, value, quality)
        except BadValue as exc:
            # Time has moved (the windows before ``ts`` are closed); only the value is refused.
            refused = exc
        else:
            track.history.append(item)
        if closed:
            self._results(calc.spec.id, track, closed)
        if refused is not None:
            self._events[f"rejected_{refused.reason}"] += 1
            raise ReadingRejected(refused.reason, f"{calc.spec.id}.{signal}: {refused}")

    def _release_tick(self, track: _Track, item: _Released) -> None:
        ts = item[0]
        calc = track.calc
        previous = calc.state.released_until
        if previous is None or ts <= previous:
            return  # overtaken by real data: it already moved time this far
        closed = calc.advance(ts)
        if closed and self._snapshot_due(track):
            self._snapshot(track, ts)
        # Later data before ``ts`` must correct what the tick closed, not be fed in the past.
        calc.state.released_until = ts
        track.history.append(item)
        if closed:
            self._results(calc.spec.id, track, closed)

    def _over_share(self, history: History) -> bool:
        """Whether ``history`` holds more than a machine's share, in readings or in bytes."""
        return len(history) > self._history_share or history.nbytes > self._history_bytes_share

    def _kept_from(self, machine: str) -> int | None:
        """Where ``machine``'s corrections start: its oldest snapshot (``None`` before it has one)."""
        snapshots = self._tracks[machine].snapshots
        return snapshots[0][0] if snapshots else None

    def _snapshot_due(self, track: _Track) -> bool:
        """Snapshot every few window closes, and at every close while the history is over its share.

        Every few: a correction then re-applies a few more readings, for fewer state copies.
        Over the share: the history can only be cut at a snapshot, so with snapshots every few
        windows it would stand at its share plus that many windows of readings (2.5 times the
        bound in a soak at 2,000 tags); cut at every close, it stays within one window of it.
        """
        track.closes += 1
        return track.closes % _SNAPSHOT_EVERY == 0 or self._over_share(track.history)

    def _snapshot(self, track: _Track, boundary: int) -> None:
        """Remember the state holding every reading before ``boundary``; forget what the horizon passed."""
        snapshots = track.snapshots
        history = len(track.history)
        snapshots.append((boundary, track.calc.state.snapshot(), history))
        horizon = boundary - self._horizon
        over = self._over_share(track.history)
        # Prune in batches so that the history is not cut at every window close.
        if not over and (len(snapshots) < _PRUNE_BATCH or snapshots[_PRUNE_BATCH - 1][0] > horizon):
            return
        # The newest snapshot at or before the horizon is the base for corrections ...
        keep_from = max((i for i, (b, _, _) in enumerate(snapshots) if b <= horizon), default=0)
        if over:
            # ... or, over its share, the oldest one that leaves at most the share (the newest
            # always qualifies: it was taken at the end of the history).
            by_size = next(
                i
                for i, (_, _, at) in enumerate(snapshots)
                if history - at <= self._history_share
                and track.history.nbytes_from(at) <= self._history_bytes_share
            )
            if by_size > keep_from:
                self._events["history_trimmed"] += snapshots[by_size][2] - snapshots[keep_from][2]
                keep_from = by_size
        base, _, cut = snapshots[keep_from]
        track.snapshots = [(b, s, idx - cut) for b, s, idx in snapshots[keep_from:]]
        del track.history[:cut]
        # A window that ended before the base snapshot can no longer change: forget its result.
        forget_before = max(horizon, base)
        for key in [key for key, (_, r) in track.emitted.items() if r.end < forget_before]:
            del track.emitted[key]
        for start in [start for start, (_, e) in track.stops.items() if e.end < forget_before]:
            del track.stops[start]

    def _correct(self, track: _Track, item: _Released) -> None:
        ts, _, signal, value, quality = item
        try:
            track.calc.check(signal, value, quality)
        except BadValue as exc:
            self._events[f"rejected_{exc.reason}"] += 1
            raise ReadingRejected(exc.reason, f"{track.calc.spec.id}.{signal}: {exc}") from None
        chosen = None
        for i, (boundary, _, _) in enumerate(track.snapshots):
            if boundary <= ts:
                chosen = i
        released = track.calc.state.released_until or ts
        if chosen is None or ts < released - self._horizon:
            if _beyond_last(track.calc, signal, value, quality):
                # A cumulative value higher than any this machine has shown (after a restart, or
                # a counter's last change delivered late): refusing it would lose its increase
                # for good if no later sample comes. It is taken as of the released time, so the
                # increase counts, in the open window rather than the one it belonged to.
                self._events["late_cumulative_retimed"] += 1
                self._release(track, (released, item[1], signal, value, quality))
                return
            reason, why = self._why_not_corrected(track, item, chosen is None)
            self._events[f"rejected_{reason}"] += 1
            raise ReadingRejected(reason, f"{track.calc.spec.id}.{signal}: {why}")
        _, state, index = track.snapshots[chosen]
        replay = track.history[index:]
        insort(replay, item)
        track.calc.state = state.copy()
        del track.history[index:]
        del track.snapshots[chosen + 1 :]  # the chosen one still holds: the history up to it is unchanged
        self._events["late_readings"] += 1
        refused = None
        for released_item in replay:
            try:
                self._release(track, released_item)
            except ReadingRejected as exc:
                # In its new place a reading can become implausible (a counter's late sample
                # changes the baseline of the next): it is dropped, the others still apply.
                if released_item is item:
                    refused = exc
                else:
                    self._events["dropped_on_correction"] += 1
        if refused is not None:
            raise refused

    def _why_not_corrected(self, track: _Track, item: _Released, no_base: bool) -> tuple[str, str]:
        """The reason and message for a reading that cannot correct the past, as it really is."""
        ts, _, _, value, _ = item
        if self._is_duplicate(track, item):
            return "duplicate", f"the same value at {_iso(ts)} was already counted"
        released = track.calc.state.released_until or ts
        if ts < released - self._horizon:
            return "too_late", (
                f"{_iso(ts)} is more than correction_horizon_s ({self._horizon / 1e6:g}) "
                f"behind the machine's time {_iso(released)}"
            )
        restored = track.restored_until
        if no_base and restored is not None and ts <= restored:
            return "before_restart", (
                f"{_iso(ts)} is at or before {_iso(restored)}, which was already counted before the restart"
            )
        return "too_late", (
            f"{_iso(ts)} is older than the correction history kept (correction_history_max or "
            "correction_history_bytes); "
            f"the value {value!r} is not applied"
        )

    @staticmethod
    def _is_duplicate(track: _Track, item: _Released) -> bool:
        """The same signal, time and value is in the history, or is the cumulative value last taken."""
        ts, _, signal, value, quality = item
        history = track.history
        i = history.bisect_time(ts)
        # Readings of one event time are few: the scan is short.
        while i < len(history) and history[i][0] == ts:
            _, _, s, v, q = history[i]
            if s == signal and v == value and q == quality:
                return True
            i += 1
        state, spec = track.calc.state, track.calc.spec
        if signal in spec.counters:
            return state.counter_last.get(signal) == value and state.counter_at.get(signal) == ts
        if signal == spec.energy_signal:
            return state.register_last == (ts, value)
        return state.fuel_last.get(signal) == (ts, value)

    # -- output ---------------------------------------------------------------------------------

    def _stop_points(self, track: _Track) -> None:
        """The ``stop`` points of the stops ``track``'s machine ended; a changed one is a correction."""
        spec = track.calc.spec
        for event in track.calc.take_stops():
            previous = track.stops.get(event.start)
            if previous is not None and previous[1] == event:
                continue  # the same stop again, from a correction's replay
            revision = 0 if previous is None else previous[0] + 1
            if previous is not None:
                self._events["stops_corrected"] += 1
            track.stops[event.start] = (revision, event)
            reason = self.spec.reasons.resolve(event.code, spec.machine_type)
            self._out.append(stop_point(track.points.tags, event, reason, revision))

    def _results(self, mid: str, track: _Track, results: list[WindowResult]) -> None:
        touched = []
        for result in results:
            key = (result.kind, result.start)
            previous = track.emitted.get(key)
            if previous is not None and previous[1] == result:
                continue
            revision = 0 if previous is None else previous[0] + 1
            if previous is not None:
                self._events["windows_corrected"] += 1
            track.emitted[key] = (revision, result)
            self._out.extend(track.points.points(result, revision))
            if self._keep_results:
                self._results_out.append((mid, result))
            for scope in track.scopes:
                self._out.extend(self._rollup.add(scope, mid, result))
                touched.append(scope)
        for scope in dict.fromkeys(touched):
            self._out.extend(self._rollup.ready(scope, self.closed_until))


def _iso(ts: int) -> str:
    """``ts`` (µs since the epoch) as an ISO 8601 UTC time, or the number when no date can hold it."""
    try:
        return (EPOCH + timedelta(microseconds=ts)).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return f"{ts} µs since 1970"


def _beyond_last(calc: MachineCalc, signal: str, value: Any, quality: str) -> bool:
    """Whether ``value`` of a counter, energy register or fuel meter exceeds the last one taken."""
    if quality == "bad" or value.__class__ not in (int, float):
        return False
    state, spec = calc.state, calc.spec
    if signal in spec.counters:
        last: float | None = state.counter_last.get(signal)
    elif signal == spec.energy_signal:
        last = state.register_last[1] if state.register_last is not None else None
    elif signal in spec.fuels:
        fuel = state.fuel_last.get(signal)
        last = fuel[1] if fuel is not None else None
    else:
        return False
    return last is not None and value > last
