"""Sparkplug B 3.0 for the MQTT collector: payload codec, topic parser and host-side session state.

Pure: bytes and topics in, values out; no I/O, no clock (the caller passes ``received_ms``), no
protobuf package. Section numbers refer to the Eclipse Sparkplug Specification 3.0.0:

* §6.4.1 Google Protocol Buffer Schema: ``Payload`` and ``Payload.Metric`` field numbers.
* §6.4.16 Data Types and §6.4.17 Datatype Details: the ``DataType`` codes and the protobuf field
  each one travels in (Int8/Int16/Int32/UInt8/UInt16/UInt32 in ``uint32 int_value``, Int64/UInt64/
  DateTime in ``uint64 long_value``, Float, Double, Boolean, String/Text/UUID in ``string_value``).
* §4.1 Topic Namespace Elements: ``spBv1.0/group_id/message_type/edge_node_id[/device_id]``.
* §4.2, §5.5, §5.7, §5.9, §5.17, §6.4.5, §6.4.6, §6.4.19, §6.4.25: births, deaths, aliases,
  sequence numbers, bdSeq and the rebirth request, cited where they are applied below.

The protobuf wire format (varint, 64-bit, length-delimited, 32-bit) is read and written by hand;
fields this module does not model are skipped by their wire type.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = [
    "MAX_DEVICES",
    "MAX_NODES",
    "MESSAGE_TYPES",
    "NAMESPACE",
    "REBIRTH_METRIC",
    "DataType",
    "Metric",
    "Payload",
    "Sample",
    "SparkplugError",
    "SparkplugState",
    "Topic",
    "Update",
    "decode_payload",
    "encode_payload",
    "parse_topic",
    "rebirth_request",
]

NAMESPACE = "spBv1.0"
"""The topic namespace element for Sparkplug B (§4.1.1)."""

MESSAGE_TYPES = frozenset({"NBIRTH", "NDEATH", "DBIRTH", "DDEATH", "NDATA", "DDATA", "NCMD", "DCMD", "STATE"})
"""The message_type elements of §4.1.3."""

REBIRTH_METRIC = "Node Control/Rebirth"
"""The Boolean metric a Rebirth Request sets to true in an NCMD (§5.17, §6.4.19)."""

BD_SEQ_METRIC = "bdSeq"
"""The Int64 metric correlating an NBIRTH with its NDEATH (§5.4, §6.4.19, §6.4.25)."""

_DEVICE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
_RESERVED = ("+", "#")  # with "/", not allowed in group, edge node and device ids (§4.1.2, §4.1.4, §4.1.5)
_SEQ_MODULUS = 256  # seq runs 0..255 and wraps to 0 (§6.4.5)
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


class SparkplugError(ValueError):
    """A Sparkplug payload or value that cannot be decoded or encoded; the message names the byte or field."""


class DataType(IntEnum):
    """Sparkplug B datatype codes (§6.4.16 Data Types)."""

    UNKNOWN = 0
    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    DATASET = 16
    BYTES = 17
    FILE = 18
    TEMPLATE = 19
    PROPERTYSET = 20
    PROPERTYSETLIST = 21
    INT8_ARRAY = 22
    INT16_ARRAY = 23
    INT32_ARRAY = 24
    INT64_ARRAY = 25
    UINT8_ARRAY = 26
    UINT16_ARRAY = 27
    UINT32_ARRAY = 28
    UINT64_ARRAY = 29
    FLOAT_ARRAY = 30
    DOUBLE_ARRAY = 31
    BOOLEAN_ARRAY = 32
    STRING_ARRAY = 33
    DATETIME_ARRAY = 34


# Integer datatypes: (bits, signed). DateTime is milliseconds since the epoch in a uint64 (§6.4.17).
_INTEGER_TYPES: dict[int, tuple[int, bool]] = {
    DataType.INT8: (8, True),
    DataType.INT16: (16, True),
    DataType.INT32: (32, True),
    DataType.INT64: (64, True),
    DataType.UINT8: (8, False),
    DataType.UINT16: (16, False),
    DataType.UINT32: (32, False),
    DataType.UINT64: (64, False),
    DataType.DATETIME: (64, False),
}
_FLOAT_TYPES = frozenset({DataType.FLOAT, DataType.DOUBLE})
_STRING_TYPES = frozenset({DataType.STRING, DataType.TEXT, DataType.UUID})
_SUPPORTED_TYPES = frozenset({*_INTEGER_TYPES, *_FLOAT_TYPES, DataType.BOOLEAN, *_STRING_TYPES})
_DECODED_TYPES = _SUPPORTED_TYPES | {DataType.UNKNOWN}  # Unknown: a DATA metric keeps its wire value

Value = bool | int | float | str
"""A decoded scalar metric value."""


def _type_name(datatype: int) -> str:
    try:
        return f"{DataType(datatype).name} ({datatype})"
    except ValueError:
        return f"datatype {datatype}"


# --- data model ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One ``Payload.Metric`` (§6.4.6), its value converted to Python by its datatype (§6.4.17).

    Attributes:
        name: The metric name; births carry it, DATA messages usually only the alias (§6.4.6).
        alias: The alias bound to the name by the birth, if aliases are used.
        timestamp_ms: Milliseconds since the epoch (UTC) when the value was captured, if given.
        datatype: A :class:`DataType` code; 0 (Unknown) when the message leaves it out, as DATA
            messages should (§6.4.6).
        value: The value: signed integers sign-corrected from their unsigned two's-complement
            carrier, floats, bools and strings. None when ``is_null``, when there is no value, or
            when the datatype is not supported. With datatype 0 the raw wire value is kept
            (integers unsigned); :class:`SparkplugState` converts it by the datatype of the birth.
        is_null: The metric explicitly says its value is null (§6.4.6).
        supported: False for DataSet, Bytes, File, Template, PropertySet(List), the array types and
            unknown codes, whose value this module does not decode.
    """

    name: str | None
    alias: int | None
    timestamp_ms: int | None
    datatype: int
    value: Value | None
    is_null: bool = False
    supported: bool = True


