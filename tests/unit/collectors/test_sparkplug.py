"""Unit tests for collectors.sparkplug: wire codec, topics, host session state, rebirth request."""

from __future__ import annotations

import struct

import pytest

from collectors.mqtt import _sparkplug_reason
from collectors.sparkplug import (
    REBIRTH_METRIC,
    DataType,
    Metric,
    Payload,
    Sample,
    SparkplugError,
    SparkplugState,
    Topic,
    decode_payload,
    encode_payload,
    parse_topic,
    rebirth_request,
)

T0 = 1_700_000_000_000  # ms since the epoch


def metric(
    name: str | None,
    alias: int | None,
    datatype: int,
    value: bool | int | float | str | None,
    ts: int | None = None,
    *,
    is_null: bool = False,
) -> Metric:
    return Metric(name, alias, ts, datatype, value, is_null)


def one_metric(datatype: int, value: bool | int | float | str | None) -> Metric:
    [decoded] = decode_payload(encode_payload(Payload(T0, 1, (metric("m", 1, datatype, value),)))).metrics
    return decoded


# --- codec: round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "value"),
    [
        (DataType.INT8, -128),
        (DataType.INT8, -1),
        (DataType.INT8, 127),
        (DataType.INT16, -32768),
        (DataType.INT16, -2),
        (DataType.INT16, 32767),
        (DataType.INT32, -(2**31)),
        (DataType.INT32, -1),
        (DataType.INT32, 2**31 - 1),
        (DataType.INT64, -(2**63)),
        (DataType.INT64, -1),
        (DataType.INT64, 2**63 - 1),
        (DataType.UINT8, 255),
        (DataType.UINT16, 65535),
        (DataType.UINT32, 2**32 - 1),
        (DataType.UINT64, 2**64 - 1),
        (DataType.UINT64, 0),
        (DataType.FLOAT, 1.5),
        (DataType.FLOAT, -0.25),
        (DataType.FLOAT, 3.0e38),
        (DataType.DOUBLE, -1234.5678),
        (DataType.DOUBLE, 1e300),
        (DataType.BOOLEAN, True),
        (DataType.BOOLEAN, False),
        (DataType.STRING, "Ofen 3 — läuft"),
        (DataType.STRING, ""),
        (DataType.TEXT, "line one\nline two"),
        (DataType.UUID, "123e4567-e89b-12d3-a456-426614174000"),
        (DataType.DATETIME, T0),
    ],
)
def test_round_trip_each_supported_datatype(datatype: DataType, value: bool | int | float | str) -> None:
    decoded = decode_payload(
        encode_payload(Payload(T0, 7, (metric("Line/Temp", 3, datatype, value, T0 + 5),)))
    )
    if datatype == DataType.FLOAT:
        value = struct.unpack("<f", struct.pack("<f", value))[0]  # 32-bit precision
    assert decoded == Payload(T0, 7, (metric("Line/Temp", 3, datatype, value, T0 + 5),))
    [m] = decoded.metrics
    assert m.value == value
    assert type(m.value) is type(value)
    assert m.supported


def test_float_is_rounded_to_32_bits() -> None:
    m = one_metric(DataType.FLOAT, 0.1)
    assert m.value == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert m.value != 0.1


def test_int_from_a_float_datatype_becomes_a_float() -> None:
    assert one_metric(DataType.DOUBLE, 3).value == 3.0
    assert isinstance(one_metric(DataType.DOUBLE, 3).value, float)


def test_round_trip_payload_without_optional_fields() -> None:
    assert decode_payload(b"") == Payload(None, None, ())
    payload = Payload(None, None, (Metric(None, 9, None, 0, None),))
    assert decode_payload(encode_payload(payload)) == payload


def test_round_trip_null_metric() -> None:
    payload = Payload(T0, 0, (metric("m", 1, DataType.INT32, None, is_null=True),))
    data = encode_payload(payload)
    assert decode_payload(data) == payload
    # is_null wins over a value that is present anyway: field 7 = 1, then int_value = 5
    body = b"\x0a\x01m" + b"\x20\x03" + b"\x38\x01" + b"\x50\x05"  # name, Int32, is_null (7) = 1, int_value 5
    [m] = decode_payload(bytes([0x12, len(body)]) + body).metrics
    assert (m.value, m.is_null, m.supported) == (None, True, True)


@pytest.mark.parametrize("value", [True, 42, 2.5, "text"])
def test_metric_without_datatype_round_trips_by_python_type(value: bool | int | float | str) -> None:
    payload = Payload(T0, 3, (Metric(None, 4, None, DataType.UNKNOWN, value),))
    assert decode_payload(encode_payload(payload)) == payload


# --- codec: the wire format, checked by hand --------------------------------------------------------


