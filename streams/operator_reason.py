"""An operator's reason for a past stop: the request, checked, and the code it stands for.

Pure. An operator names the reason of a stop after the fact (``plantstream reason``, or ``POST
/reason`` to the embedded pipeline, docs/live.md). The request is checked here, the stop is
found by the engine (:meth:`streams.engine.Engine.stop_at`), and the reason then flows as data:
a reading of the reserved signal :data:`streams.stops.OPERATOR_REASON` stamped at the stop's
start, which the engine's late-data path applies like any late reading, so the stop is written
again with ``revision`` + 1 (ISO 22400-2 leaves the reason of a stop to the plant; the first
cause is the default, docs/references.md [ISO22400-2]).

Every refusal is a :class:`ReasonRefused` with a short ``reason`` (counted by the runtime) and a
message that names the field and what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from plantstream.records import EPOCH
from streams.reasons import NO_CODES, ReasonTree, code_text

__all__ = ["MAX_BODY", "MAX_TEXT", "OperatorReason", "ReasonRefused", "code_for", "parse_request"]

MAX_BODY = 4096
"""The largest request body taken, in bytes (a request is about 100)."""
MAX_TEXT = 64
"""The longest machine id or reason text taken (ids and reason names are at most 64 characters)."""
_FIELDS = ("machine", "at", "reason")
_ONE_US = timedelta(microseconds=1)


class ReasonRefused(ValueError):
    """An operator's reason that cannot be applied; ``reason`` is its short name, for counters."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class OperatorReason:
    """A checked request: the machine, a time inside the stop (µs since the epoch), the reason given."""

    machine: str
    at: int
    given: str


def parse_request(body: bytes) -> OperatorReason:
    """Check a request body: a JSON object ``{"machine": id, "at": ISO 8601 time, "reason": code or name}``.

    ``at`` needs its offset (``Z`` or ``+07:00``): a time without one would depend on where the
    command ran. ``reason`` is a code (``12``) or a reason's name (``"film break"``).

    Raises:
        ReasonRefused: ``too_large``, ``bad_json`` or ``bad_field``, naming the field.
    """
    if len(body) > MAX_BODY:
        raise ReasonRefused("too_large", f"the request has {len(body)} bytes (at most {MAX_BODY})")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReasonRefused("bad_json", f"the request is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReasonRefused("bad_json", f"the request must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ReasonRefused(
            "bad_field", f"unknown field {unknown[0][:MAX_TEXT]!r} (fields: {', '.join(_FIELDS)})"
        )
    missing = [name for name in _FIELDS if name not in data]
    if missing:
        raise ReasonRefused("bad_field", f"{missing[0]}: missing (fields: {', '.join(_FIELDS)})")
    machine = data["machine"]
    if not isinstance(machine, str) or not 0 < len(machine) <= MAX_TEXT:
        raise ReasonRefused("bad_field", f"machine: must be a machine id (text of 1-{MAX_TEXT} characters)")
    return OperatorReason(machine, _time(data["at"]), _given(data["reason"]))


def _time(value: Any) -> int:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ReasonRefused("bad_field", "at: must be an ISO 8601 time such as 2026-03-02T08:01:30Z")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ReasonRefused(
            "bad_field", f"at: {value!r} is not an ISO 8601 time such as 2026-03-02T08:01:30Z"
        ) from None
    if at.tzinfo is None:
        raise ReasonRefused("bad_field", f"at: {value!r} has no offset (add Z for UTC, or +07:00)")
    try:
        return (at - EPOCH) // _ONE_US
    except OverflowError:  # pragma: no cover - fromisoformat's years 1-9999 always fit
        raise ReasonRefused("bad_field", f"at: {value!r} is out of range") from None


def _given(value: Any) -> str:
    # A bool is an int to Python, and a float code is the PLC's business, not an operator's.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ReasonRefused("bad_field", "reason: must be a code (a whole number or text) or a reason's name")
    text = code_text(value)
    if not text or len(text) > MAX_TEXT:
        raise ReasonRefused("bad_field", f"reason: must be 1-{MAX_TEXT} characters")
    return text


def code_for(tree: ReasonTree, machine_type: str | None, given: str) -> str:
    """The code ``given`` stands for on a machine of ``machine_type``.

    A code of the tree stands for itself; a reason's name (case ignored) for its code.

    The machine type's own codes come first, as in :meth:`ReasonTree.resolve`, so a shared code
    the type gives another meaning names that meaning on this machine.

    Raises:
        ReasonRefused: ``unknown_reason``, with the reasons this machine can be given.
    """
    own = tree.by_type.get(machine_type, {}) if machine_type is not None else {}
    effective = {**tree.codes, **own}
    if given in effective and given not in NO_CODES:
        return given
    wanted = given.casefold()
    for code, (name, _) in effective.items():
        if name.casefold() == wanted:
            return code
    names = sorted({name for name, _ in effective.values()})
    offer = ", ".join(names) if names else "none: the plant file has no reasons tree"
    raise ReasonRefused(
        "unknown_reason", f"reason: {given!r} is neither a code nor a reason of the tree (reasons: {offer})"
    )