@dataclass(frozen=True, slots=True)
class Payload:
    """A Sparkplug B ``Payload`` (§6.4.5); ``uuid`` and ``body`` are skipped.

    Attributes:
        timestamp_ms: When the message was published, milliseconds since the epoch (UTC).
        seq: The sequence number, 0..255; absent from NDEATH, NCMD and DCMD (§6.4.5, §6.4.23).
        metrics: The metrics in payload order.
    """

    timestamp_ms: int | None
    seq: int | None
    metrics: tuple[Metric, ...] = ()


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed Sparkplug topic ``namespace/group_id/message_type/edge_node_id[/device_id]`` (§4.1).

    Attributes:
        namespace: Always ``spBv1.0`` (§4.1.1).
        group: The Group ID (§4.1.2).
        message_type: One of :data:`MESSAGE_TYPES` (§4.1.3).
        edge_node: The Edge Node ID (§4.1.4).
        device: The Device ID for DBIRTH, DDEATH, DDATA and DCMD, else None (§4.1.5).
    """

    namespace: str
    group: str
    message_type: str
    edge_node: str
    device: str | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric value, or its loss, as the host application sees it.

    Attributes:
        edge_node: The Edge Node ID (the group is the one of the topic the update came from).
        device: The Device ID, or None for an Edge Node metric.
        metric_name: The metric name, resolved through the birth's alias table.
        value: The value; None exactly when ``quality`` is ``"bad"``.
        timestamp_ms: Milliseconds since the epoch (UTC) the value or its loss is about.
        quality: ``"good"``, or ``"bad"`` for a STALE metric after a death (§5.5, §5.7) and for a
            null value.
    """

    edge_node: str
    device: str | None
    metric_name: str
    value: Value | None
    timestamp_ms: int
    quality: str


@dataclass(frozen=True, slots=True)
class Update:
    """What one message changed for the host application.

    Attributes:
        samples: The values to record, in payload order; after a death, one bad sample per metric.
        rebirth: True when the host should send :func:`rebirth_request` to the message's Edge Node
            (sequence gap, unknown alias, DATA before BIRTH; §5.9, §5.17). Raised on every such
            message: the caller rate-limits its requests.
        problems: Human-readable descriptions of what was wrong or ignored, for logs and counters.
    """

    samples: tuple[Sample, ...] = ()
    rebirth: bool = False
    problems: tuple[str, ...] = ()


_NODE_MESSAGES = frozenset({"NBIRTH", "DBIRTH", "NDATA", "DDATA", "DDEATH"})
"""Messages that make the state remember their Edge Node."""

# --- wire format: reading ------------------------------------------------------------------------

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5