def test_negative_int32_travels_as_32_bit_twos_complement() -> None:
    data = encode_payload(Payload(None, None, (Metric(None, None, None, DataType.INT32, -2),)))
    # metric: datatype key (4<<3)|0 = 0x20, 3; int_value key (10<<3)|0 = 0x50,
    # -2 -> 2**32 - 2 = 0xFFFFFFFE -> 7-bit groups 0x7E 0x7F 0x7F 0x7F 0x0F -> FE FF FF FF 0F
    assert data == bytes([0x12, 2 + 1 + 5, 0x20, 0x03, 0x50, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F])


def test_negative_int64_travels_as_64_bit_twos_complement() -> None:
    data = encode_payload(Payload(None, None, (Metric(None, None, None, DataType.INT64, -1),)))
    # long_value key (11<<3)|0 = 0x58; -1 -> 2**64 - 1: nine groups of 0x7F then 0x01
    assert data == bytes([0x12, 2 + 1 + 10, 0x20, 0x04, 0x58, *[0xFF] * 9, 0x01])


@pytest.mark.parametrize(
    "int_value",
    [
        bytes([0xFF, 0x01]),  # 0xFF: -1 in the Int8's own 8 bits
        bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),  # 0xFFFFFFFF: sign-extended to 32 bits
        bytes([0xFF] * 9 + [0x01]),  # -1 written as a 64-bit varint: uint32 keeps the low 32 bits
    ],
)
def test_int8_minus_one_is_read_from_any_carrier_width(int_value: bytes) -> None:
    body = b"\x20\x01" + b"\x50" + int_value  # datatype Int8 (1), int_value
    [m] = decode_payload(bytes([0x12, len(body)]) + body).metrics
    assert m.value == -1


def test_uint32_in_long_value_is_accepted() -> None:
    body = b"\x20\x07" + b"\x58\xff\xff\xff\xff\x0f"  # datatype UInt32 (7), long_value 2**32 - 1
    [m] = decode_payload(bytes([0x12, len(body)]) + body).metrics
    assert m.value == 2**32 - 1


def test_decode_hand_built_payload() -> None:
    data = bytes(
        [
            # timestamp: key (1<<3)|0 = 0x08; 1000 = 7*128 + 104 -> 0x80|104 = 0xE8, then 0x07
            0x08, 0xE8, 0x07,
            # metrics[0]: key (2<<3)|2 = 0x12, length 13
            0x12, 13,
            0x0A, 0x01, ord("T"),  # name: key (1<<3)|2 = 0x0A, length 1, "T"
            0x10, 0x01,  # alias: key (2<<3)|0 = 0x10, 1
            0x20, 0x03,  # datatype: key (4<<3)|0 = 0x20, Int32 = 3
            0x50, 0xFE, 0xFF, 0xFF, 0xFF, 0x0F,  # int_value: key (10<<3)|0 = 0x50, 0xFFFFFFFE
            # metrics[1]: length 3 + 2 + 5 = 10
            0x12, 10,
            0x0A, 0x01, ord("F"),  # name "F"
            0x20, 0x09,  # datatype Float = 9
            0x65, 0x00, 0x00, 0xC0, 0x3F,  # float_value: key (12<<3)|5 = 0x65; 1.5 = 0x3FC00000, LE
            # metrics[2]: length 3 + 2 + 2 + 2 = 9
            0x12, 9,
            0x0A, 0x01, ord("B"),  # name "B"
            0x18, 0x2A,  # timestamp: key (3<<3)|0 = 0x18, 42
            0x20, 0x0B,  # datatype Boolean = 11
            0x70, 0x01,  # boolean_value: key (14<<3)|0 = 0x70, true
            # seq: key (3<<3)|0 = 0x18, 255 = 0x7F | 0x80, then 1 -> FF 01
            0x18, 0xFF, 0x01,
        ]
    )  # fmt: skip
    assert decode_payload(data) == Payload(
        1000,
        255,
        (
            Metric("T", 1, None, DataType.INT32, -2),
            Metric("F", None, None, DataType.FLOAT, 1.5),
            Metric("B", None, 42, DataType.BOOLEAN, True),
        ),
    )


def test_unknown_and_unmodelled_fields_are_skipped_by_wire_type() -> None:
    metric_body = bytes(
        [
            0x0A, 0x01, ord("x"),  # name "x"
            0x20, 0x0C,  # datatype String = 12
            0x28, 0x01,  # is_historical (5) = true
            0x30, 0x01,  # is_transient (6) = true
            0x42, 0x02, 0x08, 0x01,  # metadata (8): an embedded MetaData {is_multi_part: true}
            0x4A, 0x00,  # properties (9): empty PropertySet
            0xA1, 0x01, *range(8),  # field 20, wire 1: key (20<<3)|1 = 161 -> A1 01, then 8 bytes
            0xAD, 0x01, 1, 2, 3, 4,  # field 21, wire 5: key (21<<3)|5 = 173 -> AD 01, then 4 bytes
            0x7A, 0x02, ord("o"), ord("k"),  # string_value: key (15<<3)|2 = 0x7A, "ok"
        ]
    )  # fmt: skip
    data = (
        bytes([0x30, 0x2A])  # field 6 (an extension), varint 42
        + bytes([0x22, 0x03]) + b"abc"  # uuid (4)
        + bytes([0x2A, 0x02]) + b"\x00\x01"  # body (5)
        + bytes([0x12, len(metric_body)]) + metric_body
        + bytes([0x9A, 0x06, 0x02]) + b"hi"  # field 99, wire 2: (99<<3)|2 = 794 = 6*128 + 26 -> 9A 06
        + bytes([0x18, 0x05])  # seq 5
    )  # fmt: skip
    assert decode_payload(data) == Payload(None, 5, (Metric("x", None, None, DataType.STRING, "ok"),))


