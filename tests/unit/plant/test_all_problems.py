"""`check` lists every problem it can find in one run, not only those of the first stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantstream.plant import PlantError, parse_plant
from runtimes.plant import load_and_resolve

REPO = Path(__file__).resolve().parents[3]
DEMO = (REPO / "examples" / "demo-line.yaml").read_text(encoding="utf-8")


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def edited(text: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_an_unreadable_value_and_a_schema_error_are_reported_together() -> None:
    # The unknown tag used to stop the loader before validation; now both come out.
    text = edited(
        DEMO,
        ("  window_s: 60", "  window_s: !custom 60"),
        ("  micro_stop_max_s: 30", "  micro_stop_max_s: -1"),
    )
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    assert [(i.line, i.path[-1]) for i in info.value.issues] == [
        (line_of(text, "micro_stop_max_s: -1"), "micro_stop_max_s"),
        (line_of(text, "window_s: !custom"), "window_s"),
    ]
    # The value refused by the reader is not reported a second time by validation.
    assert "cannot read this value" in info.value.issues[1].message


def test_a_missing_variable_is_reported_once() -> None:
    text = edited(DEMO, ("${OPCUA_ENDPOINT:-opc.tcp://127.0.0.1:4840/}", "${NO_SUCH_ENDPOINT}"))
    with pytest.raises(PlantError) as info:
        parse_plant(text, environ={})
    [issue] = info.value.issues
    assert issue.message.startswith("environment variable NO_SUCH_ENDPOINT is not set")


def test_reference_data_problems_come_with_mapping_problems(tmp_path: Path) -> None:
    # The grid factor table has no Viet Nam row for 1999 (a resolve-stage problem), and one tag
    # names a machine that does not exist (a mapping problem): one run reports both.
    text = edited(
        DEMO,
        ("machine: oven1, signal: gas_kg", "machine: oven2, signal: gas_kg"),
        ("year: 2023", "year: 1999"),
    )
    path = tmp_path / "plant.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlantError) as info:
        load_and_resolve(path)
    lines = [i.line for i in info.value.issues]
    assert line_of(text, "machine: oven2") in lines
    assert any(i.path[-1] in ("year", "grid") for i in info.value.issues), info.value
    assert len(info.value.issues) == 2, info.value


def test_a_refused_key_does_not_hide_the_other_problems_of_its_mapping() -> None:
    # The complex key is refused where the mapping is; `sites` is still reported as missing.
    with pytest.raises(PlantError) as info:
        parse_plant("? [a, b]\n: c\nproduction: {window_s: 0}\n")
    assert sorted(i.message for i in info.value.issues) == [
        "mapping keys must be plain scalars",
        "must be > 0",
        "required key is missing",
    ]