# Expected wire type per field number (§6.4.1); other field numbers are skipped.
_PAYLOAD_WIRE = {1: _VARINT, 2: _LENGTH, 3: _VARINT, 4: _LENGTH, 5: _LENGTH}
_METRIC_WIRE = {
    1: _LENGTH,  # name
    2: _VARINT,  # alias
    3: _VARINT,  # timestamp
    4: _VARINT,  # datatype
    5: _VARINT,  # is_historical
    6: _VARINT,  # is_transient
    7: _VARINT,  # is_null
    8: _LENGTH,  # metadata (skipped)
    9: _LENGTH,  # properties (skipped)
    10: _VARINT,  # int_value (uint32)
    11: _VARINT,  # long_value (uint64)
    12: _FIXED32,  # float_value
    13: _FIXED64,  # double_value
    14: _VARINT,  # boolean_value
    15: _LENGTH,  # string_value
    16: _LENGTH,  # bytes_value (not decoded)
    17: _LENGTH,  # dataset_value (not decoded)
    18: _LENGTH,  # template_value (not decoded)
    19: _LENGTH,  # extension_value (not decoded)
}
_INT_VALUE, _LONG_VALUE, _FLOAT_VALUE, _DOUBLE_VALUE, _BOOLEAN_VALUE, _STRING_VALUE = 10, 11, 12, 13, 14, 15
_VALUE_FIELDS = range(10, 20)
_FIELD_NAMES = {
    _INT_VALUE: "int_value",
    _LONG_VALUE: "long_value",
    _FLOAT_VALUE: "float_value",
    _DOUBLE_VALUE: "double_value",
    _BOOLEAN_VALUE: "boolean_value",
    _STRING_VALUE: "string_value",
    16: "bytes_value",
    17: "dataset_value",
    18: "template_value",
    19: "extension_value",
}


def _read_varint(data: bytes, pos: int, end: int, where: str) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return (value, position after it)."""
    start = pos
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise SparkplugError(f"{where}: truncated varint at byte {start}")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise SparkplugError(f"{where}: varint longer than 10 bytes at byte {start}")
    if result > _U64:
        raise SparkplugError(f"{where}: varint at byte {start} does not fit in 64 bits")
    return result, pos


@dataclass(frozen=True, slots=True)
class _Field:
    number: int
    wire: int
    value: int  # varint value, little-endian fixed value, or the length of a length-delimited field
    start: int  # first byte of the content (fixed and length-delimited fields)
    stop: int  # byte after the content


def _fields(data: bytes, pos: int, end: int, where: str) -> Iterator[_Field]:
    """Iterate the fields of one message occupying ``data[pos:end]``; offsets stay absolute."""
    while pos < end:
        key_at = pos
        key, pos = _read_varint(data, pos, end, where)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise SparkplugError(f"{where}: field number 0 at byte {key_at}")
        if wire == _VARINT:
            value, after = _read_varint(data, pos, end, where)
            yield _Field(number, wire, value, pos, after)
            pos = after
            continue
        if wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if end - pos < size:
                raise SparkplugError(
                    f"{where}: truncated {size * 8}-bit field {number} at byte {pos}: "
                    f"needs {size} bytes, {end - pos} left"
                )
            yield _Field(number, wire, int.from_bytes(data[pos : pos + size], "little"), pos, pos + size)
            pos += size
            continue
        if wire == _LENGTH:
            length, pos = _read_varint(data, pos, end, where)
            if end - pos < length:
                raise SparkplugError(
                    f"{where}: truncated length-delimited field {number} at byte {pos}: "
                    f"needs {length} bytes, {end - pos} left"
                )
            yield _Field(number, wire, length, pos, pos + length)
            pos += length
            continue
        raise SparkplugError(f"{where}: field {number} at byte {key_at} has unsupported wire type {wire}")


def _check_wire(item: _Field, expected: dict[int, int], where: str) -> bool:
    """True if the field is known and has its wire type; False if unknown; raise if mistyped."""
    want = expected.get(item.number)
    if want is None:
        return False
    if item.wire != want:
        raise SparkplugError(f"{where}: field {item.number} has wire type {item.wire}, expected {want}")
    return True


def _utf8(data: bytes, item: _Field, where: str) -> str:
    try:
        return data[item.start : item.stop].decode("utf-8")
    except UnicodeDecodeError:
        where = f"{where}: field {item.number} at byte {item.start}"
        raise SparkplugError(f"{where} is not valid UTF-8") from None


def _signed(raw: int, bits: int) -> int:
    """Undo two's complement: ``raw`` may carry the value in ``bits``, 32 or 64 bits (§6.4.17)."""
    if raw < 0 or raw < 1 << (bits - 1):
        return raw
    for width in (bits, 32, 64):
        if width >= bits and raw < 1 << width:
            return raw - (1 << width)
    return raw


