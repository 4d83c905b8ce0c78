"""Fuzzing the plant loader: whatever the bytes, a valid plant or a located PlantError, nothing else.

Every case is small (the demo plant is about 5 KB, the generated ones smaller), so each is bounded by
the size and nesting limits rather than by a timer; hypothesis runs without a deadline because the
machine may be shared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantstream.plant import LoadedPlant, PlantError, PlantIssue, load_plant, parse_plant

REPO = Path(__file__).resolve().parents[3]
DEMO = (REPO / "examples" / "demo-line.yaml").read_text(encoding="utf-8")
DEMO_LINES = DEMO.splitlines(keepends=True)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HOSTILE_VALUES = [
    ".inf",
    "-.inf",
    ".nan",
    "true",
    "false",
    "null",
    "~",
    "99999999999999999999999",
    "-99999999999999999999999",
    "1" * 5_000,  # more digits than Python converts to an int by default
    "1.0e+999",
    "0x7fffffffffffffffffff",
    "&a 1",
    "*a",
    "!!python/object/apply:os.system ['true']",
    "!custom x",
    "[1, [2, [3]]]",
    "{a: {b: {c: d}}}",
    "'unterminated",
    '"\\x00"',
    "? [complex, key]",
    "|\n  block text",
    "${UNSET_VARIABLE_FOR_FUZZ}",
    "2026-02-30",
    "25:61",
    "\x07",
    "\u202e",
]


def issues_of(load: Callable[[], LoadedPlant]) -> list[PlantIssue] | None:
    """The issues ``load`` raises, or None when it returns a plant; any other exception escapes."""
    try:
        load()
    except PlantError as exc:
        return exc.issues
    return None


def assert_located(text: str) -> None:
    """Parse ``text``: a model, or a PlantError whose every issue has a line and a message."""
    issues = issues_of(lambda: parse_plant(text, environ={}))
    if issues is None:
        return
    assert issues
    for issue in issues:
        assert issue.message
        assert issue.line >= 1 or "larger than" in issue.message, str(issue)
        assert str(issue).startswith(f"plant.yaml:{issue.line} ")


@st.composite
def mutated_demo(draw: st.DrawFn) -> str:
    """The demo plant with a few random edits: characters, lines, values."""
    lines = list(DEMO_LINES)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["value", "char", "delete", "duplicate", "insert", "indent"]))
        line = lines[index]
        if kind == "value" and ":" in line:
            key = line.split(":", 1)[0]
            lines[index] = f"{key}: {draw(st.sampled_from(HOSTILE_VALUES))}\n"
        elif kind == "char" and line:
            at = draw(st.integers(0, len(line) - 1))
            lines[index] = line[:at] + draw(st.characters(codec="utf-8")) + line[at + 1 :]
        elif kind == "delete":
            del lines[index]
        elif kind == "duplicate":
            lines.insert(index, line)
        elif kind == "insert":
            lines.insert(index, f"{draw(st.sampled_from(HOSTILE_VALUES))}\n")
        elif kind == "indent":
            lines[index] = " " * draw(st.integers(1, 6)) + line
        if not lines:
            break
    return "".join(lines)


@FUZZ
@given(mutated_demo())
def test_random_mutations_of_the_demo_plant(text: str) -> None:
    assert_located(text)


@FUZZ
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=2_000))
def test_random_text(text: str) -> None:
    assert_located(text)


@FUZZ
@given(st.binary(max_size=2_000))
def test_random_bytes_from_a_file(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "plant.yaml"
    path.write_bytes(data)
    issues = issues_of(lambda: load_plant(path, environ={})) or []
    assert all(str(issue).startswith(f"plant.yaml:{issue.line} ") for issue in issues)


@FUZZ
@given(
    st.lists(st.sampled_from(["[", "{a: ", "- ", "  - k:\n", "b: "]), min_size=60, max_size=3_000),
    st.sampled_from(["", "1", "]", "}"]),
)
def test_deep_nesting_of_any_shape(openers: list[str], tail: str) -> None:
    text = "sites: " + "".join(openers) + tail + "\n"
    assert_located(text)


@FUZZ
@given(st.lists(st.sampled_from(HOSTILE_VALUES), min_size=1, max_size=30))
def test_hostile_values_in_every_number_of_a_machine(values: list[str]) -> None:
    keys = ["ideal_cycle_s", "mass_kg_per_piece", "rated_power_kw", "micro_stop_max_s"]
    text = DEMO
    for key, value in zip(keys, values, strict=False):
        text = text.replace(f"{key}: ", f"{key}: {value} #", 1)
    assert_located(text)
