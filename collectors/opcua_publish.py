"""Publish responses decoded straight from their bytes: the collector's fast data path.

asyncua decodes every Publish response generically: the whole ``PublishResponse`` dataclass tree,
a ``DataValue`` and a ``Variant`` object per value, each field through its own decoder. That is
about two thirds of the collector's CPU per value (docs/benchmarks.md). :func:`decode_publish`
decodes the hot message, a Publish response whose notifications are all DataChangeNotifications
of scalar values, with one ``struct`` call per field group and a precompiled layout per
(DataValue mask, Variant type), into plain tuples.

What it decodes (OPC UA Part 4, 5.13.5; Part 6, 5.2):

- the ResponseHeader, with a Good ServiceResult, no diagnostics, no string table and no
  additional header;
- SubscriptionId, AvailableSequenceNumbers, MoreNotifications, the NotificationMessage
  (SequenceNumber, PublishTime, NotificationData), Results and empty DiagnosticInfos;
- DataChangeNotifications (ExtensionObject binary encoding id 811): each MonitoredItemNotification
  as a :data:`Value` tuple, its DataValue fields in the order of Part 6, 5.2.2.17 (see
  :mod:`collectors.opcua_binary`), and its Variant one of the scalar types in
  :data:`SCALAR_TYPES`.

Anything else returns None, and the caller hands the response to asyncua's own decoding: arrays
and matrices, any other Variant type (extension objects among them), any other notification
(StatusChangeNotification, EventNotificationList), a ServiceResult that is not Good, diagnostics,
a DataValue mask with bits the specification does not define, or bytes that end early.

The values are what asyncua gives for the same bytes (a property test holds the two equal):
integers, floats and booleans as Python's, String as ``str`` (asyncua's string encoding, undecodable
bytes escaped), ByteString as ``bytes``, DateTime as an aware UTC ``datetime`` (clamped as asyncua
clamps: ticks before 1601 give 1601-01-01, ticks from 9999-12-31 23:59:59 on give that time),
StatusCode in a Variant as ``ua.StatusCode``, the Null Variant as None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any

from asyncua import ua
from asyncua.ua import ua_binary

__all__ = ["SCALAR_TYPES", "PublishMessage", "Value", "decode_publish"]

Value = tuple[int, Any, int, datetime | None, int | None, datetime | None, int | None]
"""One MonitoredItemNotification: (ClientHandle, the Variant's value, the StatusCode's code,
SourceTimestamp, SourcePicoseconds, ServerTimestamp, ServerPicoseconds). A field the DataValue's
mask leaves out is None, except the code, which is 0 (Good), as in asyncua's ``DataValue``."""


@dataclass(slots=True)
class PublishMessage:
    """A Publish response decoded by :func:`decode_publish` (None fields: a null array)."""

    response_time: datetime
    request_handle: int
    subscription_id: int
    available_sequence_numbers: list[int] | None
    more_notifications: bool
    sequence_number: int
    publish_time: datetime
    data_changes: list[list[Value]] | None
    """One list per DataChangeNotification, its values in the order they came."""
    results: list[int] | None
    """The codes of the acknowledgements' results."""


# Variant built-in type ids (Part 6, 5.1.2) and their fixed-size struct codes.
_FIXED = {
    1: "?",  # Boolean (nonzero is true, as asyncua reads it)
    2: "b",  # SByte
    3: "B",  # Byte
    4: "h",  # Int16
    5: "H",  # UInt16
    6: "i",  # Int32
    7: "I",  # UInt32
    8: "q",  # Int64
    9: "Q",  # UInt64
    10: "f",  # Float
    11: "d",  # Double
    13: "q",  # DateTime
    19: "I",  # StatusCode
}
_NULL, _STRING, _DATETIME, _BYTESTRING, _STATUSCODE = 0, 12, 13, 15, 19
SCALAR_TYPES = frozenset((_NULL, *_FIXED, _STRING, _BYTESTRING))
"""The Variant type ids the fast path decodes (as scalars); any other goes to asyncua."""

# DataValue mask bits (Part 6, 5.2.2.17), in the order their fields follow the mask.
_VALUE, _STATUS, _SOURCE_TS, _SERVER_TS, _SOURCE_PS, _SERVER_PS = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_KNOWN_BITS = 0x3F
# The fields after the Variant, in their order on the wire, with their struct codes.
_REST = ((_STATUS, "I"), (_SOURCE_TS, "q"), (_SOURCE_PS, "H"), (_SERVER_TS, "q"), (_SERVER_PS, "H"))
_ARRAY_BITS = 0xC0  # of the Variant's encoding byte: array, and array dimensions