def _coerce(datatype: int, value: Value, *, strict: bool = False) -> Value:
    """Convert a scalar to the Python value of ``datatype``; raise SparkplugError if it cannot carry it.

    Not ``strict`` (decoding), a non-negative integer for a signed type is read as two's complement,
    so 255 as Int8 is -1. This is idempotent: a value already converted converts to itself, so the
    host can re-apply it with the birth's datatype to a DATA value decoded without one. ``strict``
    (encoding) takes integers at face value: 255 as Int8 is out of range.
    """
    if datatype in _INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SparkplugError(f"{_type_name(datatype)} cannot carry {type(value).__name__} {value!r}")
        bits, signed = _INTEGER_TYPES[datatype]
        number = _signed(value, bits) if signed and not strict else value
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if not low <= number <= high:
            raise SparkplugError(f"value {value} out of range for {_type_name(datatype)} ({low}..{high})")
        return number
    if datatype in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SparkplugError(f"{_type_name(datatype)} cannot carry {type(value).__name__} {value!r}")
        return float(value)
    if datatype == DataType.BOOLEAN and isinstance(value, bool):
        return value
    if datatype in _STRING_TYPES and isinstance(value, str):
        return value
    if datatype == DataType.UNKNOWN:
        return value
    raise SparkplugError(f"{_type_name(datatype)} cannot carry {type(value).__name__} {value!r}")


def _raw_value(data: bytes, item: _Field, where: str) -> Value | None:
    """The scalar carried by a value field, as on the wire; None for the kinds not decoded."""
    number = item.number
    raw: Value | None = None
    if number == _INT_VALUE:
        raw = item.value & _U32  # uint32: an int32 written as a 64-bit varint is cut to 32 bits
    elif number == _LONG_VALUE:
        raw = item.value
    elif number in (_FLOAT_VALUE, _DOUBLE_VALUE):
        raw = float(struct.unpack_from("<f" if number == _FLOAT_VALUE else "<d", data, item.start)[0])
    elif number == _BOOLEAN_VALUE:
        raw = item.value != 0
    elif number == _STRING_VALUE:
        raw = _utf8(data, item, where)
    return raw


def _decode_metric(data: bytes, pos: int, end: int, where: str) -> Metric:
    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None
    datatype = 0
    is_null = False
    value_field: int | None = None
    raw: Value | None = None
    for item in _fields(data, pos, end, where):
        if not _check_wire(item, _METRIC_WIRE, where):
            continue
        if item.number == 1:
            name = _utf8(data, item, where)
        elif item.number == 2:
            alias = item.value
        elif item.number == 3:
            timestamp = item.value
        elif item.number == 4:
            datatype = item.value & _U32
        elif item.number == 7:
            is_null = item.value != 0
        elif item.number in _VALUE_FIELDS:  # a oneof: the last value field wins
            value_field = item.number
            raw = _raw_value(data, item, where)
    if datatype not in _DECODED_TYPES:
        return Metric(name, alias, timestamp, datatype, None, is_null, supported=False)
    if is_null or value_field is None:
        return Metric(name, alias, timestamp, datatype, None, is_null)
    if raw is None:  # bytes, DataSet, Template or extension
        return Metric(name, alias, timestamp, datatype, None, is_null, supported=False)
    try:
        value = _coerce(datatype, raw)
    except SparkplugError as exc:
        raise SparkplugError(f"{where}: {_FIELD_NAMES[value_field]}: {exc}") from None
    return Metric(name, alias, timestamp, datatype, value, is_null)


def decode_payload(data: bytes) -> Payload:
    """Decode a Sparkplug B ``Payload`` (§6.4.1, §6.4.5, §6.4.6).

    Values are converted by each metric's datatype (§6.4.17): signed integers are sign-corrected
    from the unsigned two's complement of ``int_value``/``long_value``; unsupported datatypes give
    ``value=None, supported=False``. Fields not modelled (``uuid``, ``body``, ``metadata``,
    ``properties``, extensions, unknown numbers) are skipped by wire type.

    Args:
        data: The MQTT message payload.

    Returns:
        The payload.

    Raises:
        SparkplugError: On malformed input; the message names the metric index (0-based), the
            field number and the byte offset, e.g. ``"metric 3: field 12 has wire type 0,
            expected 5"`` or ``"payload: truncated varint at byte 17"``.
    """
    data = bytes(data)
    timestamp: int | None = None
    seq: int | None = None
    metrics: list[Metric] = []
    for item in _fields(data, 0, len(data), "payload"):
        if not _check_wire(item, _PAYLOAD_WIRE, "payload"):
            continue
        if item.number == 1:
            timestamp = item.value
        elif item.number == 2:
            metrics.append(_decode_metric(data, item.start, item.stop, f"metric {len(metrics)}"))
        elif item.number == 3:
            seq = item.value
    return Payload(timestamp, seq, tuple(metrics))


# --- wire format: writing ------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _put_varint(out: bytearray, number: int, value: int, what: str) -> None:
    if not 0 <= value <= _U64:
        raise SparkplugError(f"{what} {value} does not fit in a uint64")
    out += _key(number, _VARINT) + _varint(value)