def test_last_value_field_of_the_oneof_wins() -> None:
    body = b"\x20\x0a" + b"\x69" + struct.pack("<d", 1.0) + b"\x69" + struct.pack("<d", 2.0)
    [m] = decode_payload(bytes([0x12, len(body)]) + body).metrics
    assert m.value == 2.0


@pytest.mark.parametrize(
    ("datatype", "value_field"),
    [
        (DataType.DATASET, b"\x8a\x01\x02\x08\x01"),  # dataset_value (17): key (17<<3)|2 = 138 -> 8A 01
        (DataType.BYTES, b"\x82\x01\x03abc"),  # bytes_value (16): key 130 -> 82 01
        (DataType.FILE, b"\x82\x01\x00"),
        (DataType.TEMPLATE, b"\x92\x01\x00"),  # template_value (18): key 146 -> 92 01
        (DataType.INT32_ARRAY, b"\x82\x01\x04\x01\x00\x00\x00"),
        (99, b"\x50\x01"),  # a datatype code this module does not know
        (DataType.STRING, b"\x9a\x01\x00"),  # extension_value (19) where a string was expected
    ],
)
def test_unsupported_values_decode_to_none(datatype: int, value_field: bytes) -> None:
    body = bytes([0x0A, 0x01, ord("u"), 0x20, datatype]) + value_field
    [m] = decode_payload(bytes([0x12, len(body)]) + body).metrics
    assert (m.name, m.datatype, m.value, m.supported) == ("u", datatype, None, False)


def test_unsupported_metric_round_trips_without_value() -> None:
    payload = Payload(T0, 1, (Metric("table", 2, T0, DataType.DATASET, None, supported=False),))
    assert decode_payload(encode_payload(payload)) == payload


# --- codec: malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x08\xe8", "payload: truncated varint at byte 1"),
        (b"\x08\x01\x18\x80\x80", "payload: truncated varint at byte 3"),
        (b"\x12\x04\x0a\x01T\x10", "metric 0: truncated varint at byte 6"),
        (b"\x12\x05\x10\x01\x50\xff\xff", "metric 0: truncated varint at byte 5"),
        (b"\x12\x02\x10\x01\x12\x03\x10\x01\x50", "metric 1: truncated varint at byte 9"),
        (b"\x12\x05\x0a\x01", "payload: truncated length-delimited field 2 at byte 2: needs 5 bytes, 2 left"),
        (
            b"\x12\x03\x0a\x05T",
            "metric 0: truncated length-delimited field 1 at byte 4: needs 5 bytes, 1 left",
        ),
        (b"\x12\x03\x65\x00\x00", "metric 0: truncated 32-bit field 12 at byte 3: needs 4 bytes, 2 left"),
        (b"\x12\x02\x69\x00", "metric 0: truncated 64-bit field 13 at byte 3: needs 8 bytes, 1 left"),
        (b"\x12\x02\x60\x01", "metric 0: field 12 has wire type 0, expected 5"),
        (b"\x12\x00\x12\x00\x12\x00\x12\x02\x60\x01", "metric 3: field 12 has wire type 0, expected 5"),
        (b"\x0a\x00", "payload: field 1 has wire type 2, expected 0"),
        (b"\x10\x01", "payload: field 2 has wire type 0, expected 2"),
        (b"\x12\x05\x0d\x00\x00\x00\x00", "metric 0: field 1 has wire type 5, expected 2"),
        (b"\x08\x01\x1b", "payload: field 3 at byte 2 has unsupported wire type 3"),
        (b"\x0f", "payload: field 1 at byte 0 has unsupported wire type 7"),
        (b"\x00\x00", "payload: field number 0 at byte 0"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "payload: varint longer than 10 bytes at byte 1"),
        (b"\x08" + b"\xff" * 9 + b"\x7f", "payload: varint at byte 1 does not fit in 64 bits"),
        (b"\x12\x03\x0a\x01\xff", "metric 0: field 1 at byte 4 is not valid UTF-8"),
        (b"\x12\x05\x20\x03\x7a\x01x", "metric 0: string_value: INT32 (3) cannot carry str 'x'"),
        (b"\x12\x04\x20\x0b\x50\x01", "metric 0: int_value: BOOLEAN (11) cannot carry int 1"),
        (b"\x12\x05\x20\x01\x50\x80\x02", "metric 0: int_value: value 256 out of range for INT8 (1)"),
    ],
)
def test_malformed_input_names_the_byte_or_field(data: bytes, message: str) -> None:
    with pytest.raises(SparkplugError) as caught:
        decode_payload(data)
    assert str(caught.value).startswith(message)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            metric("a", 1, DataType.INT8, 300),
            "metric 0 ('a'): value 300 out of range for INT8 (1) (-128..127)",
        ),
        (metric("a", 1, DataType.INT8, 255), "out of range for INT8"),
        (metric("a", 1, DataType.UINT8, -1), "out of range for UINT8"),
        (metric("a", 1, DataType.UINT64, 2**64), "out of range for UINT64"),
        (metric("a", 1, DataType.INT16, True), "INT16 (2) cannot carry bool True"),
        (metric("a", 1, DataType.DOUBLE, "x"), "DOUBLE (10) cannot carry str 'x'"),
        (metric("a", 1, DataType.BOOLEAN, 1), "BOOLEAN (11) cannot carry int 1"),
        (metric("a", 1, DataType.STRING, 1.0), "STRING (12) cannot carry float 1.0"),
        (metric("a", 1, DataType.FLOAT, 1e39), "value 1e+39 out of range for FLOAT (9)"),
        (metric("a", 1, DataType.DATASET, 1), "cannot encode a value for DATASET (16)"),
        (metric(None, 5, DataType.UNKNOWN, -1), "metric 0 (5): value -1 out of range for UINT64"),
        (metric("a", -1, DataType.INT8, 1), "alias -1 does not fit in a uint64"),
    ],
)
def test_encode_rejects_values_that_do_not_fit(bad: Metric, message: str) -> None:
    with pytest.raises(SparkplugError, match=r"^metric 0") as caught:
        encode_payload(Payload(T0, 0, (bad,)))
    assert message in str(caught.value)