# The binary encodings' NodeIds as they come: four-byte form (0x01, namespace 0, UInt16 id) or
# numeric form (0x02, UInt16 namespace 0, UInt32 id).
_PUBLISH_RESPONSE = 829
_DATA_CHANGE = 811
_NULL_EXTENSION_OBJECT = b"\x00\x00\x00"  # a two-byte NodeId 0 and no body

# DateTime: 100 ns ticks since 1601-01-01 UTC (Part 6, 5.2.2.5); asyncua clamps at both ends.
_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_LATEST_TICKS = (_LATEST - _EPOCH) // timedelta(seconds=1) * 10_000_000

_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_HEADER = struct.Struct("<qIIBi")  # Timestamp, RequestHandle, ServiceResult, diagnostics mask, StringTable
_MESSAGE = struct.Struct("<?Iqi")  # MoreNotifications, SequenceNumber, PublishTime, NotificationData's length
_EXTENSION = struct.Struct("<Bi")  # an ExtensionObject's encoding byte and body length
_MISSING = (None, 0)  # appended to a value's fields: what an absent field reads as


class _Slow(Exception):
    """The message is not one the fast path decodes."""


def _time(ticks: int) -> datetime:
    if ticks >= _LATEST_TICKS:
        return _LATEST
    if ticks <= 0:
        return _EPOCH
    return _EPOCH + timedelta(microseconds=ticks // 10)


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one (mask, Variant type) pair of a MonitoredItemNotification is laid out."""

    head: Callable[[Any, int], tuple[Any, ...]]
    head_size: int
    tail: Callable[[Any, int], tuple[Any, ...]] | None  # after a String's or ByteString's bytes
    tail_size: int
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # (handle, value, code, src, src ps, srv, srv ps)
    vtype: int


def _layout(mask: int, vtype: int) -> _Layout:
    """The layout for ``mask`` and ``vtype``; raises _Slow for one the fast path does not take."""
    if mask & ~_KNOWN_BITS or vtype & _ARRAY_BITS or vtype not in SCALAR_TYPES:
        raise _Slow
    variable = bool(mask & _VALUE) and vtype in (_STRING, _BYTESTRING)
    head = "<IB"  # ClientHandle, mask
    fields = 2
    value = None  # the value's position among the fields
    if mask & _VALUE:
        # The Variant's type, then its value (a Null Variant has none; a string, its length first).
        head += "B" + ("i" if variable else _FIXED.get(vtype, ""))
        fields += 1 if vtype == _NULL else 2
        value = 4 if variable else (3 if vtype != _NULL else None)
        fields += variable  # a string's value goes between the head's fields and the tail's
    rest = "".join(code for bit, code in _REST if mask & bit)
    where: dict[int, int] = {}
    for bit, _code in _REST:
        if mask & bit:
            where[bit] = fields
            fields += 1
    absent, good = fields, fields + 1  # the positions of _MISSING's None and 0
    picks = itemgetter(
        0,
        absent if value is None else value,
        where.get(_STATUS, good),
        where.get(_SOURCE_TS, absent),
        where.get(_SOURCE_PS, absent),
        where.get(_SERVER_TS, absent),
        where.get(_SERVER_PS, absent),
    )
    head_struct = struct.Struct(head if variable else head + rest)
    tail_struct = struct.Struct("<" + rest) if variable else None
    return _Layout(
        head=head_struct.unpack_from,
        head_size=head_struct.size,
        tail=tail_struct.unpack_from if tail_struct else None,
        tail_size=tail_struct.size if tail_struct else 0,
        pick=picks,
        vtype=vtype if mask & _VALUE else _NULL,
    )


_LAYOUTS: dict[int, _Layout] = {}


def _values(
    buf: bytes, pos: int, count: int, times: dict[int, datetime], encoding: str
) -> tuple[list[Value], int]:
    """``count`` MonitoredItemNotifications from ``pos``: the values and the position after them."""
    values: list[Value] = []
    append = values.append
    layouts = _LAYOUTS
    for _ in range(count):
        mask = buf[pos + 4]
        vtype = buf[pos + 5] if mask & _VALUE else _NULL
        key = mask << 8 | vtype
        layout = layouts.get(key)
        if layout is None:
            layout = layouts[key] = _layout(mask, vtype)
        fields = layout.head(buf, pos)
        pos += layout.head_size
        if layout.tail is not None:
            length = fields[-1]
            if length < 0:
                text: Any = None
            else:
                if pos + length > len(buf):
                    raise _Slow
                text = buf[pos : pos + length]
                pos += length
                if layout.vtype == _STRING:
                    text = text.decode(encoding, "surrogateescape")
            fields = (*fields, text, *layout.tail(buf, pos))
            pos += layout.tail_size
        handle, value, code, source, source_ps, server, server_ps = layout.pick(fields + _MISSING)
        if source is not None:
            moment = times.get(source)
            if moment is None:
                moment = times[source] = _time(source)
            source = moment
        if server is not None:
            moment = times.get(server)
            if moment is None:
                moment = times[server] = _time(server)
            server = moment
        if layout.vtype == _DATETIME:
            value = _time(value)
        elif layout.vtype == _STATUSCODE:
            value = ua.StatusCode(value)
        append((handle, value, code, source, source_ps, server, server_ps))
    return values, pos


def _node_id(buf: bytes, pos: int) -> tuple[int, int]:
    """A namespace-0 numeric NodeId at ``pos`` (four-byte or numeric form): its id and the next position."""
    form = buf[pos]
    if form == 0x01 and buf[pos + 1] == 0:
        return buf[pos + 2] | buf[pos + 3] << 8, pos + 4
    if form == 0x02 and buf[pos + 1] == 0 and buf[pos + 2] == 0:
        return int.from_bytes(buf[pos + 3 : pos + 7], "little"), pos + 7
    raise _Slow


def _uint32s(buf: bytes, pos: int) -> tuple[list[int] | None, int]:
    (count,) = _I32(buf, pos)
    pos += 4
    if count < 0:
        return None, pos
    return list(struct.unpack_from(f"<{count}I", buf, pos)), pos + 4 * count


def _no_diagnostics(buf: bytes, pos: int) -> int:
    (count,) = _I32(buf, pos)
    if count > 0:
        raise _Slow
    return pos + 4


def decode_publish(buf: bytes, pos: int = 0) -> PublishMessage | None:
    """The Publish response in ``buf`` from ``pos`` (its TypeId first), or None for asyncua to decode."""
    try:
        return _decode(buf, pos)
    except (_Slow, struct.error, IndexError):
        return None


def _decode(buf: bytes, pos: int) -> PublishMessage:
    type_id, pos = _node_id(buf, pos)
    if type_id != _PUBLISH_RESPONSE:
        raise _Slow
    stamp, handle, service_result, diagnostics, strings = _HEADER.unpack_from(buf, pos)
    pos += _HEADER.size
    if service_result or diagnostics or strings > 0 or buf[pos : pos + 3] != _NULL_EXTENSION_OBJECT:
        raise _Slow
    (subscription_id,) = _U32(buf, pos + 3)
    available_numbers, pos = _uint32s(buf, pos + 3 + 4)
    more, sequence_number, publish_ticks, count = _MESSAGE.unpack_from(buf, pos)
    pos += _MESSAGE.size
    times: dict[int, datetime] = {}
    encoding = ua_binary.get_string_encoding()
    data_changes: list[list[Value]] | None = None if count < 0 else []
    for _ in range(count):
        type_id, pos = _node_id(buf, pos)
        body, length = _EXTENSION.unpack_from(buf, pos)
        pos += _EXTENSION.size
        if type_id != _DATA_CHANGE or body != 0x01:
            raise _Slow
        end = pos + length
        (items,) = _I32(buf, pos)
        values, pos = _values(buf, pos + 4, items, times, encoding)
        pos = _no_diagnostics(buf, pos)
        if pos != end:
            raise _Slow  # a body longer or shorter than it says: asyncua decides
        assert data_changes is not None
        data_changes.append(values)
    results, pos = _uint32s(buf, pos)
    _no_diagnostics(buf, pos)
    return PublishMessage(
        response_time=_time(stamp),
        request_handle=handle,
        subscription_id=subscription_id,
        available_sequence_numbers=available_numbers,
        more_notifications=more,
        sequence_number=sequence_number,
        publish_time=_time(publish_ticks),
        data_changes=data_changes,
        results=results,
    )
