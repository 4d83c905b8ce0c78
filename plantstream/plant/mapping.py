"""Check that sources map their tags onto the plant model, before a reading is ever dead-lettered.

A tag naming a machine or signal that the plant does not have would make every one of its readings
an ``unknown_machine`` dead letter at run time: a silent hole in OEE. Here it is a configuration
error naming the tag and the closest machine or signal. A signal that no source can deliver is only
a warning: it may be fed another way (a replayed file, a second pipeline).

What can be known before the first message: an OPC UA tag names its machine and signal; an MQTT
subscription names them with ``machine:``/``signal:``, in its JSON ``fields`` or Sparkplug
``metrics``, or leaves them to ``{machine}``/``{signal}`` levels of the topic, which any machine or
signal may fill.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from plantstream.plant.schema import MqttSource, MqttSubscription, OpcUaSource, PlantModel, Source

__all__ = ["machine_signals", "mapping_problems", "mapping_problems_in", "unmapped_signals"]

KeyPath = tuple[str | int, ...]

_SUGGESTED = 200
"""Problems that get a suggestion (as many as a plant error lists)."""


def mapping_problems(model: PlantModel) -> list[tuple[KeyPath, str]]:
    """Every source tag that names a machine or signal the plant does not have, with a suggestion."""
    return _Mapping(machine_signals(model), model.sources).problems


def mapping_problems_in(
    signals: Mapping[str, list[str]], sources: Sequence[Source | None]
) -> list[tuple[KeyPath, str]]:
    """As :func:`mapping_problems`, for ``sources`` against machine id -> signal names.

    A ``None`` source (one that is itself invalid) is skipped and keeps its index in the paths.

    The loader uses it when the sites section has other problems but still names its machines
    and signals, so a typo in a tag is reported in the same run.
    """
    return _Mapping(signals, sources).problems


def machine_signals(model: PlantModel) -> dict[str, list[str]]:
    """Machine id -> its signal names, in file order."""
    return {m.id: list(m.signals) for _, _, m in model.machines()}


def unmapped_signals(model: PlantModel) -> list[tuple[KeyPath, str]]:
    """Signals no source can deliver (none when the plant has no sources: readings come from files)."""
    if not model.sources:
        return []
    mapping = _Mapping(machine_signals(model), model.sources)
    out: list[tuple[KeyPath, str]] = []
    for s, site in enumerate(model.sites):
        for li, line in enumerate(site.lines):
            for mi, machine in enumerate(line.machines):
                for name in machine.signals:
                    if not mapping.delivers(machine.id, name):
                        out.append(
                            (
                                ("sites", s, "lines", li, "machines", mi, "signals", name),
                                f"signal {name!r} of machine {machine.id!r} is mapped by no source: "
                                "it will have no readings",
                            )
                        )
    return out


@dataclass
class _Mapping:
    """What the sources deliver, and what they name that does not exist."""

    signals: Mapping[str, list[str]]
    sources: Sequence[Source | None]
    problems: list[tuple[KeyPath, str]] = field(default_factory=list)
    pairs: set[tuple[str, str]] = field(default_factory=set)  # (machine, signal) named exactly
    any_signal_of: set[str] = field(default_factory=set)  # machines whose every signal may arrive
    signal_of_any: set[str] = field(default_factory=set)  # signals any machine may deliver
    everything: bool = False  # a topic with {machine} and {signal}

    def __post_init__(self) -> None:
        self.signal_names = {name for names in self.signals.values() for name in names}
        self.every_signal = sorted(self.signal_names)
        for i, source in enumerate(self.sources):
            if isinstance(source, OpcUaSource):
                self._opcua(source, ("sources", i))
            elif isinstance(source, MqttSource):
                for k, sub in enumerate(source.subscriptions):
                    self._mqtt(sub, ("sources", i, "subscriptions", k))

    def delivers(self, machine: str, signal: str) -> bool:
        """Whether some source can deliver ``signal`` of ``machine``."""
        return (
            self.everything
            or (machine, signal) in self.pairs
            or machine in self.any_signal_of
            or signal in self.signal_of_any
        )

    def _opcua(self, source: OpcUaSource, path: KeyPath) -> None:
        for g, group in enumerate(source.groups):
            for t, tag in enumerate(group.tags):
                where = (*path, "groups", g, "tags", t)
                address = tag.node or tag.browse_path
                if self._machine_exists(tag.machine, (*where, "machine"), f"tag {address}: "):
                    self._signal_of(tag.machine, tag.signal, (*where, "signal"), f"tag {address}: ")
        if source.events is not None:
            for w, match in enumerate(source.events.where):
                where = (*path, "events", "where", w)
                what = f"event source {match.source_node or match.source_name}: "
                if self._machine_exists(match.machine, (*where, "machine"), what):
                    self._signal_of(match.machine, match.signal, (*where, "signal"), what)

    def _mqtt(self, sub: MqttSubscription, path: KeyPath) -> None:
        levels = set(sub.topic.split("/"))
        if sub.payload == "sparkplug_b":
            # The machine is the Sparkplug device (or edge node), known only when a message comes.
            for metric, signal in sub.metrics.items():
                self._signal_of_some(signal, (*path, "metrics", metric), f"metric {metric!r}: ")
            return
        machine = None if "{machine}" in levels else sub.machine
        what = f"topic {sub.topic}: "
        if machine is not None and not self._machine_exists(machine, (*path, "machine"), what):
            return
        named: list[tuple[str, KeyPath]] = []
        if sub.payload == "number":
            if "{signal}" in levels:
                if machine is None:
                    self.everything = True
                else:
                    self.any_signal_of.add(machine)
            elif sub.signal is not None:
                named.append((sub.signal, (*path, "signal")))
        else:
            named.extend((f.signal, (*path, "fields", n, "signal")) for n, f in enumerate(sub.fields))
        for signal, where in named:
            if machine is None:
                self._signal_of_some(signal, where, what)
            else:
                self._signal_of(machine, signal, where, what)

    def _machine_exists(self, machine: str, where: KeyPath, what: str) -> bool:
        if machine in self.signals:
            return True
        close = self._closest(machine, self.signals)
        hint = f" (did you mean {close!r}?)" if close else ""
        self.problems.append((where, f"{what}machine {machine!r} is not in the plant{hint}"))
        return False

    def _signal_of(self, machine: str, signal: str, where: KeyPath, what: str) -> None:
        known = self.signals[machine]
        if signal in known:
            self.pairs.add((machine, signal))
            return
        close = self._closest(signal, known)
        hint = f"did you mean {close!r}? " if close else ""
        self.problems.append(
            (
                where,
                f"{what}machine {machine!r} has no signal {signal!r} ({hint}its signals: {', '.join(known)})",
            )
        )

    def _signal_of_some(self, signal: str, where: KeyPath, what: str) -> None:
        if signal in self.signal_names:
            self.signal_of_any.add(signal)
            return
        close = self._closest(signal, self.every_signal)
        hint = f" (did you mean {close!r}?)" if close else ""
        self.problems.append((where, f"{what}no machine has a signal {signal!r}{hint}"))

    def _closest(self, word: str, candidates: Iterable[str]) -> str | None:
        # A suggestion compares the word with every candidate; beyond the problems a report lists,
        # a generated file of thousands of wrong tags would pay that for nothing.
        if len(self.problems) >= _SUGGESTED:
            return None
        close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
        return close[0] if close else None
