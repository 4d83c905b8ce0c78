"""One collector per source of a plant file: the runtimes' shared way to open them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from collectors.mqtt import MqttCollector
from collectors.opcua import OpcUaCollector
from plantstream.plant.schema import MqttSource, Source
from plantstream.records import DeadLetter

__all__ = ["AnyCollector", "build_collectors"]

AnyCollector = MqttCollector | OpcUaCollector


def build_collectors(
    sources: Sequence[Source],
    machines: Mapping[str, str],
    on_dead_letter: Callable[[DeadLetter], None],
    state_dir: Path,
) -> list[AnyCollector]:
    """A collector for each source, in file order.

    ``machines`` maps machine id to line id (MQTT topics are checked against it); ``state_dir``
    holds what collectors keep (OPC UA application certificates).
    """
    return [
        MqttCollector(source, machines, on_dead_letter=on_dead_letter)
        if isinstance(source, MqttSource)
        else OpcUaCollector(source, on_dead_letter=on_dead_letter, state_dir=state_dir)
        for source in sources
    ]
