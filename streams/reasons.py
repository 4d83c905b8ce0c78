"""The reason tree: a PLC fault or reason code -> reason -> group -> loss category.

Pure. A plant defines its tree once (``reasons`` in the plant file, docs/plant-file.md); codes are
shared by every machine, and a machine type may give a code its own meaning (a packer's code 12
is a film break, a press's code 12 a die change). Lookup is by the code's text form, so the
integer 12, the float 12.0 and the string ``"12"`` from a PLC are the same code.

- **Unknown codes are never lost.** A code the tree does not know is its own reason
  (``code 4711``) in the group ``unknown``, and its stops still count in full; the loss category
  then comes from the state the machine was in (see :func:`default_loss`).
- **No code.** ``0`` and the empty string mean "no reason" (PLCs clear the tag that way):
  such a stop gets the reason ``unassigned``.

The loss categories are three of Nakajima's six big losses, the ones a stop can be
(docs/references.md [WILLMOTT] pp. 100-101): ``breakdown``, ``setup`` (setup and adjustments)
and ``small_stop`` (idling and minor stoppages). Speed and quality losses are not stops and come
from the counters (:mod:`streams.losses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LOSS_CATEGORIES",
    "NO_CODES",
    "UNASSIGNED",
    "Reason",
    "ReasonTree",
    "code_text",
    "default_loss",
]

LOSS_CATEGORIES = ("breakdown", "setup", "small_stop")
"""The loss categories a stop reason can have (the stop losses among the six big losses)."""
NO_CODES = frozenset({"", "0"})
"""Code values that mean "no reason active"."""
MAX_CODE_TEXT = 64
"""A code longer than this is cut in the reason name, so a garbage string stays a bounded tag."""


@dataclass(frozen=True, slots=True)
class Reason:
    """One resolved reason: its name, its group, and the loss category its stops count to.

    ``loss`` is ``None`` for an unknown code or a stop without a code: the stop's state category
    decides then (:func:`default_loss`).
    """

    code: str | None
    name: str
    group: str
    loss: str | None


UNASSIGNED = Reason(None, "unassigned", "unassigned", None)
"""The reason of a stop no code was seen for."""

_STATE_LOSS = {"down": "breakdown", "off": "breakdown", "setup": "setup", "idle": "small_stop"}


def default_loss(state_category: str) -> str:
    """The loss category of a stop whose reason does not name one, from its state category.

    ``down`` and ``off`` (an unplanned stop inside planned busy time) are breakdowns, ``setup``
    is setup and adjustments, ``idle`` is idling (a small stop) [WILLMOTT pp. 100-101].
    """
    return _STATE_LOSS.get(state_category, "breakdown")


def code_text(value: Any) -> str:
    """The text form a code is looked up by: ``12``, ``12.0`` and ``"12"`` are all ``"12"``."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value).strip()


@dataclass(frozen=True)
class ReasonTree:
    """Codes -> reasons, shared by all machines, with optional overrides per machine type.

    ``codes`` maps a code's text form to ``(reason, group)``; ``groups`` maps a group to its loss
    category; ``by_type`` maps a machine type to codes of its own, looked up before the shared
    ones.
    """

    codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    by_type: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)

    def resolve(self, code: Any, machine_type: str | None = None) -> Reason:
        """The reason of ``code`` for a machine of ``machine_type``; never fails.

        Example: with ``codes {"12": ("film break", "material")}`` and ``groups {"material":
        "small_stop"}``, ``resolve(12.0)`` is ``Reason("12", "film break", "material",
        "small_stop")`` and ``resolve(4711)`` is ``Reason("4711", "code 4711", "unknown", None)``.
        """
        if code is None:
            return UNASSIGNED
        text = code_text(code)
        if text in NO_CODES:
            return UNASSIGNED
        entry = None
        if machine_type is not None:
            entry = self.by_type.get(machine_type, {}).get(text)
        if entry is None:
            entry = self.codes.get(text)
        if entry is None:
            return Reason(text, f"code {text[:MAX_CODE_TEXT]}", "unknown", None)
        name, group = entry
        return Reason(text, name, group, self.groups.get(group))