def _put_bytes(out: bytearray, number: int, content: bytes) -> None:
    out += _key(number, _LENGTH) + _varint(len(content)) + content


def _field_type(value: Value) -> int:
    """The datatype whose field carries ``value`` when a metric has no datatype."""
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.UINT64
    if isinstance(value, float):
        return DataType.DOUBLE
    return DataType.STRING


def _put_value(out: bytearray, datatype: int, value: Value) -> None:
    """Write ``value`` into the oneof field its datatype travels in (§6.4.17)."""
    if datatype == DataType.UNKNOWN:
        datatype = _field_type(value)
    value = _coerce(datatype, value, strict=True)
    if isinstance(value, bool):
        out += _key(_BOOLEAN_VALUE, _VARINT) + (b"\x01" if value else b"\x00")
    elif isinstance(value, int):
        if _INTEGER_TYPES[datatype][0] <= 32:
            out += _key(_INT_VALUE, _VARINT) + _varint(value & _U32)
        else:
            out += _key(_LONG_VALUE, _VARINT) + _varint(value & _U64)
    elif isinstance(value, float) and datatype == DataType.FLOAT:
        try:
            out += _key(_FLOAT_VALUE, _FIXED32) + struct.pack("<f", value)
        except OverflowError:
            raise SparkplugError(f"value {value} out of range for {_type_name(datatype)}") from None
    elif isinstance(value, float):
        out += _key(_DOUBLE_VALUE, _FIXED64) + struct.pack("<d", value)
    else:
        _put_bytes(out, _STRING_VALUE, value.encode("utf-8"))


def _encode_metric(metric: Metric) -> bytes:
    out = bytearray()
    if metric.name is not None:
        _put_bytes(out, 1, metric.name.encode("utf-8"))
    if metric.alias is not None:
        _put_varint(out, 2, metric.alias, "alias")
    if metric.timestamp_ms is not None:
        _put_varint(out, 3, metric.timestamp_ms, "timestamp")
    if metric.datatype:
        if not 0 <= metric.datatype <= _U32:
            raise SparkplugError(f"datatype {metric.datatype} does not fit in a uint32")
        out += _key(4, _VARINT) + _varint(metric.datatype)
    if metric.is_null:
        out += _key(7, _VARINT) + b"\x01"
    elif metric.value is not None:
        if metric.datatype not in _DECODED_TYPES:
            raise SparkplugError(f"cannot encode a value for {_type_name(metric.datatype)}")
        _put_value(out, metric.datatype, metric.value)
    return bytes(out)


def encode_payload(payload: Payload) -> bytes:
    """Encode a Sparkplug B ``Payload`` (§6.4.1); the inverse of :func:`decode_payload`.

    Int8/Int16/Int32/UInt8/UInt16/UInt32 go in ``int_value`` (negative values as 32-bit two's
    complement), Int64/UInt64/DateTime in ``long_value`` (negative as 64-bit two's complement),
    Float, Double, Boolean and String/Text/UUID in their own fields (§6.4.17). A metric with
    ``is_null`` or ``value=None`` is written without a value; with datatype 0 the field follows the
    Python type (bool, non-negative int as ``long_value``, float as ``double_value``, str).

    Args:
        payload: The payload to encode.

    Returns:
        The protobuf bytes.

    Raises:
        SparkplugError: If a value does not fit its datatype (e.g. 300 as Int8, a string as
            Double) or a value is given for an unsupported datatype; the message names the metric.
    """
    out = bytearray()
    if payload.timestamp_ms is not None:
        _put_varint(out, 1, payload.timestamp_ms, "payload timestamp")
    for index, metric in enumerate(payload.metrics):
        try:
            _put_bytes(out, 2, _encode_metric(metric))
        except SparkplugError as exc:
            raise SparkplugError(f"metric {index} ({metric.name or metric.alias!r}): {exc}") from None
    if payload.seq is not None:
        _put_varint(out, 3, payload.seq, "seq")
    return bytes(out)


# --- topics --------------------------------------------------------------------------------------


def parse_topic(topic: str) -> Topic | None:
    """Parse ``spBv1.0/<group>/<TYPE>/<edge_node>[/<device>]`` (§4.1).

    The device element is required for DBIRTH, DDEATH, DDATA and DCMD and forbidden for the other
    types (§4.1.5). Host STATE topics, ``spBv1.0/STATE/<host_id>`` (§4.2.3), are not edge node
    topics and give None.

    Args:
        topic: The MQTT topic name of a received message.

    Returns:
        The parsed topic, or None if it is not a Sparkplug B edge node or device topic.
    """
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        return None
    _, group, message_type, edge_node, *rest = parts
    device = rest[0] if rest else None
    if message_type not in MESSAGE_TYPES or (device is not None) != (message_type in _DEVICE_TYPES):
        return None
    if any(not part or any(c in part for c in _RESERVED) for part in parts[1:]):
        return None
    return Topic(NAMESPACE, group, message_type, edge_node, device)


