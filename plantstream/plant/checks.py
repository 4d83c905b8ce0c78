"""What one model cannot see alone: ids unique across the file, references between sections."""

from __future__ import annotations

from plantstream.plant.cbam_checks import _cross_check_cbam
from plantstream.plant.plant_model import PlantModel
from plantstream.plant.signals import Role
from plantstream.plant.sources import OpcUaSource

__all__ = ["cross_check"]


def cross_check(plant: PlantModel) -> list[tuple[tuple[str | int, ...], str]]:
    """Check what one model cannot see alone: unique ids, calendar and CBAM references.

    Returns (key path, message) pairs, so the loader can point at the offending line.
    """
    issues: list[tuple[tuple[str | int, ...], str]] = []
    sink_ids: set[str] = set()
    for i, sink in enumerate(plant.sinks):
        if sink.id in sink_ids:
            issues.append(
                (("sinks", i, "id"), f"sink id {sink.id!r} is used twice (it names the outbox file)")
            )
        sink_ids.add(sink.id)
    known = (
        "defined: " + ", ".join(sorted(plant.calendars)) if plant.calendars else "no calendars are defined"
    )
    owners: dict[str, tuple[str | int, ...]] = {}
    for s, site in enumerate(plant.sites):
        site_path: tuple[str | int, ...] = ("sites", s)
        refs = [((*site_path, "calendar"), site.calendar)]
        for li, line in enumerate(site.lines):
            line_path = (*site_path, "lines", li)
            refs.append(((*line_path, "calendar"), line.calendar))
            for mi, machine in enumerate(line.machines):
                path = (*line_path, "machines", mi)
                refs.append(((*path, "calendar"), machine.calendar))
                if machine.id in owners:
                    issues.append(
                        (
                            (*path, "id"),
                            f"machine id {machine.id!r} is used twice (readings name machines by id)",
                        )
                    )
                owners.setdefault(machine.id, path)
        for ref_path, ref in refs:
            if ref is not None and ref not in plant.calendars:
                issues.append((ref_path, f"unknown calendar {ref!r} ({known})"))
    issues.extend(plant.reasons.problems())
    issues.extend(_event_signal_roles(plant))
    if plant.cbam is not None:
        issues.extend(_cross_check_cbam(plant, plant.cbam))
    return issues


def _event_signal_roles(plant: PlantModel) -> list[tuple[tuple[str | int, ...], str]]:
    """An event's reason goes to a signal with role ``reason`` (existence is mapping.py's check)."""
    machines = {m.id: m for _, _, m in plant.machines()}
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for i, source in enumerate(plant.sources):
        if not isinstance(source, OpcUaSource) or source.events is None:
            continue
        for w, match in enumerate(source.events.where):
            machine = machines.get(match.machine)
            signal = machine.signals.get(match.signal) if machine is not None else None
            if signal is not None and signal.role is not Role.REASON:
                issues.append(
                    (
                        ("sources", i, "events", "where", w, "signal"),
                        f"signal {match.signal!r} of machine {match.machine!r} has role {signal.role.value}; "
                        "events set a signal with role reason",
                    )
                )
    return issues
