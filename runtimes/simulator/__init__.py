"""``plantstream simulate``: an OPC UA server (and MQTT publisher) standing in for a plant.

The simulation itself is pure and deterministic (:mod:`runtimes.simulator.model`); the server
(:mod:`runtimes.simulator.server`) drives it in real time, ``speed`` simulated seconds per wall
second, and serves its tags, its load tags and its ground truth.
"""

from __future__ import annotations

from runtimes.simulator.model import (
    MeterSample,
    PlantSimulation,
    TagSpec,
    TagUpdate,
    generic_plant,
)
from runtimes.simulator.server import (
    DEMO_PLANT,
    NAMESPACE_URI,
    SimulatorOptions,
    SimulatorServer,
    SimulatorStats,
    run,
)

__all__ = [
    "DEMO_PLANT",
    "NAMESPACE_URI",
    "MeterSample",
    "PlantSimulation",
    "SimulatorOptions",
    "SimulatorServer",
    "SimulatorStats",
    "TagSpec",
    "TagUpdate",
    "generic_plant",
    "run",
]
