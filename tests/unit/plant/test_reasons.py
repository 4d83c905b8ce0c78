"""The plant file's reason tree and reason signal: valid forms, and every error located."""

from __future__ import annotations

import pytest

from plantstream.plant import PlantError, PlantIssue, parse_plant
from streams.config import build_spec

PLANT = """\
sites:
  - id: s1
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: m1
            type: packer
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              fault: {role: reason, rule: first}
reasons:
  groups:
    material: small_stop
    mechanical: breakdown
  codes:
    12: {reason: film break, group: material}
    7: {reason: jam, group: mechanical}
  machine_types:
    packer:
      12: {reason: film reel empty, group: material}
"""
#  8 m1 / 9 type / 14 fault / 15 reasons / 16 groups / 17 material / 19 codes / 20 code 12
# 21 code 7 / 22 machine_types / 23 packer / 24 packer's 12
M = "sites[0].lines[0].machines[0]"


def issues_of(text: str) -> list[PlantIssue]:
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    return info.value.issues


def only_issue(text: str) -> PlantIssue:
    issues = issues_of(text)
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


def assert_issue(issue: PlantIssue, line: int, path: str, fragment: str) -> None:
    text = str(issue)
    assert text.startswith(f"plant.yaml:{line} {path}: "), text
    assert fragment in issue.message, text


def edited(*edits: tuple[str, str]) -> str:
    text = PLANT
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_the_tree_resolves_shared_and_per_type_codes() -> None:
    spec = build_spec(parse_plant(PLANT).model)
    machine = spec.machines["m1"]
    assert (machine.reason_signal, machine.reason_rule, machine.machine_type) == ("fault", "first", "packer")
    tree = spec.reasons
    assert tree.resolve(12, "packer").name == "film reel empty"
    assert tree.resolve(12).name == "film break"
    assert tree.resolve("7", "packer").loss == "breakdown"
    assert tree.resolve(4711, "packer").name == "code 4711"


def test_a_plant_without_a_tree_still_keeps_every_code() -> None:
    text = PLANT[: PLANT.index("reasons:")]
    spec = build_spec(parse_plant(text).model)
    assert spec.reasons.resolve(12).name == "code 12"


@pytest.mark.parametrize(
    ("edits", "line", "path", "fragment"),
    [
        pytest.param(
            [("group: mechanical}", "group: mechanicl}")],
            21,
            "reasons.codes.7.group",
            "unknown group 'mechanicl' (groups: material, mechanical)",
            id="unknown-group",
        ),
        pytest.param(
            [("material: small_stop", "material: small_stops")],
            17,
            "reasons.groups.material",
            "'breakdown', 'setup' or 'small_stop'",
            id="bad-loss-category",
        ),
        pytest.param(
            [("    7: {reason: jam", "    12.0: {reason: jam")],
            21,
            "reasons.codes.12.0",
            "duplicate key",
            id="duplicate-code-as-text",
        ),
        pytest.param(
            [("    7: {reason: jam", "    0: {reason: jam")],
            19,
            "reasons.codes",
            "means 'no reason'",
            id="code-zero",
        ),
        pytest.param(
            [("{reason: jam, group: mechanical}", "{reason: " + "j" * 65 + ", group: mechanical}")],
            21,
            "reasons.codes.7.reason",
            "at most 64 characters",
            id="reason-too-long",
        ),
        pytest.param(
            [("rule: first", "rule: latest")],
            14,
            f"{M}.signals.fault.rule",
            "'first' or 'last'",
            id="unknown-rule",
        ),
        pytest.param(
            [("type: packer", "type: packer\n            startup_reject_s: -5")],
            10,
            f"{M}.startup_reject_s",
            "must be >= 0",
            id="negative-startup-reject-time",
        ),
        pytest.param(
            [("type: packer", "type: pack er")],
            9,
            f"{M}.type",
            "must match pattern",
            id="bad-machine-type",
        ),
    ],
)
def test_one_error_named_by_line_and_key(
    edits: list[tuple[str, str]], line: int, path: str, fragment: str
) -> None:
    assert_issue(only_issue(edited(*edits)), line, path, fragment)


def test_every_unknown_group_is_reported_in_one_run() -> None:
    text = edited(
        ("group: mechanical}", "group: nope}"), ("film reel empty, group: material", "x, group: nada")
    )
    paths = [str(issue).split(" ")[1].rstrip(":") for issue in issues_of(text)]
    assert paths == ["reasons.codes.7.group", "reasons.machine_types.packer.12.group"]


def test_a_typo_is_named_with_a_suggestion() -> None:
    text = edited(("{reason: jam, group: mechanical}", "{reasn: jam, group: mechanical}"))
    first = issues_of(text)[0]
    assert_issue(first, 21, "reasons.codes.7.reasn", "unknown key (did you mean 'reason")


def test_two_reason_signals_on_one_machine_are_refused() -> None:
    text = edited(("fault: {role: reason, rule: first}", "fault: reason\n              fault2: reason"))
    assert_issue(only_issue(text), 8, M, "signals 'fault' and 'fault2' both have role reason")