def test_encode_rejects_a_negative_seq() -> None:
    with pytest.raises(SparkplugError, match="seq -1 does not fit"):
        encode_payload(Payload(T0, -1, ()))


# --- topics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("spBv1.0/G1/NBIRTH/E1", Topic("spBv1.0", "G1", "NBIRTH", "E1", None)),
        ("spBv1.0/G1/NDATA/E1", Topic("spBv1.0", "G1", "NDATA", "E1", None)),
        ("spBv1.0/G1/NDEATH/E1", Topic("spBv1.0", "G1", "NDEATH", "E1", None)),
        ("spBv1.0/G1/NCMD/E1", Topic("spBv1.0", "G1", "NCMD", "E1", None)),
        ("spBv1.0/G1/STATE/E1", Topic("spBv1.0", "G1", "STATE", "E1", None)),
        ("spBv1.0/G1/DBIRTH/E1/D1", Topic("spBv1.0", "G1", "DBIRTH", "E1", "D1")),
        ("spBv1.0/G1/DDATA/E1/D1", Topic("spBv1.0", "G1", "DDATA", "E1", "D1")),
        ("spBv1.0/G1/DDEATH/E1/D1", Topic("spBv1.0", "G1", "DDEATH", "E1", "D1")),
        ("spBv1.0/G1/DCMD/E1/D1", Topic("spBv1.0", "G1", "DCMD", "E1", "D1")),
        ("spBv1.0/B Devices/NBIRTH/Raspberry Pi", Topic("spBv1.0", "B Devices", "NBIRTH", "Raspberry Pi")),
    ],
)  # fmt: skip
def test_parse_topic(topic: str, parsed: Topic) -> None:
    assert parse_topic(topic) == parsed


@pytest.mark.parametrize(
    "topic",
    [
        "spBv1.0/STATE/host1",  # a host application's STATE topic (§4.2.3)
        "spBv1.0/STATE/host1/x",
        "spAv1.0/G1/NDATA/E1",
        "spbv1.0/G1/NDATA/E1",
        "spBv1.0/G1/NDATA",
        "spBv1.0/G1/NDATA/E1/D1",  # node message with a device
        "spBv1.0/G1/NBIRTH/E1/D1",
        "spBv1.0/G1/STATE/E1/D1",
        "spBv1.0/G1/DDATA/E1",  # device message without one
        "spBv1.0/G1/DBIRTH/E1",
        "spBv1.0/G1/ndata/E1",
        "spBv1.0/G1/NDATA/E1/D1/extra",
        "spBv1.0//NDATA/E1",
        "spBv1.0/G1/NDATA/",
        "spBv1.0/G1/DDATA/E1/",
        "spBv1.0/G+/NDATA/E1",
        "spBv1.0/G1/NDATA/E#",
        "plant/line1/meter",
        "",
    ],
)
def test_parse_topic_rejects(topic: str) -> None:
    assert parse_topic(topic) is None


# --- host state machine ---------------------------------------------------------------------------

G, E = "G1", "E1"


def topic(message_type: str, device: str | None = None) -> Topic:
    return Topic("spBv1.0", G, message_type, E, device)


