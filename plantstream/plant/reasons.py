"""The plant file's reason tree: stop reason codes -> reason -> group -> loss category.

Defined once per plant (``reasons``), shared by every machine; a machine ``type`` may give codes
a meaning of its own (``machine_types``). The calculators resolve it (:mod:`streams.reasons`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["LossCategory", "ReasonCode", "ReasonTree", "code_key"]

LossCategory = Literal["breakdown", "setup", "small_stop"]
"""The stop losses among Nakajima's six big losses (docs/references.md [WILLMOTT])."""
Text = Annotated[str, Field(min_length=1, max_length=64)]
"""A reason or group name: it becomes an InfluxDB tag value, so it is bounded."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def code_key(code: Any) -> str:
    """A code's text form, the one lookups use: ``12``, ``12.0`` and ``"12"`` are ``"12"``."""
    if isinstance(code, float) and code.is_integer() and abs(code) < 2**53:
        return str(int(code))
    return str(code).strip()


def _codes_as_text(value: Any) -> Any:
    # PLC codes arrive as numbers or text; keys are compared as their text form.
    if not isinstance(value, dict):
        return value
    codes: dict[str, Any] = {}
    for key, entry in value.items():
        text = code_key(key)
        if text in codes:
            raise ValueError(f"code {key!r} is given twice (codes are compared as text: {text!r})")
        if text in ("", "0"):
            raise ValueError(f"code {key!r} means 'no reason' and cannot be given one")
        codes[text] = entry
    return codes


class ReasonCode(_Strict):
    """What one code means: the reason's name and its group."""

    reason: Text
    group: Text


class ReasonTree(_Strict):
    """The plant's reason tree: groups with their loss category, shared codes, per-type codes."""

    groups: dict[Text, LossCategory] = Field(
        default_factory=dict, description="group -> loss category (breakdown, setup or small_stop)"
    )
    codes: dict[str, ReasonCode] = Field(default_factory=dict, description="code -> reason, all machines")
    machine_types: dict[Text, dict[str, ReasonCode]] = Field(
        default_factory=dict, description="machine type -> its own codes, looked up first"
    )

    @field_validator("codes", mode="before")
    @classmethod
    def _shared_codes(cls, value: Any) -> Any:
        return _codes_as_text(value)

    @field_validator("machine_types", mode="before")
    @classmethod
    def _type_codes(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: _codes_as_text(codes) for name, codes in value.items()}
        return value

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Codes whose group is not defined, as (key path, message) pairs."""
        known = ", ".join(sorted(self.groups)) or "none are defined"
        out: list[tuple[tuple[str | int, ...], str]] = []
        entries: list[tuple[tuple[str | int, ...], ReasonCode]]
        entries = [(("reasons", "codes", code), entry) for code, entry in self.codes.items()]
        for name, codes in self.machine_types.items():
            entries += [(("reasons", "machine_types", name, code), e) for code, e in codes.items()]
        for path, entry in entries:
            if entry.group not in self.groups:
                out.append(((*path, "group"), f"unknown group {entry.group!r} (groups: {known})"))
        return out
