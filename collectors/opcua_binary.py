"""A DataValue decoder in the order OPC UA Part 6 gives, installed into asyncua.

OPC UA Part 6, 5.2.2.17 encodes a DataValue as: an encoding mask, then each field the mask names,
in this order: Value, Status, SourceTimestamp, SourcePicoseconds, ServerTimestamp,
ServerPicoseconds. asyncua (2.1) decodes the fields in the order of its ``DataValue`` dataclass,
which puts ServerTimestamp before SourcePicoseconds. As long as a server sends no picoseconds the
two orders agree; when it does (node-opcua does for values stamped with its high-resolution
clock, among them every variable's initial value), asyncua reads the two picosecond bytes and six
bytes of the server timestamp as the server timestamp: a null time (1601), or a valid but wrong
one (years ahead), and a wrong SourcePicoseconds. The same case is open62541 issue #686, whose
published vector the unit tests decode.

:func:`install` replaces asyncua's decoder for ``DataValue`` (in notifications, Read results and
Variants alike) with :func:`decode_data_value`. It touches private functions of asyncua, which is
pinned below 3; the unit tests decode through asyncua's own entry point, so a change there fails
them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asyncua import ua
from asyncua.ua import ua_binary

__all__ = ["decode_data_value", "install"]

# The DataValue encoding mask (OPC UA Part 6, 5.2.2.17).
_VALUE = 0x01
_STATUS = 0x02
_SOURCE_TIMESTAMP = 0x04
_SERVER_TIMESTAMP = 0x08
_SOURCE_PICOSECONDS = 0x10
_SERVER_PICOSECONDS = 0x20


def decode_data_value(data: Any) -> ua.DataValue:
    """One binary DataValue from ``data`` (an asyncua ``Buffer`` or a binary stream), fields in spec order."""
    mask = ua_binary.Primitives.Byte.unpack(data)
    fields: dict[str, Any] = {}
    if mask & _VALUE:
        fields["Value"] = ua_binary.variant_from_binary(data)
    if mask & _STATUS:
        fields["StatusCode"] = ua_binary.from_binary(ua.StatusCode, data)
    if mask & _SOURCE_TIMESTAMP:
        fields["SourceTimestamp"] = ua_binary.Primitives.DateTime.unpack(data)
    if mask & _SOURCE_PICOSECONDS:
        fields["SourcePicoseconds"] = ua_binary.Primitives.UInt16.unpack(data)
    if mask & _SERVER_TIMESTAMP:
        fields["ServerTimestamp"] = ua_binary.Primitives.DateTime.unpack(data)
    if mask & _SERVER_PICOSECONDS:
        fields["ServerPicoseconds"] = ua_binary.Primitives.UInt16.unpack(data)
    return ua.DataValue(**fields)


def install() -> None:
    """Make asyncua decode every DataValue with :func:`decode_data_value`. Idempotent."""
    if ua_binary._create_dataclass_deserializer(ua.DataValue) is decode_data_value:
        return
    original: Callable[[Any], Callable[[Any], Any]] = ua_binary._create_dataclass_deserializer

    @functools.cache
    def deserializer(objtype: Any) -> Callable[[Any], Any]:
        if objtype is ua.DataValue or objtype == "DataValue":
            return decode_data_value
        return original(objtype)

    ua_binary._create_dataclass_deserializer = deserializer
    # The decoders asyncua built before (a Read response's, a notification's) hold the old
    # DataValue decoder: drop them so they are built again through the new one.
    for name in dir(ua_binary):
        factory = getattr(ua_binary, name)
        if "deserializer" in name and hasattr(factory, "cache_clear") and factory is not deserializer:
            factory.cache_clear()