def rebirth_request(group: str, edge_node: str, *, timestamp_ms: int | None = None) -> tuple[str, bytes]:
    """Build a Rebirth Request for an Edge Node (§5.17 Commands, §4.2.1.4 NCMD).

    A Rebirth Request is an NCMD carrying a Boolean metric ``Node Control/Rebirth`` set to true,
    without an alias and without a sequence number (§6.4.23).

    Args:
        group: The Group ID.
        edge_node: The Edge Node ID.
        timestamp_ms: The send time in milliseconds since the epoch. NCMD messages must carry a
            timestamp (§4.2.1.4.2); this module has no clock, so the caller passes it.

    Returns:
        The NCMD topic and the encoded payload.

    Raises:
        SparkplugError: If an ID is empty or contains ``/``, ``+`` or ``#`` (§4.1.2, §4.1.4).
    """
    for what, ident in (("group", group), ("edge node", edge_node)):
        if not ident or any(c in ident for c in ("/", *_RESERVED)):
            raise SparkplugError(f"invalid Sparkplug {what} ID {ident!r}")
    metric = Metric(REBIRTH_METRIC, None, timestamp_ms, DataType.BOOLEAN, True)
    payload = Payload(timestamp_ms, None, (metric,))
    return f"{NAMESPACE}/{group}/NCMD/{edge_node}", encode_payload(payload)


# --- host application state ----------------------------------------------------------------------


@dataclass
class _Table:
    """The metrics of one birth: alias to name, and name to datatype in birth order."""

    aliases: dict[int, str] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Node:
    born: bool = False
    bd_seq: int | None = None
    last_seq: int | None = None
    table: _Table = field(default_factory=_Table)
    devices: dict[str, _Table] = field(default_factory=dict)  # devices born in this session


class _Collector:
    """Accumulates one message's samples, problems and rebirth flag."""

    def __init__(self, topic: Topic, received_ms: int, payload: Payload) -> None:
        self.topic = topic
        self.received_ms = received_ms
        self.payload_ts = payload.timestamp_ms
        self.samples: list[Sample] = []
        self.problems: list[str] = []
        self.rebirth = False

    @property
    def source(self) -> str:
        topic = self.topic
        if topic.device is None:
            return f"node {topic.group}/{topic.edge_node}"
        return f"device {topic.group}/{topic.edge_node}/{topic.device}"

    def problem(self, text: str, *, rebirth: bool = False) -> None:
        self.problems.append(text)
        self.rebirth = self.rebirth or rebirth

    def sample(self, device: str | None, name: str, value: Value | None, ts: int | None) -> None:
        when = ts if ts is not None else self.payload_ts if self.payload_ts is not None else self.received_ms
        quality = "bad" if value is None else "good"
        self.samples.append(Sample(self.topic.edge_node, device, name, value, when, quality))

    def stale(self, device: str | None, table: _Table, ts: int) -> None:
        for name, datatype in table.datatypes.items():
            if datatype in _DECODED_TYPES:
                self.samples.append(Sample(self.topic.edge_node, device, name, None, ts, "bad"))

    def update(self) -> Update:
        return Update(tuple(self.samples), self.rebirth, tuple(self.problems))


def _bd_seq(payload: Payload) -> int | None:
    for metric in payload.metrics:
        value = metric.value
        if metric.name == BD_SEQ_METRIC and isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


MAX_NODES = 10_000
"""Edge Nodes remembered per MQTT server: a sender that invents node ids cannot grow the state
without bound. Messages of a node beyond it are refused (a problem each), never remembered."""

MAX_DEVICES = 10_000
"""Devices remembered per Edge Node, for the same reason: a DBIRTH of one more is refused."""


