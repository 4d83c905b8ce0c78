"""A&C events to reason transitions (collectors/opcua_events.py) and their plant-file checks.

The tracker is fed event fields as a server sends them (Variants in the select clauses' order);
the component tests (tests/component/test_opcua_events.py) do the same through a real server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.subscription import Subscription, SubscriptionItemData
from support import one_line_plant

from collectors.opcua_events import EventReasons, Transition, event_filter
from plantstream.plant import PlantError, PlantIssue, parse_plant
from plantstream.plant.schema import OpcUaEvents
from plantstream.plant.warnings import plant_warnings

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ALARM = ua.NodeId(ua.ObjectIds.AlarmConditionType)
PRESS = ua.NodeId("press", 2)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fields(
    name: str | None,
    active: bool | None,
    seconds: float,
    *,
    severity: Any = 500,
    source_name: str | None = "press",
    event_type: Any = ALARM,
    condition_id: str | None = None,
) -> list[ua.Variant]:
    """The eight fields of the filter: EventType, SourceNode, SourceName, Time, Severity,
    ConditionName, ActiveState/Id, ConditionId."""
    cid = ua.NodeId(condition_id or f"press.{name}", 2)
    return [
        ua.Variant(event_type),
        ua.Variant(None),
        ua.Variant(source_name),
        ua.Variant(at(seconds)),
        ua.Variant(severity),
        ua.Variant(name),
        ua.Variant(active),
        ua.Variant(cid),
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tracker(clock: Clock | None = None, **settings: Any) -> EventReasons:
    where = [{"source_name": "press", "machine": "press", "signal": "fault"}]
    return EventReasons("plc", OpcUaEvents(where=where, **settings), monotonic=clock or Clock())


def test_the_filter_selects_the_fields_in_the_order_the_tracker_reads() -> None:
    paths = ["/".join(q.Name for q in clause.BrowsePath) for clause in event_filter().SelectClauses]
    assert paths == [
        "EventType",
        "SourceNode",
        "SourceName",
        "Time",
        "Severity",
        "ConditionName",
        "ActiveState/Id",
        "",  # the ConditionId: the NodeId attribute
    ]
    assert event_filter().SelectClauses[-1].AttributeId == ua.AttributeIds.NodeId


def test_the_oldest_active_condition_is_the_reason_and_the_last_clear_empties_it() -> None:
    events = tracker()
    out: list[Transition] = []
    for f in (
        fields("Jam", True, 10),
        fields("Film", True, 12),  # second: Jam stays the reason (first cause)
        fields("Jam", True, 13),  # the same condition again (e.g. acknowledged): no change
        fields("Jam", False, 20),  # Film is still active: it becomes the reason
        fields("Film", False, 30),
    ):
        out += events.take(f)
    assert [(t.value, t.ts) for t in out] == [("Jam", at(10)), ("Film", at(20)), ("", at(30))]
    assert {(t.machine, t.signal) for t in out} == {("press", "fault")}
    assert events.health.active == 0


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (fields("Jam", True, 1)[:5], "5 fields"),
        (fields("Jam", True, 1, severity=0), "Severity 0"),
        (fields("Jam", True, 1, severity=1001), "Severity 1001"),
        (fields("Jam", True, 1, severity=True), "Severity True"),
        (fields("Jam", True, 1, event_type="AlarmConditionType"), "no EventType"),
        ([*fields("Jam", True, 1)[:3], ua.Variant("08:00"), *fields("Jam", True, 1)[4:]], "no Time"),
        ([*fields("Jam", True, 1)[:6], ua.Variant("yes"), *fields("Jam", True, 1)[7:]], "ActiveState"),
        ([*fields("Jam", True, 1)[:5], ua.Variant(12), *fields("Jam", True, 1)[6:]], "ConditionName"),
    ],
)
def test_malformed_events_are_counted_and_logged_once(
    bad: list[ua.Variant], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    events = tracker()
    assert events.take(bad) == []
    assert events.take(bad) == []
    assert events.health.malformed == 2
    [record] = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert problem in record.getMessage()


def test_unmapped_and_plain_events_change_nothing() -> None:
    events = tracker()
    assert events.take(fields("Flame", True, 1, source_name="boiler")) == []
    assert events.take(fields(None, None, 2)) == []  # no ActiveState/Id: not an alarm
    assert (events.health.unmapped, events.health.not_conditions, events.health.reasons) == (1, 1, 0)


def test_a_flood_drops_activations_above_the_rate_but_never_clears() -> None:
    clock = Clock()
    events = tracker(clock, max_events_per_s=2)
    # A burst of 2 tokens at t = 0: A and B pass, C is dropped.
    out = [t for name in "ABC" for t in events.take(fields(name, True, 1))]
    assert events.health.rate_dropped == 1
    # Clears pass with the bucket empty: A clears (B becomes the reason), C was never tracked.
    out += events.take(fields("A", False, 2))
    out += events.take(fields("C", False, 2))
    # Half a second later one token (2/s * 0.5 s) is back: D passes; E is dropped.
    clock.now = 0.5
    out += events.take(fields("D", True, 3))
    out += events.take(fields("E", True, 3))
    assert [t.value for t in out] == ["A", "B"]  # D is active behind B
    assert events.health.rate_dropped == 2
    assert events.health.active == 2


def test_at_most_max_active_conditions_are_tracked_per_machine() -> None:
    events = tracker(max_active_per_machine=2)
    for name in "ABC":
        events.take(fields(name, True, 1))
    assert (events.health.active, events.health.active_overflow) == (2, 1)


def test_a_refresh_clears_what_it_does_not_send_again() -> None:
    events = tracker()
    events.take(fields("A", True, 1))
    events.take(fields("B", True, 2))
    start = ua.NodeId(ua.ObjectIds.RefreshStartEventType)
    end = ua.NodeId(ua.ObjectIds.RefreshEndEventType)
    # Severity True: what asyncua gives these two events when its condition methods are bound
    # with `True`; they count by their type and time alone.
    assert events.take(fields(None, None, 100, event_type=start, source_name="Server", severity=True)) == []
    assert events.take(fields("B", True, 2)) == []  # B is sent again: still active
    out = events.take(fields(None, None, 101, event_type=end, source_name="Server", severity=None))
    assert [(t.value, t.ts) for t in out] == [("B", at(101))]  # A cleared while we were away
    assert events.health.malformed == 0


# -- the plant file ---------------------------------------------------------------------------------

PLANT = one_line_plant(
    """\
