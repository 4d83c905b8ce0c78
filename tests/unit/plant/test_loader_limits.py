"""Hostile plant files: size, binary, anchors, nesting, and numbers that are not numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantstream.plant import PlantError, PlantIssue, load_plant, parse_plant
from plantstream.plant.loader import MAX_ISSUES
from plantstream.plant.numbers import INTEGER_MAX
from plantstream.plant.reader import MAX_BYTES, MAX_DEPTH, MAX_NODES
from streams.config import build_spec

REPO = Path(__file__).resolve().parents[3]
MINIMAL = (REPO / "examples" / "minimal.yaml").read_text(encoding="utf-8")
M = "sites[0].lines[0].machines[0]"


def issues_of(text: str) -> list[PlantIssue]:
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    return info.value.issues


def edited(old: str, new: str) -> str:
    assert MINIMAL.count(old) == 1, old
    return MINIMAL.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


# --- size, bytes -------------------------------------------------------------------------------------


def test_a_file_over_the_size_cap_is_refused_without_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    # A comment line repeated to one byte over 4 MiB: valid YAML, refused for its size alone.
    big.write_bytes(b"#" * MAX_BYTES + b"\n")
    with pytest.raises(PlantError) as info:
        load_plant(big)
    [issue] = info.value.issues
    assert str(issue) == f"big.yaml:0 (file): the file is larger than {MAX_BYTES} bytes (4 MiB)"


def test_text_over_the_size_cap_is_refused() -> None:
    [issue] = issues_of("#" * (MAX_BYTES + 1))
    assert "larger than 4194304 bytes" in issue.message


def test_a_nul_byte_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"sites:\n  - id: a\x00b\n")
    with pytest.raises(PlantError) as info:
        load_plant(path)
    # "  - id: a" is 9 bytes, so the NUL is the 10th of line 2.
    assert (
        str(info.value)
        == "bin.yaml:2 (file): a NUL byte: this is binary data, not a YAML text file (column 10)"
    )


def test_a_nul_character_in_text_is_refused_with_its_line() -> None:
    [issue] = issues_of("sites:\n\n  - id: a\x00\n")
    assert (issue.line, issue.message) == (3, "a NUL character (column 10): this is not a YAML text")


def test_a_lone_surrogate_in_text_is_refused_with_its_line() -> None:
    # Only text handed to parse_plant can hold one: a file is decoded as strict UTF-8.
    [issue] = issues_of("sites:\n  - id: \ud800\n")
    assert (issue.line, issue.message) == (2, "a character that is not Unicode text (a lone surrogate)")


def test_a_non_utf8_byte_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("sites:\n  - id: café\n".encode("latin-1"))
    with pytest.raises(PlantError) as info:
        load_plant(path)
    # "  - id: caf" is 11 bytes; é in Latin-1 is the single byte 0xe9.
    assert str(info.value) == "latin1.yaml:2 (file): byte 0xe9 is not UTF-8 text (column 12)"


# --- anchors, aliases, depth ------------------------------------------------------------------------

BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)


def test_billion_laughs_is_refused_before_any_expansion() -> None:
    # 9 levels of 9 aliases each would expand to 9**9 = 387,420,489 strings.
    issues = issues_of(BILLION_LAUGHS)
    assert str(issues[0]) == (
        "plant.yaml:1 (file): YAML anchor &a: anchors and aliases are not accepted in a plant file; "
        "write the value out"
    )
    assert "YAML alias *a (used 9 times)" in issues[2].message
    # 9 anchors and 8 aliases: 10 are reported one by one, the other 7 in one line.
    assert len(issues) == 11
    assert issues[-1].message == "7 more anchor(s) or alias(es)"


def test_one_alias_in_a_valid_plant_is_refused_at_its_line() -> None:
    text = edited("    calendar: day\n", "    calendar: &cal day\n")
    [issue] = issues_of(text)
    assert issue.line == line_of(text, "&cal")
    assert issue.message.startswith("YAML anchor &cal:")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_deep_flow_nesting_is_refused_without_recursion_error(depth: int) -> None:
    [issue] = issues_of("sites: " + "[" * depth + "]" * depth + "\n")
    assert issue.line == 1
    # libyaml stops at its own limit (1000) before the first event; both messages name nesting.
    assert "nest" in issue.message


def test_deep_block_nesting_is_refused_at_the_first_level_too_deep() -> None:
    text = "".join(" " * level + "k:\n" for level in range(2_000))
    [issue] = issues_of(text)
    # Line n opens mapping n (the document's mapping is the first), so line 65 opens the 65th.
    assert str(issue) == f"plant.yaml:{MAX_DEPTH + 1} (file): nested deeper than {MAX_DEPTH} levels"


def test_nesting_at_the_limit_is_read() -> None:
    # 64 levels: the document mapping, then 63 nested lists inside `sites`; the schema refuses
    # the content, but the reader does not.
    issues = issues_of("sites: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    assert all("nested" not in i.message for i in issues)


# --- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", ".NaN", "1.0e+999"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    text = edited("ideal_cycle_s: 1.0", f"ideal_cycle_s: {value}")
    [issue] = issues_of(text)
    assert str(issue).startswith(f"plant.yaml:{line_of(text, 'ideal_cycle_s')} {M}.ideal_cycle_s: ")
    assert issue.message == "must be a finite number (.inf and .nan are not accepted)"


def test_an_integer_beyond_the_float_range_is_refused_as_not_finite() -> None:
    # 10**400 is an exact integer, but no float (at most about 1.8e308) can hold it.
    text = edited("ideal_cycle_s: 1.0", f"ideal_cycle_s: {10**400}")
    [issue] = issues_of(text)
    assert issue.message == "must be a finite number (this integer is beyond 1.8e308)"


def test_a_non_finite_number_from_the_environment_is_refused() -> None:
    text = edited("ideal_cycle_s: 1.0", "ideal_cycle_s: ${CYCLE}")
    with pytest.raises(PlantError) as info:
        parse_plant(text, environ={"CYCLE": "inf"})
    [issue] = info.value.issues
    assert issue.message.startswith("must be a finite number")
    # A number written as text (as every ${VAR} is) is still a number.
    assert (
        parse_plant(text, environ={"CYCLE": "2.5"}).model.sites[0].lines[0].machines[0].ideal_cycle_s == 2.5
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("ideal_cycle_s: 1.0", "ideal_cycle_s: true", f"{M}.ideal_cycle_s"),
        ("  micro_stop_max_s: 0", "  micro_stop_max_s: true", "production.micro_stop_max_s"),
        ("  micro_stop_max_s: 0", "  micro_stop_max_s: 0\n  window_s: true", "production.window_s"),
    ],
)
def test_booleans_are_not_numbers(old: str, new: str, key: str) -> None:
    text = edited(old, new)
    [issue] = issues_of(text)
    line = line_of(text, new.strip().splitlines()[-1])
    assert str(issue) == f"plant.yaml:{line} {key}: must be a number, not true or false"


def test_a_huge_integer_is_refused_naming_the_maximum() -> None:
    text = edited(
        "  micro_stop_max_s: 0", "  micro_stop_max_s: 0\n  correction_history_max: 99999999999999999999999"
    )
    [issue] = issues_of(text)
    assert issue.message == f"must be <= {INTEGER_MAX}"
    assert INTEGER_MAX == 18_446_744_073_709_551_616  # 2**64, the modulus of a 64-bit counter


def test_queue_size_has_a_memory_bound() -> None:
    text = (REPO / "examples" / "demo-line.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "    watchdog_s: 30\n", "    watchdog_s: 30\n    queue: {size: 99999999999999999999999}\n"
    )
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    [issue] = info.value.issues
    assert str(issue).endswith("sources[0].queue.size: must be <= 10000000")


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ("{max_span_s: 0}", "history.max_span_s: must be > 0"),
        ("{max_span_s: 604801}", "history.max_span_s: must be <= 604800"),
        ("{max_values_per_s: -5}", "history.max_values_per_s: must be > 0"),
        ("{values_per_request: 0}", "history.values_per_request: must be > 0"),
        ("{max_values_per_node: 99999999999}", "history.max_values_per_node: must be <= 10000000"),
        ("{max_values_per_session: 0}", "history.max_values_per_session: must be > 0"),
        ("{enabled: maybe}", "history.enabled: must be a valid boolean"),
        ("{max_span: 60}", "history.max_span: unknown key"),
    ],
)
def test_a_wrong_history_setting_is_refused_naming_it(history: str, message: str) -> None:
    text = (REPO / "examples" / "demo-line.yaml").read_text(encoding="utf-8")
    text = text.replace("    watchdog_s: 30\n", f"    watchdog_s: 30\n    history: {history}\n")
    with pytest.raises(PlantError) as info:
        parse_plant(text)
    [issue] = info.value.issues
    assert f"sources[0].{message}" in str(issue)


def test_backfill_asked_for_without_source_time_is_refused() -> None:
    text = (REPO / "examples" / "demo-line.yaml").read_text(encoding="utf-8")
    base = text.replace("    timestamps: source\n", "    timestamps: server\n")
    assert base != text
    parse_plant(base)  # the default (enabled) just does not apply: no history under server time
    with pytest.raises(PlantError) as info:
        parse_plant(
            base.replace("    timestamps: server\n", "    timestamps: server\n    history: {enabled: true}\n")
        )
    [issue] = info.value.issues
    assert "the backfill needs timestamps: source (this source has server)" in str(issue)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("repeat_unchanged_s: 0", "repeat_unchanged_s: must be > 0"),
        ("repeat_unchanged_s: -60", "repeat_unchanged_s: must be > 0"),
        ("repeat_unchanged_s: 86401", "repeat_unchanged_s: must be <= 86400"),
        ("repeat_unchanged_s: soon", "repeat_unchanged_s: must be a valid number"),
        ("repeat_unchanged: 60", "repeat_unchanged: unknown key"),
        # Two publishing intervals of the demo's 500 ms are 1 s.
        (
            "repeat_unchanged_s: 0.9",
            "repeat_unchanged_s (0.9) must be at least two publishing intervals (1 s)",
        ),
        ("mode: poll\n        repeat_unchanged_s: 60", "the setting is for subscriptions (mode: subscribe)"),
    ],
)
def test_a_wrong_repeat_setting_is_refused_naming_it(setting: str, message: str) -> None:
    text = (REPO / "examples" / "demo-line.yaml").read_text(encoding="utf-8")
    edited_text = text.replace(
        "      - publishing_interval_ms: 500\n", f"      - publishing_interval_ms: 500\n        {setting}\n"
    )
    assert edited_text != text
    with pytest.raises(PlantError) as info:
        parse_plant(edited_text)
    [issue] = info.value.issues
    assert "sources[0].groups[0]" in str(issue)
    assert message in str(issue)


def test_repeats_asked_for_without_source_time_are_refused() -> None:
    text = (REPO / "examples" / "demo-line.yaml").read_text(encoding="utf-8")
    base = text.replace("    timestamps: source\n", "    timestamps: server\n")
    assert parse_plant(base).model.sources[0].groups[0].repeat_unchanged_s == 60  # the default, unused
    with pytest.raises(PlantError) as info:
        parse_plant(
            base.replace(
                "      - publishing_interval_ms: 500\n",
                "      - publishing_interval_ms: 500\n        repeat_unchanged_s: 30\n",
            )
        )
    [issue] = info.value.issues
    assert "groups[0].repeat_unchanged_s: a repeat is dated on the source's clock" in str(issue)
    assert "(this source has server)" in str(issue)


def test_mqtt_qos_is_not_a_boolean() -> None:
    text = (REPO / "examples" / "mqtt-meters.yaml").read_text(encoding="utf-8").replace("qos: 1", "qos: true")
    with pytest.raises(PlantError) as info:
        parse_plant(text, environ={"MQTT_URL": "mqtt://127.0.0.1:1883"})
    [issue] = info.value.issues
    assert str(issue).endswith("sources[0].subscriptions[0].qos: must be a number, not true or false")


# --- bounded cost of a huge file ----------------------------------------------------------------------


def test_more_values_than_a_plant_file_needs_are_refused_at_the_first_one_too_many() -> None:
    # One value per line: the document's mapping, the key `sites`, the list, then one scalar per
    # line from line 2, so value number MAX_NODES + 1 is scalar MAX_NODES - 2, on line MAX_NODES - 1.
    text = "sites:\n" + "- 1\n" * MAX_NODES
    [issue] = issues_of(text)
    assert (
        str(issue)
        == f"plant.yaml:{MAX_NODES - 1} (file): more than {MAX_NODES} values: too many for a plant file"
    )


def test_a_flood_of_errors_lists_the_first_ones_and_counts_the_rest() -> None:
    # 1,000 sites that are numbers: 1,000 errors, of which the first MAX_ISSUES are listed.
    with pytest.raises(PlantError) as info:
        parse_plant("sites:\n" + "- 1\n" * 1_000)
    assert len(info.value.issues) == MAX_ISSUES
    assert info.value.omitted == 1_000 - MAX_ISSUES
    assert [i.line for i in info.value.issues] == list(range(2, 2 + MAX_ISSUES))
    assert str(info.value).endswith(f"({1_000 - MAX_ISSUES} more problem(s) not listed)")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("32MiB", "must be a valid integer, unable to parse string as an integer"),
        ("-1", "must be >= 0"),
        ("1099511627777", "must be <= 1099511627776"),  # 2**40 + 1: beyond 1 TiB
        ("true", "must be a number, not true or false"),
        ("1.5", "must be a valid integer, got a number with a fractional part"),
        ("null", "must be a valid integer"),
    ],
)
def test_a_wrong_correction_history_byte_budget_is_refused_naming_it(value: str, message: str) -> None:
    text = edited("  micro_stop_max_s: 0", f"  micro_stop_max_s: 0\n  correction_history_bytes: {value}")
    [issue] = issues_of(text)
    assert str(issue).endswith(f"production.correction_history_bytes: {message}")


def test_a_mistyped_correction_history_byte_budget_is_an_unknown_key_with_a_suggestion() -> None:
    text = edited("  micro_stop_max_s: 0", "  micro_stop_max_s: 0\n  correction_history_byte: 5")
    [issue] = issues_of(text)
    assert "unknown key (did you mean 'correction_history_bytes'?)" in str(issue)


def test_the_correction_history_byte_budget_reaches_the_engine() -> None:
    assert build_spec(parse_plant(MINIMAL).model).correction_history_bytes == 32 * 2**20
    text = edited("  micro_stop_max_s: 0", "  micro_stop_max_s: 0\n  correction_history_bytes: 1048576")
    assert build_spec(parse_plant(text).model).correction_history_bytes == 2**20
