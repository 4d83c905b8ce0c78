"""DataValues decoded in the specification's field order, and the reading's time under each policy."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua
from asyncua.ua import ua_binary

from collectors.opcua import OpcUaCollector
from plantstream.plant import parse_plant
from plantstream.plant.schema import OpcUaSource

# The vector of open62541 issue #686: a DataValue with all six fields, in the order of OPC UA
# Part 6, 5.2.2.17 (Value, Status, SourceTimestamp, SourcePicoseconds, ServerTimestamp,
# ServerPicoseconds).
VECTOR = b"".join(
    [
        bytes([0x3F]),  # encoding mask: all six fields
        bytes([0x01, 0x00]),  # Variant: Boolean false
        bytes([0x64, 0x00, 0x00, 0x00]),  # StatusCode 100
        bytes([0x00, 0x64, 0xDF, 0x3E, 0x6E, 0xDB, 0x52, 0x06]),  # SourceTimestamp 455667778865554432
        bytes([0xE0, 0x15]),  # SourcePicoseconds 5600 (10 ps units)
        bytes([0x00, 0x64, 0x69, 0x9C, 0xE6, 0x20, 0xB6, 0x07]),  # ServerTimestamp 555667778865554432
        bytes([0xA8, 0x16]),  # ServerPicoseconds 5800
    ]
)
EPOCH_1601 = datetime(1601, 1, 1, tzinfo=UTC)


def ticks(value: int) -> datetime:
    """A DateTime: 100 ns ticks since 1601-01-01 UTC (OPC UA Part 6, 5.2.2.5), to the microsecond."""
    return EPOCH_1601 + timedelta(microseconds=value // 10)


def test_the_vector_is_what_its_comments_say() -> None:
    assert struct.unpack("<q", VECTOR[7:15]) == (455667778865554432,)
    assert struct.unpack("<H", VECTOR[15:17]) == (5600,)
    assert struct.unpack("<q", VECTOR[17:25]) == (555667778865554432,)


def test_asyncua_decodes_every_field_of_a_data_value_with_picoseconds() -> None:
    # Through asyncua's own entry points (the collector module installs the decoder on import):
    # asyncua 2.1 alone gives ServerTimestamp 9113-08-16 and SourcePicoseconds 1974 here.
    for decoded in (
        ua_binary.from_binary(ua.DataValue, ua_binary.Buffer(VECTOR)),
        ua_binary.from_binary(
            ua.Variant, ua_binary.Buffer(bytes([ua.VariantType.DataValue.value]) + VECTOR)
        ).Value,
        ua_binary.struct_from_binary(
            ua.MonitoredItemNotification, ua_binary.Buffer(struct.pack("<I", 7) + VECTOR)
        ).Value,
    ):
        assert decoded.Value == ua.Variant(False, ua.VariantType.Boolean)
        assert decoded.StatusCode == ua.StatusCode(100)
        assert decoded.SourceTimestamp == ticks(455667778865554432)
        assert decoded.SourcePicoseconds == 5600
        assert decoded.ServerTimestamp == ticks(555667778865554432)
        assert decoded.ServerPicoseconds == 5800


def test_a_data_value_without_picoseconds_decodes_as_before() -> None:
    # Mask 0x0D: Value, SourceTimestamp, ServerTimestamp; the status defaults to Good.
    data = bytes([0x0D, 0x06]) + struct.pack("<i", 42) + VECTOR[7:15] + VECTOR[17:25]
    decoded = ua_binary.from_binary(ua.DataValue, ua_binary.Buffer(data))
    assert decoded.Value == ua.Variant(42, ua.VariantType.Int32)
    assert decoded.StatusCode == ua.StatusCode(0)
    assert decoded.SourceTimestamp == ticks(455667778865554432)
    assert decoded.ServerTimestamp == ticks(555667778865554432)
    assert decoded.SourcePicoseconds is None
    assert decoded.ServerPicoseconds is None


PLANT = """
sites:
  - id: s
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: press
            ideal_cycle_s: 1
            signals: {{good_count: good_count}}
sources:
  - type: opcua
    id: plc
    endpoint: opc.tcp://127.0.0.1:4840
    security: {{mode: None, allow_insecure: true}}
    timestamps: {policy}
    groups:
      - tags:
          - {{node: "ns=2;s=press.good", machine: press, signal: good_count}}
"""
SOURCE_TS = datetime(2026, 12, 2, 8, 0, 0, tzinfo=UTC)
SERVER_TS = SOURCE_TS + timedelta(seconds=2)
INGEST_TS = SOURCE_TS + timedelta(seconds=3)


def collector(policy: str) -> OpcUaCollector:
    [source] = parse_plant(PLANT.format(policy=policy)).model.sources
    assert isinstance(source, OpcUaSource)
    return OpcUaCollector(source, clock=lambda: INGEST_TS)


@pytest.mark.parametrize(
    ("policy", "source_ts", "server_ts", "expected", "fallbacks"),
    [
        ("source", SOURCE_TS, SERVER_TS, SOURCE_TS, 0),
        ("source", None, SERVER_TS, SERVER_TS, 1),
        ("source", None, None, INGEST_TS, 1),
        ("server", SOURCE_TS, SERVER_TS, SERVER_TS, 0),
        ("server", SOURCE_TS, None, INGEST_TS, 1),
        ("ingest", SOURCE_TS, SERVER_TS, INGEST_TS, 0),
        # The OPC UA null time (1601-01-01) is no timestamp.
        ("server", SOURCE_TS, EPOCH_1601, INGEST_TS, 1),
    ],
)
async def test_the_reading_time_follows_the_policy_and_counts_fallbacks(
    policy: str,
    source_ts: datetime | None,
    server_ts: datetime | None,
    expected: datetime,
    fallbacks: int,
) -> None:
    plc = collector(policy)
    [item] = plc._items
    value = ua.DataValue(
        Value=ua.Variant(5, ua.VariantType.UInt32), SourceTimestamp=source_ts, ServerTimestamp=server_ts
    )
    await plc._emit(item, value)
    reading = await plc._queue.get()
    assert reading.ts == expected
    assert reading.server_ts == (server_ts if server_ts is not None and server_ts.year > 1601 else None)
    assert reading.ingest_ts == INGEST_TS
    assert plc.health.timestamp_fallbacks == fallbacks
