"""Source tags must name machines and signals of the plant; unfed signals are warnings."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter
from support import one_line_plant

from plantstream.plant import PlantError, PlantIssue, parse_plant
from plantstream.plant.mapping import machine_signals, mapping_problems_in
from plantstream.plant.schema import Source
from plantstream.plant.warnings import plant_warnings

PLANT = one_line_plant(
    """\
- id: press1
  ideal_cycle_s: 1.0
  signals: {state: state, good: good_count, kw: power_kw}
- id: oven1
  signals: {state: state, gas: {role: fuel, fuel: natural_gas, unit: kg}}
""",
    site="s1",
    line="l1",
)
#  8           - id: press1
# 10             signals: {state: state, good: good_count, kw: power_kw}
# 11           - id: oven1


def opcua(*tags: str) -> str:
    lines = "".join(f"          - {tag}\n" for tag in tags)
    return (
        "sources:\n"
        "  - type: opcua\n"
        "    id: plc\n"
        "    endpoint: opc.tcp://127.0.0.1:4840/\n"
        "    security: {mode: None, allow_insecure: true}\n"
        "    groups:\n"
        "      - tags:\n" + lines
    )


# 13 sources:  ...  19       - tags:   20 the first tag


def mqtt(subscription: str) -> str:
    return (
        "sources:\n"
        "  - type: mqtt\n"
        "    id: broker\n"
        "    url: mqtt://127.0.0.1:1883\n"
        "    subscriptions:\n"
        f"      - {subscription}\n"
    )


# 13 sources:  ...  18       - the subscription


ALL_TAGS = [
    '{node: "ns=2;s=p.state", machine: press1, signal: state}',
    '{node: "ns=2;s=p.good", machine: press1, signal: good}',
    '{node: "ns=2;s=p.kw", machine: press1, signal: kw}',
    '{node: "ns=2;s=o.state", machine: oven1, signal: state}',
    '{node: "ns=2;s=o.gas", machine: oven1, signal: gas}',
]


def issues_of(text: str) -> list[PlantIssue]:
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    return info.value.issues


def test_every_tag_mapped_is_valid_without_warnings() -> None:
    assert plant_warnings(parse_plant(PLANT + opcua(*ALL_TAGS))) == []


def test_an_opcua_tag_with_an_unknown_machine_names_the_tag_and_the_closest_machine() -> None:
    tags = [*ALL_TAGS[:1], '{node: "ns=2;s=p.good", machine: pres1, signal: good}', *ALL_TAGS[2:]]
    [issue] = issues_of(PLANT + opcua(*tags))
    assert str(issue) == (
        "plant.yaml:21 sources[0].groups[0].tags[1].machine: tag ns=2;s=p.good: "
        "machine 'pres1' is not in the plant (did you mean 'press1'?)"
    )


def test_an_opcua_tag_with_an_unknown_signal_names_the_closest_signal() -> None:
    tags = [*ALL_TAGS[:4], '{node: "ns=2;s=o.gas", machine: oven1, signal: gaz}']
    [issue] = issues_of(PLANT + opcua(*tags))
    assert str(issue) == (
        "plant.yaml:24 sources[0].groups[0].tags[4].signal: tag ns=2;s=o.gas: machine 'oven1' has no "
        "signal 'gaz' (did you mean 'gas'? its signals: state, gas)"
    )


def test_every_unmapped_tag_is_reported_in_one_run() -> None:
    tags = [
        '{node: "ns=2;s=a", machine: nowhere, signal: state}',
        '{node: "ns=2;s=b", machine: press1, signal: x}',
    ]
    issues = issues_of(PLANT + opcua(*tags))
    assert [(i.line, i.path[-1]) for i in issues] == [(20, "machine"), (21, "signal")]
    # Nothing is close to "nowhere": no suggestion rather than a wrong one.
    assert issues[0].message.endswith("machine 'nowhere' is not in the plant")


def test_a_signal_no_source_delivers_is_a_warning_at_its_line() -> None:
    loaded = parse_plant(PLANT + opcua(*ALL_TAGS[:4]))
    [warning] = plant_warnings(loaded)
    assert str(warning) == (
        "plant.yaml:12 sites[0].lines[0].machines[1].signals.gas: signal 'gas' of machine 'oven1' "
        "is mapped by no source: it will have no readings"
    )


def test_a_plant_without_sources_has_no_unfed_signal_warnings() -> None:
    # Readings then come from files (replay); every signal may be in them.
    assert plant_warnings(parse_plant(PLANT)) == []


def test_mqtt_fixed_machine_must_exist() -> None:
    sub = "{topic: plant/press/state, payload: number, machine: presss1, signal: state}"
    [issue] = issues_of(PLANT + mqtt(sub))
    assert str(issue) == (
        "plant.yaml:18 sources[0].subscriptions[0].machine: topic plant/press/state: "
        "machine 'presss1' is not in the plant (did you mean 'press1'?)"
    )


def test_mqtt_json_fields_must_name_signals_some_machine_has() -> None:
    sub = (
        "{topic: 'plant/{machine}/meter', payload: json, fields: "
        "[{path: p, signal: kw}, {path: s, signal: stat}]}"
    )
    [issue] = issues_of(PLANT + mqtt(sub))
    assert str(issue) == (
        "plant.yaml:18 sources[0].subscriptions[0].fields[1].signal: topic plant/{machine}/meter: "
        "no machine has a signal 'stat' (did you mean 'state'?)"
    )


def test_mqtt_fixed_machine_and_signal_must_match() -> None:
    sub = "{topic: oven/gas, payload: number, machine: oven1, signal: kw}"
    [issue] = issues_of(PLANT + mqtt(sub))
    assert issue.message.endswith("machine 'oven1' has no signal 'kw' (its signals: state, gas)")


def test_mqtt_topic_placeholders_deliver_every_signal() -> None:
    sub = "{topic: 'plant/{machine}/{signal}', payload: number}"
    assert plant_warnings(parse_plant(PLANT + mqtt(sub))) == []


def test_mqtt_topic_machine_placeholder_delivers_the_named_signals_only() -> None:
    sub = "{topic: 'plant/{machine}/state', payload: number, signal: state}"
    warnings = plant_warnings(parse_plant(PLANT + mqtt(sub)))
    assert [w.path[-1] for w in warnings] == ["good", "kw", "gas"]


def test_sparkplug_metrics_must_name_signals_some_machine_has() -> None:
    sub = "{topic: 'spBv1.0/plant/+/+/+', payload: sparkplug_b, metrics: {Power: kw, Good: god}}"
    [issue] = issues_of(PLANT + mqtt(sub))
    assert str(issue) == (
        "plant.yaml:18 sources[0].subscriptions[0].metrics.Good: metric 'Good': "
        "no machine has a signal 'god' (did you mean 'good'?)"
    )


def test_mapping_problems_are_reported_with_the_other_problems() -> None:
    # A schema error in `production` does not hide the mapping error in `sources`.
    tags = [*ALL_TAGS[:4], '{node: "ns=2;s=o.gas", machine: oven2, signal: gas}']
    text = PLANT + opcua(*tags) + "production:\n  window_s: 0\n"
    issues = issues_of(text)
    assert [(i.line, i.path[-1], i.message) for i in issues] == [
        (24, "machine", "tag ns=2;s=o.gas: machine 'oven2' is not in the plant (did you mean 'oven1'?)"),
        (26, "window_s", "must be > 0"),
    ]


def test_a_wrong_value_in_a_machine_does_not_hide_a_wrong_tag() -> None:
    # oven1's ideal cycle is refused, so the model is not whole; its id and signals are still
    # known, so the tag naming oven2 is reported in the same run and those naming oven1 are not.
    tags = [*ALL_TAGS[:4], '{node: "ns=2;s=o.gas", machine: oven2, signal: gas}']
    text = PLANT.replace("- id: oven1\n", "- id: oven1\n            ideal_cycle_s: -1\n") + opcua(*tags)
    issues = issues_of(text)
    assert [(i.line, i.path[-1]) for i in issues] == [(12, "ideal_cycle_s"), (25, "machine")]
    assert "machine 'oven2' is not in the plant (did you mean 'oven1'?)" in issues[1].message


def test_a_broken_source_does_not_hide_the_wrong_tags_of_another() -> None:
    broken = (
        "  - {type: opcua, id: other, endpoint: 'http://not-opc', groups: [{tags: [" + ALL_TAGS[0] + "]}]}\n"
    )
    tags = ['{node: "ns=2;s=a", machine: press2, signal: state}']
    issues = issues_of(PLANT + opcua(*tags) + broken)
    assert [(i.path[:2], i.path[-1]) for i in issues] == [
        (("sources", 0), "machine"),
        (("sources", 1), "endpoint"),
    ]


def test_a_machine_hidden_by_a_broken_structure_skips_the_mapping_check() -> None:
    # The second line is not a mapping, so its machines are unknown: no tag is judged against it.
    text = PLANT.replace("    lines:\n", "    lines:\n      - just text\n") + opcua(
        '{node: "ns=2;s=a", machine: elsewhere, signal: state}'
    )
    issues = issues_of(text)
    assert all(i.path[0] == "sites" for i in issues), issues


def test_only_the_listed_problems_get_a_suggestion() -> None:
    # 250 wrong tags: a suggestion costs a comparison with every machine, so only the first 200
    # (as many as a plant error lists) get one; the others are still reported.
    tags = [{"node": f"ns=2;s=t{k}", "machine": "press9", "signal": "good"} for k in range(250)]
    source = TypeAdapter(Source).validate_python(
        {"type": "opcua", "id": "plc", "endpoint": "opc.tcp://127.0.0.1:4840/", "groups": [{"tags": tags}]}
    )
    problems = mapping_problems_in(machine_signals(parse_plant(PLANT).model), [source])
    assert len(problems) == 250
    suggested = ["did you mean 'press1'?" in message for _, message in problems]
    assert suggested == [True] * 200 + [False] * 50
