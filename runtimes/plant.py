"""Load a plant file and resolve it for the calculators, with every error pointing at a line."""

from __future__ import annotations

from pathlib import Path

from plantstream.plant import LoadedPlant, PlantError, PlantIssue, load_plant
from streams.cbam_ledger import build_cbam_spec
from streams.config import ConfigProblem, EngineSpec, build_spec

__all__ = ["load_and_resolve"]


def load_and_resolve(path: str | Path) -> tuple[LoadedPlant, EngineSpec]:
    """Validate the plant file at ``path`` and resolve its reference data.

    Raises:
        PlantError: listing every problem as ``file:line key.path: message``.
    """
    try:
        plant = load_plant(path)
    except PlantError as exc:
        if exc.plant is None:
            raise
        # The model is whole (only its source mapping is wrong): its reference data is checked too,
        # so one run reports every problem.
        raise PlantError([*exc.issues, *_resolve(exc.plant)[1]]) from None
    spec, problems = _resolve(plant)
    if spec is None:
        raise PlantError(problems)
    return plant, spec


def _resolve(plant: LoadedPlant) -> tuple[EngineSpec | None, list[PlantIssue]]:
    try:
        spec = build_spec(plant.model)
        build_cbam_spec(plant.model)  # the cbam section's reference data, checked before anything starts
    except ConfigProblem as exc:
        return None, [plant.issue(p, message) for p, message in exc.problems]
    return spec, []
