"""The number types of the plant file: finite, never a boolean, integers bounded.

YAML reads ``.inf``, ``.nan`` and ``true`` as values that Python happily treats as numbers
(``True + 1 == 2``); a cycle time of infinity or a micro-stop limit of ``true`` would reach the
calculators as nonsense instead of an error. Every number of the schema uses one of these types,
so the rule is the same everywhere and each refusal names the key and line.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AllowInfNan, BeforeValidator, Field

__all__ = ["INTEGER_MAX", "Integer", "Number", "refuse_booleans"]

INTEGER_MAX = 2**64
"""The largest integer a plant file may hold: the modulus of a 64-bit counter register."""


def refuse_booleans(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number is meant (Python counts ``True`` as 1)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _refuse_non_finite(value: Any) -> Any:
    value = refuse_booleans(value)
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise ValueError("must be a finite number (this integer is beyond 1.8e308)") from None
    # Strings too: a ${VAR} reference arrives as text and may say "inf".
    elif isinstance(value, float | str):
        try:
            number = float(value)
        except ValueError:
            return value  # not a number at all: the float validator says so
        if not math.isfinite(number):
            raise ValueError("must be a finite number (.inf and .nan are not accepted)")
    return value


Number = Annotated[float, BeforeValidator(_refuse_non_finite), AllowInfNan(False)]
"""A finite number: an integer or a decimal, never ``.inf``, ``.nan`` or a boolean."""

Integer = Annotated[int, BeforeValidator(refuse_booleans), Field(ge=-INTEGER_MAX, le=INTEGER_MAX)]
"""An integer of at most :data:`INTEGER_MAX` in size, never a boolean."""