def nbirth(seq: int = 0, bd_seq: int = 0, ts: int = T0) -> Payload:
    return Payload(
        ts,
        seq,
        (
            metric("bdSeq", None, DataType.INT64, bd_seq, ts),
            metric(REBIRTH_METRIC, None, DataType.BOOLEAN, False, ts),
            metric("Temp", 1, DataType.FLOAT, 21.5, ts),
            metric("Count", 2, DataType.INT32, -3, ts),
        ),
    )


def dbirth(seq: int, ts: int = T0) -> Payload:
    return Payload(
        ts,
        seq,
        (
            metric("Speed", 10, DataType.DOUBLE, 1.25, ts),
            metric("Mode", 11, DataType.STRING, "auto", ts),
            metric("Recipe", 12, DataType.DATASET, None, ts),
        ),
    )


def ndeath(bd_seq: int, ts: int | None = T0 - 60_000) -> Payload:
    return Payload(ts, None, (metric("bdSeq", None, DataType.INT64, bd_seq),))


def good(name: str, value: bool | int | float | str, ts: int, device: str | None = None) -> Sample:
    return Sample(E, device, name, value, ts, "good")


def bad(name: str, ts: int, device: str | None = None) -> Sample:
    return Sample(E, device, name, None, ts, "bad")


def born(seq: int = 0, bd_seq: int = 0) -> SparkplugState:
    state = SparkplugState()
    update = state.on_message(topic("NBIRTH"), nbirth(seq, bd_seq), T0 + 1)
    assert (update.rebirth, update.problems) == (False, ())
    return state


def test_nbirth_emits_birth_metrics_as_good_samples() -> None:
    state = SparkplugState()
    update = state.on_message(topic("NBIRTH"), nbirth(), T0 + 1)
    assert update.samples == (
        good("bdSeq", 0, T0),
        good(REBIRTH_METRIC, False, T0),
        good("Temp", 21.5, T0),
        good("Count", -3, T0),
    )
    assert (update.rebirth, update.problems) == (False, ())
    assert state.online(G, E)
    assert not state.online(G, "other")


def test_birth_then_data_by_alias() -> None:
    state = born()
    data = Payload(T0 + 1000, 1, (Metric(None, 1, T0 + 900, 0, 22.0), Metric(None, 2, None, 0, 7)))
    update = state.on_message(topic("NDATA"), data, T0 + 1001)
    assert update == type(update)((good("Temp", 22.0, T0 + 900), good("Count", 7, T0 + 1000)), False, ())


def test_data_without_datatype_is_sign_corrected_by_the_birth_datatype() -> None:
    state = born()
    # NDATA metrics leave the datatype out (§6.4.6): Count is Int32, so 0xFFFFFFFE is -2
    body = b"\x10\x02" + b"\x50\xfe\xff\xff\xff\x0f"
    data = decode_payload(b"\x08\x01" + bytes([0x12, len(body)]) + body + b"\x18\x01")
    assert data.metrics[0].value == 0xFFFFFFFE  # still the raw carrier, datatype unknown
    update = state.on_message(topic("NDATA"), data, T0 + 5)
    assert update.samples == (good("Count", -2, 1),)


def test_data_by_name_is_used_as_is() -> None:
    state = born()
    update = state.on_message(topic("NDATA"), Payload(T0 + 10, 1, (metric("Temp", None, 0, 23.0),)), T0 + 11)
    assert update.samples == (good("Temp", 23.0, T0 + 10),)
    assert update.problems == ()


def test_data_by_a_name_not_in_the_birth_asks_for_rebirth() -> None:
    state = born()
    update = state.on_message(topic("NDATA"), Payload(T0 + 10, 1, (metric("New", None, 0, 1.0),)), T0 + 11)
    assert update.samples == (good("New", 1.0, T0 + 10),)
    assert update.rebirth
    assert update.problems == ("metric 'New' from node G1/E1 was not in its birth",)


def test_unknown_alias_asks_for_rebirth_and_keeps_the_rest() -> None:
    state = born()
    data = Payload(T0 + 10, 1, (Metric(None, 7, None, 0, 1), Metric(None, 1, None, 0, 20.0)))
    update = state.on_message(topic("NDATA"), data, T0 + 11)
    assert update.rebirth
    assert update.problems == ("unknown alias 7 from node G1/E1",)
    assert update.samples == (good("Temp", 20.0, T0 + 10),)


def test_seq_gap_asks_for_rebirth_and_still_emits() -> None:
    state = born()
    assert not state.on_message(topic("NDATA"), Payload(T0, 1, (Metric(None, 1, None, 0, 1.0),)), T0).rebirth
    update = state.on_message(topic("NDATA"), Payload(T0, 3, (Metric(None, 1, None, 0, 2.0),)), T0)
    assert update.rebirth
    assert update.problems == ("sequence gap: expected 2, got 3 (node G1/E1)",)
    assert update.samples == (good("Temp", 2.0, T0),)
    # the count goes on from the message that arrived: 4 follows 3 without a new problem
    follow = state.on_message(topic("NDATA"), Payload(T0, 4, ()), T0)
    assert (follow.rebirth, follow.problems) == (False, ())