- id: press1
  signals: {state: state, fault: reason}
""",
    site="s1",
    line="l1",
)


def with_events(events: str) -> str:
    return PLANT + (
        "sources:\n"
        "  - type: opcua\n"
        "    id: plc\n"
        "    endpoint: opc.tcp://127.0.0.1:4840/\n"
        "    security: {mode: None, allow_insecure: true}\n"
        "    groups:\n"
        '      - tags: [{node: "ns=2;s=p.state", machine: press1, signal: state}]\n'
        "    events:\n" + events
    )


def issues_of(text: str) -> list[PlantIssue]:
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    return info.value.issues


def test_a_valid_events_section_loads_with_its_defaults() -> None:
    plant = parse_plant(with_events("      where: [{source_name: Press1, machine: press1, signal: fault}]\n"))
    [source] = plant.model.sources
    assert source.type == "opcua"
    assert source.events is not None
    assert (source.events.notifier, source.events.min_severity) == ("i=2253", 1)
    # The reason signal fed only by events is not "mapped by no source".
    assert plant_warnings(plant) == []


@pytest.mark.parametrize(
    ("events", "where", "message"),
    [
        (
            "      where: [{source_name: P, machine: press2, signal: fault}]\n",
            "sources[0].events.where[0].machine",
            "machine 'press2' is not in the plant (did you mean 'press1'?)",
        ),
        (
            "      where: [{source_name: P, machine: press1, signal: state}]\n",
            "sources[0].events.where[0].signal",
            "has role state; events set a signal with role reason",
        ),
        (
            "      where: [{source_name: P, source_node: 'ns=2;s=P', machine: press1, signal: fault}]\n",
            "sources[0].events.where[0]",
            "give exactly one of source_node and source_name",
        ),
        (
            "      min_severity: 5000\n      where: [{source_name: P, machine: press1, signal: fault}]\n",
            "sources[0].events.min_severity",
            "must be <= 1000",
        ),
        (
            "      notifier: Server\n      where: [{source_name: P, machine: press1, signal: fault}]\n",
            "sources[0].events.notifier",
            "is not a node id",
        ),
        (
            "      where: [{source_name: P, machine: press1, signal: fault}, "
            "{source_name: P, machine: press2, signal: fault}]\n",
            "sources[0].events.where",
            "'P' is mapped to two machines (press1, press2)",
        ),
        (
            "      wehre: [{source_name: P, machine: press1, signal: fault}]\n",
            "sources[0].events",
            "where",
        ),
    ],
)
def test_a_wrong_events_section_is_one_error_at_its_line(events: str, where: str, message: str) -> None:
    issues = issues_of(with_events(events))
    assert any(where in str(i) and message in str(i) and str(i).startswith("plant.yaml:") for i in issues), [
        str(i) for i in issues
    ]


async def test_events_with_too_few_fields_are_dropped_before_asyncua_reads_them() -> None:
    """asyncua would index past the end of a short field list; the guard counts it instead."""
    events = tracker()
    sub = Subscription(None, ua.CreateSubscriptionParameters(), handler=None)  # type: ignore[arg-type]
    item = SubscriptionItemData()
    item.mfilter = event_filter()
    item.client_handle = 7
    sub._monitored_items[7] = item
    events.guard(sub)
    short, whole = ua.EventFieldList(ClientHandle=7), ua.EventFieldList(ClientHandle=7)
    short.EventFields = fields("Jam", True, 1)[:3]
    whole.EventFields = fields("Jam", True, 1)
    taken = list(sub._explode_events(ua.EventNotificationList(Events=[short, whole])))
    assert len(taken) == 1
    assert taken[0].event.event_fields == whole.EventFields
    assert (events.health.events, events.health.malformed) == (1, 1)
