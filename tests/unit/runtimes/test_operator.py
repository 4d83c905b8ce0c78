"""``plantstream reason --kafka``: the reading it sends, checked against the plant file only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from plantstream.plant import parse_plant
from runtimes.operator import operator_reading
from streams.config import EngineSpec, build_spec
from streams.operator_reason import ReasonRefused

PLANT = """
sites:
  - id: s
    timezone: UTC
    country: VN
    lines:
      - id: l
        machines:
          - id: packer1
            type: packer
            signals: {state: state, fault: reason}
          - id: meter1
            signals: {power: power_kw}
reasons:
  groups: {material: small_stop, mechanical: breakdown}
  codes:
    302: {reason: guard door open, group: mechanical}
  machine_types:
    packer:
      302: {reason: film break, group: material}
"""


def build_spec_of(text: str) -> EngineSpec:
    return build_spec(parse_plant(text).model)


def test_the_reading_is_the_code_at_the_time_given_on_the_reserved_signal() -> None:
    reading = operator_reading(build_spec_of(PLANT), "packer1", "2026-03-02T10:42:00+07:00", "Film Break")
    assert (reading.machine, reading.signal, reading.value, reading.source) == (
        "packer1",
        "@operator_reason",
        "302",
        "operator",
    )
    assert reading.ts == datetime(2026, 3, 2, 3, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    ("machine", "at", "reason", "why"),
    [
        ("packer9", "2026-03-02T03:42:00Z", "302", "unknown_machine"),
        ("meter1", "2026-03-02T03:42:00Z", "302", "no_state"),
        ("packer1", "2026-03-02T03:42:00", "302", "bad_field"),
        ("packer1", "2026-03-02T03:42:00Z", "guard door open", "unknown_reason"),  # not on a packer
    ],
)
def test_what_the_plant_file_can_tell_is_refused_before_anything_is_sent(
    machine: str, at: str, reason: str, why: str
) -> None:
    with pytest.raises(ReasonRefused) as refused:
        operator_reading(build_spec_of(PLANT), machine, at, reason)
    assert refused.value.reason == why
