"""The `files:` section: the points files' bounds, their defaults, and errors that name line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantstream.plant import PlantError, parse_plant

REPO = Path(__file__).resolve().parents[3]
MINIMAL = (REPO / "examples" / "minimal.yaml").read_text()
LINE = MINIMAL.count("\n") + 2  # the line of the first key under `files:` below


def errors(text: str) -> list[str]:
    with pytest.raises(PlantError) as caught:
        parse_plant(text)
    return [str(issue) for issue in caught.value.issues]


def test_by_default_every_point_is_kept_for_ever() -> None:
    files = parse_plant(MINIMAL).model.files
    assert (files.readings, files.keep_days) == (True, None)


def test_the_settings_are_read() -> None:
    files = parse_plant(MINIMAL + "files:\n  readings: false\n  keep_days: 14\n").model.files
    assert (files.readings, files.keep_days) == (False, 14)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("keep_days: 0", "files.keep_days: must be >= 1"),
        ("keep_days: -3", "files.keep_days: must be >= 1"),
        ("keep_days: 36501", "files.keep_days: must be <= 36500"),
        ("keep_days: 1.5", "files.keep_days:"),
        ("keep_days: true", "files.keep_days:"),
        ("keep_days: ten", "files.keep_days:"),
        ("readings: maybe", "files.readings:"),
        ("keepdays: 3", "files.keepdays:"),
    ],
)
def test_garbage_is_refused_naming_the_line_and_key(setting: str, message: str) -> None:
    [problem] = errors(MINIMAL + f"files:\n  {setting}\n")
    assert f":{LINE} " in problem
    assert message in problem