def test_seq_wraps_from_255_to_0_without_a_gap() -> None:
    state = born(seq=254)
    for seq in (255, 0, 1):
        update = state.on_message(topic("NDATA"), Payload(T0, seq, (Metric(None, 1, None, 0, 1.0),)), T0)
        assert (update.rebirth, update.problems) == (False, ()), seq


def test_seq_runs_across_node_and_device_messages() -> None:
    state = born()
    assert state.on_message(topic("DBIRTH", "D1"), dbirth(1), T0).problems == ()
    assert state.on_message(topic("DDATA", "D1"), Payload(T0, 2, ()), T0).problems == ()
    assert state.on_message(topic("NDATA"), Payload(T0, 3, ()), T0).problems == ()
    assert state.on_message(topic("DDEATH", "D1"), Payload(T0, 4, ()), T0).problems == ()
    update = state.on_message(topic("NDATA"), Payload(T0, 4, ()), T0)
    assert update.problems == ("sequence gap: expected 5, got 4 (node G1/E1)",)


def test_data_without_seq_asks_for_rebirth() -> None:
    state = born()
    update = state.on_message(topic("NDATA"), Payload(T0, None, ()), T0)
    assert update.rebirth
    assert update.problems == ("NDATA from node G1/E1 without a sequence number",)


def test_seq_above_255_asks_for_rebirth() -> None:
    state = born()
    update = state.on_message(topic("NDATA"), Payload(T0, 257, ()), T0)
    assert update.rebirth
    assert update.problems == ("NDATA from node G1/E1 has sequence number 257, above 255",)


def test_data_before_birth_asks_for_rebirth_and_emits_what_resolves() -> None:
    state = SparkplugState()
    data = Payload(T0, 5, (metric("Temp", None, DataType.FLOAT, 1.5), Metric(None, 1, None, 0, 2.0)))
    update = state.on_message(topic("NDATA"), data, T0 + 1)
    assert update.rebirth
    assert update.problems == ("NDATA from node G1/E1 before its NBIRTH", "unknown alias 1 from node G1/E1")
    assert update.samples == (good("Temp", 1.5, T0),)
    assert not state.online(G, E)


def test_device_birth_data_and_alias_tables_are_per_device() -> None:
    state = born()
    birth = state.on_message(topic("DBIRTH", "D1"), dbirth(1), T0 + 2)
    assert birth.samples == (good("Speed", 1.25, T0, "D1"), good("Mode", "auto", T0, "D1"))  # no DataSet
    assert birth.problems == ()
    assert state.online(G, E, "D1")
    data = Payload(T0 + 20, 2, (Metric(None, 10, None, 0, 3.5), Metric(None, 12, None, 0, None)))
    update = state.on_message(topic("DDATA", "D1"), data, T0 + 21)
    assert update.samples == (good("Speed", 3.5, T0 + 20, "D1"),)
    assert (update.rebirth, update.problems) == (False, ())
    # alias 1 is the node's Temp, not one of D1's metrics
    node_alias = state.on_message(topic("DDATA", "D1"), Payload(T0, 3, (Metric(None, 1, None, 0, 1.0),)), T0)
    assert node_alias.problems == ("unknown alias 1 from device G1/E1/D1",)
    assert node_alias.rebirth


def test_ddata_before_dbirth_asks_for_rebirth() -> None:
    state = born()
    update = state.on_message(topic("DDATA", "D9"), Payload(T0, 1, (metric("x", None, 0, 1),)), T0)
    assert update.rebirth
    assert update.problems == ("DDATA from device G1/E1/D9 before its DBIRTH",)
    assert update.samples == (good("x", 1, T0, "D9"),)


def test_null_value_is_a_bad_sample() -> None:
    state = born()
    data = Payload(T0 + 3, 1, (Metric(None, 1, None, 0, None, is_null=True),))
    assert state.on_message(topic("NDATA"), data, T0 + 4).samples == (bad("Temp", T0 + 3),)


def test_value_that_does_not_fit_the_birth_datatype_is_a_problem() -> None:
    state = born()
    data = Payload(T0, 1, (Metric(None, 2, None, 0, "seven"), Metric(None, 1, None, 0, 1.0)))
    update = state.on_message(topic("NDATA"), data, T0)
    assert update.problems == ("metric 'Count' from node G1/E1: INT32 (3) cannot carry str 'seven'",)
    assert not update.rebirth
    assert update.samples == (good("Temp", 1.0, T0),)


