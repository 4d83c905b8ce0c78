"""How the OPC UA collector tells a busy server from a lost one (the settings it gives asyncua).

The component test (tests/component/test_opcua.py, a server stopped for 3 s at a time) proves the
behaviour; these pin the arithmetic and the asyncua attributes it relies on, which are private.
"""

from __future__ import annotations

import math

import pytest
from asyncua import Client

from collectors.opcua import OpcUaCollector
from plantstream.plant.schema import OpcUaSource


def _source(**settings: object) -> OpcUaSource:
    return OpcUaSource.model_validate(
        {
            "type": "opcua",
            "id": "plc",
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "security": {"mode": "None", "allow_insecure": True},
            "groups": [{"tags": [{"node": "ns=2;s=x", "machine": "m", "signal": "s"}]}],
            **settings,
        }
    )


def test_asyncua_still_has_the_private_attributes_the_collector_sets() -> None:
    client = Client("opc.tcp://127.0.0.1:4840")
    # Setting an attribute that asyncua renamed would silently do nothing.
    assert isinstance(client._stale_check_margin, float)
    assert isinstance(client._watchdog_intervall, float)


def test_the_probe_runs_every_timeout_s_and_subscriptions_are_never_recreated() -> None:
    client = OpcUaCollector(_source(timeout_s=8))._new_client()
    assert client._watchdog_intervall == 8  # not asyncua's 1 s
    assert client._stale_check_margin == math.inf
    assert client.session_timeout == 60_000  # the default session_timeout_s, in ms


def test_a_short_session_timeout_makes_the_probe_keep_the_session_alive() -> None:
    # Three probes in every session timeout: 15 s / 3 = 5 s, sooner than timeout_s (10 s).
    client = OpcUaCollector(_source(session_timeout_s=15))._new_client()
    assert client._watchdog_intervall == 5


@pytest.mark.parametrize(
    ("interval_ms", "settings", "count"),
    [
        # min(timeout_s 10, watchdog_s 30 / 3) = 10 s of keep-alive period; 10,000 ms / 100 ms = 100
        (100, {}, 100),
        (500, {}, 20),
        (1000, {}, 10),
        # watchdog_s 6: a keep-alive every 2 s at the latest; 2,000 ms / 500 ms = 4
        (500, {"watchdog_s": 6}, 4),
        # a publishing interval longer than the period: a keep-alive every interval
        (20_000, {}, 1),
    ],
)
def test_keep_alives_come_at_least_every_timeout_s_and_three_times_a_watchdog(
    interval_ms: float, settings: dict[str, object], count: int
) -> None:
    assert OpcUaCollector(_source(**settings))._keep_alive_count(interval_ms) == count


def test_the_session_timeout_is_bounded() -> None:
    with pytest.raises(ValueError, match="session_timeout_s"):
        _source(session_timeout_s=5)