class SparkplugState:
    """Host application session state for the Edge Nodes seen on one MQTT server.

    Feed every received Sparkplug message to :meth:`on_message` in arrival order. The state keeps,
    per Edge Node (Group ID and Edge Node ID), whether it is born, the bdSeq of its NBIRTH, the last
    sequence number, the NBIRTH alias table and, per device born since, the DBIRTH alias table. A
    message that breaks the session rules sets ``Update.rebirth``; the host then publishes
    :func:`rebirth_request`. Gaps trigger a rebirth request at once: this is the §5.9 Reorder
    Timeout with a timeout of zero, right for an MQTT server that keeps the order of one client's
    QoS 0 messages across topics.
    """

    rebirth_request = staticmethod(rebirth_request)

    def __init__(self) -> None:
        self._nodes: dict[tuple[str, str], _Node] = {}

    def online(self, group: str, edge_node: str, device: str | None = None) -> bool:
        """Whether the Edge Node (or one of its devices) is born and not dead.

        Args:
            group: The Group ID.
            edge_node: The Edge Node ID.
            device: A Device ID, or None for the Edge Node itself.

        Returns:
            True if the NBIRTH (and for a device its DBIRTH) was seen and no death since.
        """
        node = self._nodes.get((group, edge_node))
        if node is None or not node.born:
            return False
        return device is None or device in node.devices

    def on_message(self, topic: Topic, payload: Payload, received_ms: int) -> Update:
        """Apply one message to the session state.

        * NBIRTH (§4.2.1.1, §6.4.19): resets the node's alias table from the birth metrics, records
          its seq and bdSeq, forgets device births of the previous session (their metrics are STALE
          until their new DBIRTH, §4.2.1.1.2, so devices still online get bad samples), and emits
          the birth metrics as good samples.
        * DBIRTH (§4.2.2.1, §6.4.20): the same for the device's own alias table.
        * NDATA/DDATA (§4.2.1.2, §4.2.2.2, §6.4.6): metrics by alias are resolved through the
          birth's table, by name used as is; an unknown alias or name is a problem and asks for a
          rebirth. Values sent without a datatype are converted by the birth's datatype.
        * Sequence numbers (§6.4.5, §5.9): each NBIRTH sets the node's seq; each DBIRTH, NDATA,
          DDATA and DDEATH must carry the previous one plus 1, 255 wrapping to 0. A gap, a missing
          seq, or a DATA/DBIRTH/DDEATH before the NBIRTH is a problem and asks for a rebirth;
          whatever can be resolved is still emitted.
        * NDEATH (§4.2.1.3, §5.4, §5.5, §6.4.25): if its bdSeq metric matches the bdSeq of the
          current NBIRTH, every metric of the node and of its born devices gives one bad sample at
          ``received_ms`` (the host's time: the will message was composed at CONNECT time, so its
          timestamp says nothing about the death), and the node is no longer born. An NDEATH whose
          bdSeq differs belongs to an earlier session (the will of an old connection can arrive
          after the new NBIRTH) and is ignored.
        * DDEATH (§4.2.2.3, §5.7): that device's metrics give bad samples at the payload timestamp
          (or ``received_ms``), and the device is no longer born.
        * NCMD, DCMD and STATE change nothing.

        A sample's timestamp is the metric's, else the payload's, else ``received_ms``.

        Args:
            topic: The parsed topic (:func:`parse_topic`).
            payload: The decoded payload (:func:`decode_payload`).
            received_ms: When the host received the message, milliseconds since the epoch (UTC).

        Returns:
            The samples to record, whether to request a rebirth, and the problems seen.
        """
        out = _Collector(topic, received_ms, payload)
        key = (topic.group, topic.edge_node)
        kind = topic.message_type
        if key not in self._nodes and len(self._nodes) >= MAX_NODES and kind in _NODE_MESSAGES:
            out.problem(f"{kind} from {out.source} refused: {MAX_NODES} Edge Nodes are tracked already")
            return out.update()
        if kind == "NBIRTH":
            self._nodes[key] = self._nbirth(self._nodes.get(key), payload, out)
            return out.update()
        node = self._nodes.get(key)
        if kind == "NDEATH":
            if node is not None:
                self._ndeath(node, payload, out)
            return out.update()
        if kind not in ("DBIRTH", "NDATA", "DDATA", "DDEATH"):
            return out.update()
        if node is None:
            node = self._nodes[key] = _Node()
        self._check_seq(node, payload, out)
        if kind == "DBIRTH":
            self._dbirth(node, topic.device, payload, out)
        elif kind == "DDEATH":
            self._ddeath(node, topic.device, out)
        else:
            self._data(node, topic.device, payload, out)
        return out.update()

    # --- message handlers ---

    @staticmethod
    def _check_seq(node: _Node, payload: Payload, out: _Collector) -> None:
        """§6.4.5: one more than the previous message of the node, 255 wrapping to 0."""
        kind = out.topic.message_type
        seq = payload.seq
        if not node.born:
            out.problem(f"{kind} from {out.source} before its NBIRTH", rebirth=True)
        elif seq is None:
            out.problem(f"{kind} from {out.source} without a sequence number", rebirth=True)
        elif seq >= _SEQ_MODULUS:
            out.problem(f"{kind} from {out.source} has sequence number {seq}, above 255", rebirth=True)
        elif node.last_seq is not None and seq != (node.last_seq + 1) % _SEQ_MODULUS:
            expected = (node.last_seq + 1) % _SEQ_MODULUS
            out.problem(f"sequence gap: expected {expected}, got {seq} ({out.source})", rebirth=True)
        if seq is not None:
            node.last_seq = seq % _SEQ_MODULUS

    @staticmethod
    def _birth_table(payload: Payload, device: str | None, out: _Collector) -> _Table:
        table = _Table()
        for index, metric in enumerate(payload.metrics):
            if metric.name is None:
                out.problem(f"{out.topic.message_type} metric {index} from {out.source} has no name")
                continue
            if metric.alias is not None:
                other = table.aliases.get(metric.alias)
                if other is not None and other != metric.name:
                    both = f"{other!r} and {metric.name!r}"
                    out.problem(f"alias {metric.alias} from {out.source} names both {both}")
                table.aliases[metric.alias] = metric.name
            table.datatypes[metric.name] = metric.datatype
            if metric.supported and metric.datatype in _DECODED_TYPES:
                out.sample(device, metric.name, metric.value, metric.timestamp_ms)
        return table

    def _nbirth(self, old: _Node | None, payload: Payload, out: _Collector) -> _Node:
        node = _Node(born=True, bd_seq=_bd_seq(payload))
        if old is not None and old.born:  # devices of the previous session are STALE until their DBIRTH
            when = payload.timestamp_ms if payload.timestamp_ms is not None else out.received_ms
            for device, table in old.devices.items():
                out.stale(device, table, when)
        node.table = self._birth_table(payload, None, out)
        if node.bd_seq is None:
            out.problem(f"NBIRTH from {out.source} has no {BD_SEQ_METRIC} metric")
        if payload.seq is None:
            out.problem(f"NBIRTH from {out.source} without a sequence number")
        else:
            node.last_seq = payload.seq % _SEQ_MODULUS
        return node

    def _dbirth(self, node: _Node, device: str | None, payload: Payload, out: _Collector) -> None:
        if device is None:
            return
        if device not in node.devices and len(node.devices) >= MAX_DEVICES:
            out.problem(
                f"DBIRTH from {out.source} refused: {MAX_DEVICES} devices of the node are tracked already"
            )
            return
        node.devices[device] = self._birth_table(payload, device, out)

    @staticmethod
    def _ndeath(node: _Node, payload: Payload, out: _Collector) -> None:
        if not node.born:
            return
        bd_seq = _bd_seq(payload)
        if bd_seq is not None and node.bd_seq is not None and bd_seq != node.bd_seq:
            out.problem(
                f"stale NDEATH from {out.source} ignored: bdSeq {bd_seq}, current NBIRTH has {node.bd_seq}"
            )
            return
        if bd_seq is None:
            out.problem(f"NDEATH from {out.source} has no {BD_SEQ_METRIC} metric; accepted")
        out.stale(None, node.table, out.received_ms)
        for device, table in node.devices.items():
            out.stale(device, table, out.received_ms)
        node.born = False
        node.last_seq = None
        node.table = _Table()
        node.devices.clear()

    @staticmethod
    def _ddeath(node: _Node, device: str | None, out: _Collector) -> None:
        table = node.devices.pop(device, None) if device is not None else None
        if table is not None:
            when = out.payload_ts if out.payload_ts is not None else out.received_ms
            out.stale(device, table, when)

    @staticmethod
    def _data(node: _Node, device: str | None, payload: Payload, out: _Collector) -> None:
        table = node.table if device is None else node.devices.get(device)
        if table is None and node.born:
            out.problem(f"DDATA from {out.source} before its DBIRTH", rebirth=True)
        birth_known = table is not None and node.born
        table = table if table is not None else _Table()
        for metric in payload.metrics:
            name = metric.name
            if name is None:
                name = table.aliases.get(metric.alias) if metric.alias is not None else None
                if name is None:
                    what = (
                        f"alias {metric.alias}"
                        if metric.alias is not None
                        else "metric without name or alias"
                    )
                    out.problem(f"unknown {what} from {out.source}", rebirth=metric.alias is not None)
                    continue
            elif birth_known and name not in table.datatypes:
                out.problem(f"metric {name!r} from {out.source} was not in its birth", rebirth=True)
            datatype = metric.datatype or table.datatypes.get(name, DataType.UNKNOWN)
            if not metric.supported or datatype not in _DECODED_TYPES:
                continue
            value = metric.value
            if value is not None:
                try:
                    value = _coerce(datatype, value)
                except SparkplugError as exc:
                    out.problem(f"metric {name!r} from {out.source}: {exc}")
                    continue
            out.sample(device, name, value, metric.timestamp_ms)