def test_ndeath_with_matching_bdseq_marks_node_and_device_metrics_bad() -> None:
    state = born(bd_seq=4)
    state.on_message(topic("DBIRTH", "D1"), dbirth(1), T0)
    state.on_message(topic("DBIRTH", "D2"), Payload(T0, 2, (metric("Level", 1, DataType.UINT16, 9, T0),)), T0)
    received = T0 + 90_000
    update = state.on_message(topic("NDEATH"), ndeath(4), received)
    assert update.samples == (
        bad("bdSeq", received),
        bad(REBIRTH_METRIC, received),
        bad("Temp", received),
        bad("Count", received),
        bad("Speed", received, "D1"),
        bad("Mode", received, "D1"),
        bad("Level", received, "D2"),
    )
    assert (update.rebirth, update.problems) == (False, ())
    assert not state.online(G, E)
    assert not state.online(G, E, "D1")
    # the node is unborn: its next DATA asks for a rebirth, and a second NDEATH changes nothing
    after = state.on_message(topic("NDATA"), Payload(T0, 3, (Metric(None, 1, None, 0, 1.0),)), T0)
    assert after.rebirth
    assert after.problems[0] == "NDATA from node G1/E1 before its NBIRTH"
    assert state.on_message(topic("NDEATH"), ndeath(4), received) == type(update)()


def test_ndeath_with_a_stale_bdseq_is_ignored() -> None:
    state = born(bd_seq=5)  # the new session; the old connection's will (bdSeq 4) arrives late
    update = state.on_message(topic("NDEATH"), ndeath(4), T0 + 2)
    assert update.samples == ()
    assert not update.rebirth
    assert update.problems == ("stale NDEATH from node G1/E1 ignored: bdSeq 4, current NBIRTH has 5",)
    assert state.online(G, E)
    data = state.on_message(topic("NDATA"), Payload(T0, 1, (Metric(None, 1, None, 0, 2.0),)), T0)
    assert (data.samples, data.problems) == ((good("Temp", 2.0, T0),), ())


def test_ndeath_without_bdseq_is_accepted_with_a_problem() -> None:
    state = born()
    update = state.on_message(topic("NDEATH"), Payload(None, None, ()), T0 + 9)
    assert update.problems == ("NDEATH from node G1/E1 has no bdSeq metric; accepted",)
    assert len(update.samples) == 4
    assert not state.online(G, E)


def test_ndeath_for_an_unknown_node_is_ignored() -> None:
    assert SparkplugState().on_message(topic("NDEATH"), ndeath(0), T0).samples == ()


def test_ddeath_marks_only_that_device_bad_at_the_payload_timestamp() -> None:
    state = born()
    state.on_message(topic("DBIRTH", "D1"), dbirth(1), T0)
    state.on_message(topic("DBIRTH", "D2"), Payload(T0, 2, (metric("Level", 1, DataType.UINT16, 9, T0),)), T0)
    update = state.on_message(topic("DDEATH", "D1"), Payload(T0 + 50, 3, ()), T0 + 60)
    assert update.samples == (bad("Speed", T0 + 50, "D1"), bad("Mode", T0 + 50, "D1"))
    assert (update.rebirth, update.problems) == (False, ())
    assert not state.online(G, E, "D1")
    assert state.online(G, E, "D2")
    assert state.online(G, E)
    without_ts = state.on_message(topic("DDEATH", "D2"), Payload(None, 4, ()), T0 + 70)
    assert without_ts.samples == (bad("Level", T0 + 70, "D2"),)


def test_nbirth_again_resets_devices_which_are_stale_until_their_dbirth() -> None:
    state = born()
    state.on_message(topic("DBIRTH", "D1"), dbirth(1), T0)
    update = state.on_message(topic("NBIRTH"), nbirth(ts=T0 + 100), T0 + 101)
    assert update.samples[:2] == (bad("Speed", T0 + 100, "D1"), bad("Mode", T0 + 100, "D1"))
    assert update.samples[2:] == (
        good("bdSeq", 0, T0 + 100),
        good(REBIRTH_METRIC, False, T0 + 100),
        good("Temp", 21.5, T0 + 100),
        good("Count", -3, T0 + 100),
    )
    assert not state.online(G, E, "D1")
    stale_alias = state.on_message(
        topic("DDATA", "D1"), Payload(T0, 1, (Metric(None, 10, None, 0, 1.0),)), T0
    )
    assert stale_alias.rebirth


def test_nbirth_without_bdseq_or_seq_is_a_problem() -> None:
    update = SparkplugState().on_message(topic("NBIRTH"), Payload(T0, None, (metric("a", 1, 9, 1.0),)), T0)
    assert update.problems == (
        "NBIRTH from node G1/E1 has no bdSeq metric",
        "NBIRTH from node G1/E1 without a sequence number",
    )
    assert not update.rebirth


@pytest.mark.parametrize(
    ("metric_ts", "payload_ts", "expected"),
    [(T0 + 1, T0 + 2, T0 + 1), (None, T0 + 2, T0 + 2), (None, None, T0 + 3)],
)
def test_timestamp_falls_back_to_payload_then_received(
    metric_ts: int | None, payload_ts: int | None, expected: int
) -> None:
    state = born()
    data = Payload(payload_ts, 1, (Metric(None, 1, metric_ts, 0, 5.0),))
    assert state.on_message(topic("NDATA"), data, T0 + 3).samples == (good("Temp", 5.0, expected),)


def test_birth_timestamps_fall_back_too() -> None:
    birth = Payload(
        None, 0, (metric("bdSeq", None, DataType.INT64, 0), metric("x", 1, DataType.BOOLEAN, True))
    )
    assert SparkplugState().on_message(topic("NBIRTH"), birth, T0 + 7).samples == (
        good("bdSeq", 0, T0 + 7),
        good("x", True, T0 + 7),
    )


@pytest.mark.parametrize("message_type", ["NCMD", "STATE"])
def test_commands_and_state_change_nothing(message_type: str) -> None:
    state = born()
    update = state.on_message(
        topic(message_type), Payload(T0, None, (metric(REBIRTH_METRIC, None, 11, True),)), T0
    )
    assert update == type(update)()
    assert state.on_message(topic("NDATA"), Payload(T0, 1, ()), T0).problems == ()


def test_groups_keep_separate_sessions() -> None:
    state = born()
    other = Topic("spBv1.0", "G2", "NDATA", E, None)
    assert state.on_message(other, Payload(T0, 1, ()), T0).problems == (
        "NDATA from node G2/E1 before its NBIRTH",
    )


def test_bytes_to_samples_end_to_end() -> None:
    state = SparkplugState()
    messages = [
        ("spBv1.0/G1/NBIRTH/E1", nbirth(seq=9)),
        ("spBv1.0/G1/NDATA/E1", Payload(T0 + 5, 10, (Metric(None, 2, T0 + 1, DataType.INT32, -40),))),
    ]
    updates = []
    for name, payload in messages:
        parsed = parse_topic(name)
        assert parsed is not None
        updates.append(state.on_message(parsed, decode_payload(encode_payload(payload)), T0 + 6))
    assert updates[-1] == type(updates[-1])((good("Count", -40, T0 + 1),), False, ())


# --- rebirth request ------------------------------------------------------------------------------


def test_rebirth_request_topic_and_payload() -> None:
    topic_name, data = rebirth_request("G1", "E1", timestamp_ms=T0)
    assert topic_name == "spBv1.0/G1/NCMD/E1"
    assert decode_payload(data) == Payload(T0, None, (Metric("Node Control/Rebirth", None, T0, 11, True),))
    assert SparkplugState.rebirth_request("G1", "E1", timestamp_ms=T0) == (topic_name, data)
    assert parse_topic(topic_name) == Topic("spBv1.0", "G1", "NCMD", "E1", None)


def test_rebirth_request_without_timestamp() -> None:
    _, data = rebirth_request("G1", "E1")
    [m] = decode_payload(data).metrics
    assert (m.name, m.alias, m.datatype, m.value) == (REBIRTH_METRIC, None, DataType.BOOLEAN, True)


@pytest.mark.parametrize(("group", "edge_node"), [("", "E1"), ("G/1", "E1"), ("G1", "E+"), ("G1", "#")])
def test_rebirth_request_rejects_invalid_ids(group: str, edge_node: str) -> None:
    with pytest.raises(SparkplugError, match="invalid Sparkplug"):
        rebirth_request(group, edge_node)


def test_edge_nodes_and_devices_beyond_the_bounds_are_refused_not_remembered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A sender inventing node ids (or device ids) must not grow the host's state without bound.
    monkeypatch.setattr("collectors.sparkplug.MAX_NODES", 3)
    monkeypatch.setattr("collectors.sparkplug.MAX_DEVICES", 2)
    state = SparkplugState()
    for n in range(3):
        update = state.on_message(Topic("spBv1.0", G, "NBIRTH", f"E{n}", None), nbirth(), T0 + 1)
        assert update.problems == ()
    fourth = Topic("spBv1.0", G, "NBIRTH", "E3", None)
    refused = state.on_message(fourth, nbirth(), T0 + 1)
    assert refused.samples == ()
    assert refused.rebirth is False  # asking it to be born again would only repeat this
    assert refused.problems == ("NBIRTH from node G1/E3 refused: 3 Edge Nodes are tracked already",)
    assert not state.online(G, "E3")
    assert state.on_message(Topic("spBv1.0", G, "NDATA", "E3", None), nbirth(seq=1), T0 + 2).samples == ()
    # A node already tracked goes on as before: its rebirth and its data are taken.
    assert state.on_message(Topic("spBv1.0", G, "NBIRTH", "E0", None), nbirth(), T0 + 3).problems == ()
    # Devices: two per node, a third DBIRTH refused, the first two still born.
    for seq, device in enumerate(("D1", "D2", "D3"), start=1):
        update = state.on_message(Topic("spBv1.0", G, "DBIRTH", "E0", device), dbirth(seq), T0 + 4)
    assert update.problems == (
        "DBIRTH from device G1/E0/D3 refused: 2 devices of the node are tracked already",
    )
    assert (state.online(G, "E0", "D1"), state.online(G, "E0", "D2"), state.online(G, "E0", "D3")) == (
        True,
        True,
        False,
    )
    assert _sparkplug_reason(refused.problems[0]) == "too_many_sparkplug_ids"
