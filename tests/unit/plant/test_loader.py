from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from plantstream.plant import (
    PlantError,
    PlantIssue,
    Role,
    StateCategory,
    format_path,
    load_plant,
    parse_plant,
)

REPO = Path(__file__).resolve().parents[3]

# A valid minimal plant; the numbers are the line numbers the tests assert on.
BASE = """\
sites:
  - id: s1
    timezone: UTC
    country: VN
    calendar: day
    lines:
      - id: l1
        machines:
          - id: m1
            ideal_cycle_s: 1.0
            signals:
              state: state
              total_count: total_count
              good_count: good_count
calendars:
  day:
    shifts:
      - {name: day, start: "08:00", end: "16:00"}
production:
  oee_method: iso22400
"""
#  1 sites:
#  2   - id: s1
#  3     timezone: UTC
#  4     country: VN
#  5     calendar: day
#  6     lines:
#  7       - id: l1
#  8         machines:
#  9           - id: m1
# 10             ideal_cycle_s: 1.0
# 11             signals:
# 12               state: state
# 13               total_count: total_count
# 14               good_count: good_count
# 15 calendars:
# 16   day:
# 17     shifts:
# 18       - {name: day, start: "08:00", end: "16:00"}
# 19 production:
# 20   oee_method: iso22400

M = "sites[0].lines[0].machines[0]"


def plant(*edits: tuple[str, str], append: str = "") -> str:
    """BASE with each (old, new) replaced once (old must occur exactly once), plus `append`."""
    text = BASE
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in BASE"
        text = text.replace(old, new)
    return text + append


def issues_of(text: str, **kwargs: object) -> list[PlantIssue]:
    with pytest.raises(PlantError) as info:
        parse_plant(text, **kwargs)  # type: ignore[arg-type]
    assert info.value.issues, "PlantError without issues"
    assert str(info.value) == "\n".join(str(i) for i in info.value.issues)
    return info.value.issues


def only_issue(text: str, **kwargs: object) -> PlantIssue:
    issues = issues_of(text, **kwargs)
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


def assert_issue(issue: PlantIssue, line: int, path: str, fragment: str, file: str = "plant.yaml") -> None:
    text = str(issue)
    assert text.startswith(f"{file}:{line} {path}: "), text
    assert fragment in issue.message, text


# --- the valid cases ---------------------------------------------------------------------------------


def test_base_text_is_valid() -> None:
    plant_ = parse_plant(BASE)
    assert plant_.file == "plant.yaml"
    assert [m.id for _, _, m in plant_.model.machines()] == ["m1"]


def test_minimal_example_loads() -> None:
    loaded = load_plant(REPO / "examples" / "minimal.yaml")
    model = loaded.model
    assert loaded.file == "minimal.yaml"
    [site] = model.sites
    assert site.id == "demo"
    assert site.timezone == "UTC"
    assert site.country == "VN"
    assert site.calendar == "day"
    [line] = site.lines
    assert line.id == "l1"
    [machine] = line.machines
    assert machine.id == "m1"
    assert machine.ideal_cycle_s == 1.0
    roles = ["state", "total_count", "good_count", "reject_count", "power_kw", "energy_kwh"]
    assert list(machine.signals) == roles
    assert {name: s.role.value for name, s in machine.signals.items()} == {r: r for r in roles}
    assert machine.signals["power_kw"].integration == "trapezoid"  # type: ignore[union-attr]
    [shift] = model.calendars["day"].shifts
    assert shift.name == "day"
    assert (shift.start, shift.end) == (time(8, 0), time(16, 0))
    assert site.carbon is not None
    grid = site.carbon.grid
    assert (grid.country, grid.basis, grid.year) == ("VN", "annual", 2023)
    assert model.production.oee_method.value == "iso22400"
    assert model.production.micro_stop_max_s == 0


def test_signal_shorthand_equals_long_form() -> None:
    short = parse_plant(BASE).model
    long_ = parse_plant(
        plant(
            ("state: state", "state: {role: state}"),
            ("total_count: total_count", "total_count: {role: total_count}"),
            ("good_count: good_count", "good_count: {role: good_count}"),
        )
    ).model
    assert short == long_
    signals = short.sites[0].lines[0].machines[0].signals
    assert signals["good_count"].role is Role.GOOD_COUNT


def test_state_codes_with_integer_keys_become_text() -> None:
    text = plant(("state: state", "state: {role: state, codes: {0: off, 1: running}}"))
    state = parse_plant(text).model.sites[0].lines[0].machines[0].signals["state"]
    assert state.codes == {"0": StateCategory.OFF, "1": StateCategory.RUNNING}  # type: ignore[union-attr]
    assert all(isinstance(k, str) for k in state.codes)  # type: ignore[union-attr]


# --- YAML 1.1 traps ----------------------------------------------------------------------------------


def test_unquoted_clock_times_stay_times() -> None:
    text = plant(('start: "08:00", end: "16:00"', "start: 08:00, end: 16:00"))
    [shift] = parse_plant(text).model.calendars["day"].shifts
    assert shift.start == time(8, 0)
    assert shift.end == time(16, 0)  # not the base-60 integer 960


def test_off_as_code_value_is_the_string_off() -> None:
    text = plant(("state: state", "state: {role: state, codes: {0: off, 1: 'off', 2: running}}"))
    state = parse_plant(text).model.sites[0].lines[0].machines[0].signals["state"]
    assert state.codes["0"] is StateCategory.OFF  # type: ignore[union-attr]
    assert state.codes["1"] is StateCategory.OFF  # type: ignore[union-attr]


def test_on_and_yes_are_not_booleans() -> None:
    text = plant(
        ("state: state", "state: {role: state, codes: {on: running, yes: idle, no: down, off: off}}"),
        ("      - id: l1\n", "      - id: l1\n        name: on\n        area: yes\n"),
    )
    model = parse_plant(text).model
    line = model.sites[0].lines[0]
    assert line.name == "on"
    assert line.area == "yes"
    state = line.machines[0].signals["state"]
    assert state.codes == {  # type: ignore[union-attr]
        "on": StateCategory.RUNNING,
        "yes": StateCategory.IDLE,
        "no": StateCategory.DOWN,
        "off": StateCategory.OFF,
    }


def test_norway_stays_a_country_code() -> None:
    model = parse_plant(plant(("country: VN", "country: NO"))).model
    assert model.sites[0].country == "NO"


# --- single validation errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edits", "line", "path", "fragment"),
    [
        pytest.param(
            [("ideal_cycle_s: 1.0", "ideal_cyle_s: 1.0")],
            10,
            f"{M}.ideal_cyle_s",
            "unknown key (did you mean 'ideal_cycle_s'?)",
            id="typo-with-hint",
        ),
        pytest.param(
            [("ideal_cycle_s: 1.0", "ideal_cycle_s: 1.0\n            colour: red")],
            11,
            f"{M}.colour",
            "unknown key",
            id="unknown-key",
        ),
        pytest.param(
            [("    country: VN\n", "")],
            2,
            "sites[0].country",
            "required key is missing",
            id="missing-key",
        ),
        pytest.param(
            [("ideal_cycle_s: 1.0", "ideal_cycle_s: 0")],
            10,
            f"{M}.ideal_cycle_s",
            "must be > 0",
            id="bound-gt-0",
        ),
        pytest.param(
            [("ideal_cycle_s: 1.0", "ideal_cycle_s: -2.5")],
            10,
            f"{M}.ideal_cycle_s",
            "must be > 0",
            id="bound-negative",
        ),
        pytest.param(
            [("good_count: good_count", "good_count: {role: good_count, modulus: 0}")],
            14,
            f"{M}.signals.good_count.modulus",
            "must be > 0",
            id="bound-in-signal",
        ),
        pytest.param(
            [("state: state", "state: stat")],
            12,
            f"{M}.signals.state",
            "unknown role 'stat'",
            id="unknown-role-shorthand",
        ),
        pytest.param(
            [("state: state", "state: {role: sate}")],
            12,
            f"{M}.signals.state",
            "unknown role 'sate'",
            id="unknown-role-long",
        ),
        pytest.param(
            [("state: state", "state: {codes: {}}")],
            12,
            f"{M}.signals.state",
            "needs a role",
            id="no-role",
        ),
        pytest.param(
            [
                (
                    "good_count: good_count",
                    "good_count: good_count\n              p: {role: power_kw, integration: linear}",
                )
            ],
            15,
            f"{M}.signals.p.integration",
            "must be 'trapezoid' or 'hold'",
            id="bad-literal",
        ),
        pytest.param(
            [("oee_method: iso22400", "oee_method: nakajima")],
            20,
            "production.oee_method",
            "must be 'iso22400' or 'vorne'",
            id="bad-enum",
        ),
        pytest.param(
            [("state: state", "state: {role: state, codes: {0: offf}}")],
            12,
            f"{M}.signals.state.codes.0",
            "must be 'running', 'idle', 'down', 'setup', 'planned_stop' or 'off'",
            id="bad-state-category",
        ),
        pytest.param(
            [("timezone: UTC", "timezone: Mars/Olympus")],
            3,
            "sites[0].timezone",
            "unknown time zone 'Mars/Olympus'",
            id="unknown-tz",
        ),
        pytest.param(
            [("country: VN", "country: vn")],
            4,
            "sites[0].country",
            "must match pattern",
            id="country-lowercase",
        ),
        pytest.param(
            [("country: VN", "country: VNM")],
            4,
            "sites[0].country",
            "must match pattern",
            id="country-alpha3",
        ),
        pytest.param(
            [
                (
                    "good_count: good_count",
                    "good_count: good_count\n              gas: {role: fuel, fuel: natural_gas, unit: Nm3}",
                )
            ],
            15,
            f"{M}.signals.gas",
            "unit Nm3 needs ncv_mj_per_nm3",
            id="nm3-without-ncv",
        ),
        pytest.param(
            [("            ideal_cycle_s: 1.0\n", "")],
            9,
            M,
            "a machine with count signals needs ideal_cycle_s",
            id="counts-without-ideal-cycle",
        ),
        pytest.param(
            [("good_count: good_count", "good_count: good_count\n              good2: good_count")],
            9,
            M,
            "signals 'good_count' and 'good2' both have role good_count",
            id="two-signals-same-role",
        ),
    ],
)
def test_single_error(edits: list[tuple[str, str]], line: int, path: str, fragment: str) -> None:
    assert_issue(only_issue(plant(*edits)), line, path, fragment)


def test_error_text_format() -> None:
    issue = only_issue(plant(("ideal_cycle_s: 1.0", "ideal_cycle_s: 0")))
    assert str(issue) == f"plant.yaml:10 {M}.ideal_cycle_s: must be > 0"
    assert issue.line == 10
    assert issue.path == ("sites", 0, "lines", 0, "machines", 0, "ideal_cycle_s")


def test_name_argument_is_used_in_messages() -> None:
    issue = only_issue(plant(("ideal_cycle_s: 1.0", "ideal_cycle_s: 0")), name="line3.yaml")
    assert_issue(issue, 10, f"{M}.ideal_cycle_s", "must be > 0", file="line3.yaml")


def test_fuel_with_nm3_and_ncv_is_valid() -> None:
    text = plant(
        (
            "good_count: good_count",
            "good_count: good_count\n"
            "              gas: {role: fuel, fuel: natural_gas, unit: Nm3, ncv_mj_per_nm3: 34.0}",
        )
    )
    gas = parse_plant(text).model.sites[0].lines[0].machines[0].signals["gas"]
    assert gas.ncv_mj_per_nm3 == 34.0  # type: ignore[union-attr]


def test_shorthand_fuel_signal_errors_name_the_signal_keys() -> None:
    # `gas: fuel` is `gas: {role: fuel}`: it lacks fuel and unit, which should be reported at
    # signals.gas.fuel and signals.gas.unit, as for the long form.
    long_form = issues_of(
        plant(("good_count: good_count", "good_count: good_count\n              gas: {role: fuel}"))
    )
    short_form = issues_of(
        plant(("good_count: good_count", "good_count: good_count\n              gas: fuel"))
    )
    expected = [(15, f"{M}.signals.gas.fuel"), (15, f"{M}.signals.gas.unit")]
    assert [(i.line, format_path(i.path)) for i in long_form] == expected
    assert [(i.line, format_path(i.path)) for i in short_form] == expected


def test_typo_next_to_missing_key_reports_both() -> None:
    issues = issues_of(plant(("timezone: UTC", "timezon: UTC")))
    assert len(issues) == 2
    assert_issue(issues[0], 2, "sites[0].timezone", "required key is missing")
    assert_issue(issues[1], 3, "sites[0].timezon", "did you mean 'timezone'?")


def test_missing_sites() -> None:
    assert_issue(only_issue("calendars: {}\n"), 1, "sites", "required key is missing")


# --- duplicate keys ----------------------------------------------------------------------------------


def test_duplicate_key_is_an_error() -> None:
    issue = only_issue(plant(("    country: VN\n", "    country: VN\n    country: KR\n")))
    assert_issue(issue, 5, "sites[0].country", "duplicate key")


def test_duplicate_key_in_flow_mapping_is_an_error() -> None:
    issue = only_issue(plant(('start: "08:00", end: "16:00"', 'start: "08:00", end: "16:00", end: "17:00"')))
    assert_issue(issue, 18, "calendars.day.shifts[0].end", "duplicate key")


def test_duplicate_state_code_written_as_number_and_text_is_an_error() -> None:
    # 0 and '0' are the same PLC code once keys are compared as text; last-wins would hide one.
    issue = only_issue(plant(("state: state", "state: {role: state, codes: {0: off, '0': running}}")))
    assert_issue(issue, 12, f"{M}.signals.state.codes", "given twice")


# --- environment substitution ------------------------------------------------------------------------


def test_env_variable_is_substituted() -> None:
    model = parse_plant(plant(("id: s1", "id: ${SITE_ID}")), environ={"SITE_ID": "hanoi-1"}).model
    assert model.sites[0].id == "hanoi-1"


def test_env_variable_inside_a_longer_string() -> None:
    text = plant(("id: s1", "id: plant-${N}-x"))
    assert parse_plant(text, environ={"N": "7"}).model.sites[0].id == "plant-7-x"


def test_env_default_is_used_when_unset() -> None:
    text = plant(("id: s1", "id: ${PLANTSTREAM_TEST_UNSET_VAR:-fallback}"))
    assert parse_plant(text, environ={}).model.sites[0].id == "fallback"


def test_env_value_wins_over_default() -> None:
    text = plant(("id: s1", "id: ${SITE_ID:-fallback}"))
    assert parse_plant(text, environ={"SITE_ID": "set"}).model.sites[0].id == "set"


def test_env_substitution_then_validation_as_number() -> None:
    text = plant(("ideal_cycle_s: 1.0", "ideal_cycle_s: ${CYCLE:-2.5}"))
    assert parse_plant(text, environ={}).model.sites[0].lines[0].machines[0].ideal_cycle_s == 2.5
    assert (
        parse_plant(text, environ={"CYCLE": "0.5"}).model.sites[0].lines[0].machines[0].ideal_cycle_s == 0.5
    )


def test_env_value_is_validated_and_located() -> None:
    text = plant(("ideal_cycle_s: 1.0", "ideal_cycle_s: ${CYCLE}"))
    assert_issue(only_issue(text, environ={"CYCLE": "0"}), 10, f"{M}.ideal_cycle_s", "must be > 0")


def test_missing_env_variable_is_an_error_naming_it() -> None:
    issue = only_issue(plant(("timezone: UTC", "timezone: ${PLANT_TZ}")), environ={})
    assert_issue(issue, 3, "sites[0].timezone", "PLANT_TZ")
    assert "not set" in issue.message


def test_every_missing_env_variable_is_reported() -> None:
    issues = issues_of(plant(("id: s1", "id: ${A_VAR}-${B_VAR}"), ("id: l1", "id: ${C_VAR}")), environ={})
    assert [(i.line, i.message.split()[2]) for i in issues] == [(2, "A_VAR"), (2, "B_VAR"), (7, "C_VAR")]


def test_environ_argument_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTSTREAM_TEST_SITE", "from-os")
    text = plant(("id: s1", "id: ${PLANTSTREAM_TEST_SITE}"))
    assert parse_plant(text).model.sites[0].id == "from-os"
    assert_issue(only_issue(text, environ={}), 2, "sites[0].id", "PLANTSTREAM_TEST_SITE")


# --- cross references --------------------------------------------------------------------------------


def test_machine_id_used_twice() -> None:
    text = plant(
        (
            "              good_count: good_count\n",
            "              good_count: good_count\n          - id: m1\n            signals: {state: state}\n",
        )
    )
    issue = only_issue(text)
    assert_issue(issue, 15, "sites[0].lines[0].machines[1].id", "machine id 'm1' is used twice")


def test_machine_id_used_twice_across_sites() -> None:
    second = """\
  - id: s2
    timezone: Asia/Seoul
    country: KR
    lines:
      - id: l9
        machines:
          - id: m1
            signals: {state: state}
"""
    text = plant(("calendars:\n", second + "calendars:\n"))
    assert_issue(only_issue(text), 21, "sites[1].lines[0].machines[0].id", "'m1' is used twice")


def test_unknown_calendar_reference() -> None:
    issue = only_issue(plant(("          - id: m1\n", "          - id: m1\n            calendar: night\n")))
    assert_issue(issue, 10, f"{M}.calendar", "unknown calendar 'night' (defined: day)")


def test_unknown_calendar_on_site_and_line() -> None:
    text = plant(
        ("calendar: day", "calendar: nite"), ("      - id: l1\n", "      - id: l1\n        calendar: dya\n")
    )
    issues = issues_of(text)
    assert len(issues) == 2
    assert_issue(issues[0], 5, "sites[0].calendar", "unknown calendar 'nite'")
    assert_issue(issues[1], 8, "sites[0].lines[0].calendar", "unknown calendar 'dya'")


# --- several errors ----------------------------------------------------------------------------------


def test_several_errors_are_all_reported_sorted_by_line() -> None:
    text = plant(
        ("oee_method: iso22400", "oee_method: nakajima"),
        ("state: state", "state: stat"),
        ("ideal_cycle_s: 1.0", "ideal_cycle_s: -1"),
        ("country: VN", "country: vn"),
    )
    issues = issues_of(text)
    assert [(i.line, i.path[-1]) for i in issues] == [
        (4, "country"),
        (10, "ideal_cycle_s"),
        (12, "state"),
        (20, "oee_method"),
    ]
    assert [i.line for i in issues] == sorted(i.line for i in issues)
    lines = str(PlantError(issues)).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("plant.yaml:4 sites[0].country: ")


def test_plant_error_sorts_issues_given_out_of_order() -> None:
    late = PlantIssue("p.yaml", 9, ("b",), "late")
    early = PlantIssue("p.yaml", 2, ("a",), "early")
    assert PlantError([late, early]).issues == [early, late]
    assert str(PlantError([late, early])) == "p.yaml:2 a: early\np.yaml:9 b: late"


# --- files and YAML that cannot be read --------------------------------------------------------------


def test_invalid_yaml_syntax_reports_its_line() -> None:
    issue = only_issue(plant(("country: VN", "country: VN: KR")))
    assert issue.path == ()
    assert str(issue).startswith("plant.yaml:4 (file): not valid YAML: mapping values are not allowed")


def test_bad_indentation_reports_its_line() -> None:
    issue = only_issue("sites:\n  - id: a\n   bad: x\n")
    assert issue.line == 3
    assert "not valid YAML" in issue.message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert str(only_issue(text)) == "plant.yaml:1 (file): the file is empty"


def test_top_level_list_is_rejected() -> None:
    issue = only_issue("- 1\n- 2\n")
    assert issue.line == 1
    assert issue.path == ()


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PlantError) as info:
        load_plant(missing)
    [issue] = info.value.issues
    assert "nope.yaml" in issue.file
    assert "cannot read the plant file" in issue.message
    assert "No such file" in issue.message


def test_load_file_uses_its_name_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "line3.yaml"
    path.write_text(plant(("ideal_cycle_s: 1.0", "ideal_cycle_s: 0")), encoding="utf-8")
    with pytest.raises(PlantError) as info:
        load_plant(path)
    assert str(info.value) == f"line3.yaml:10 {M}.ideal_cycle_s: must be > 0"


def test_load_file_with_environ(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text(plant(("id: s1", "id: ${SITE}")), encoding="utf-8")
    assert load_plant(path, environ={"SITE": "x1"}).model.sites[0].id == "x1"
    assert load_plant(str(path), environ={"SITE": "x2"}).model.sites[0].id == "x2"


def test_load_non_utf8_file_is_a_plant_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(plant(("id: l1", "id: l1\n        name: caf\xe9")).encode("latin-1"))
    with pytest.raises(PlantError) as info:
        load_plant(path)
    assert "latin1.yaml" in str(info.value)


def test_control_character_is_a_plant_error() -> None:
    issue = only_issue(plant(("id: l1", "id: l1\n        name: bell\x07")))
    assert issue.line == 8
    assert "not valid YAML" in issue.message


@pytest.mark.parametrize(
    ("edits", "line"),
    [
        pytest.param([("id: l1", "id: !custom l1")], 7, id="unknown-local-tag"),
        pytest.param([("id: l1", "id: !!python/name:os.system l1")], 7, id="python-tag"),
        pytest.param([("id: l1", "id: l1\n        name: =")], 8, id="yaml11-value-key"),
    ],
)
def test_unloadable_scalar_is_a_plant_error(edits: list[tuple[str, str]], line: int) -> None:
    issue = only_issue(plant(*edits))
    assert issue.line == line


def test_impossible_date_is_a_plant_error() -> None:
    issue = only_issue(
        plant(("    shifts:\n", "    holidays: [2024-01-01, 2023-02-30]\n    shifts:\n")),
    )
    assert issue.line == 17
    assert "holidays" in str(issue)


def test_merge_key_does_not_crash() -> None:
    # Supporting `<<` or rejecting it with a located PlantError are both fine; a crash is not.
    anchor = "x-site: &site {timezone: UTC, country: VN}\n"
    text = anchor + plant(("    timezone: UTC\n    country: VN\n", "    <<: *site\n"))
    issues: list[PlantIssue] = []
    try:
        parse_plant(text)
    except PlantError as exc:
        issues = exc.issues
    assert all(i.line >= 1 for i in issues), issues


def test_timezone_that_names_a_directory_is_a_plant_error() -> None:
    issue = only_issue(plant(("timezone: UTC", "timezone: America")))
    assert_issue(issue, 3, "sites[0].timezone", "unknown time zone 'America'")


# --- the optional kafka: section (keys agreed in docs/kafka.md) -----------------------------------------
SECTION = """\
kafka:
  bootstrap: ${KAFKA_BOOTSTRAP:-127.0.0.1:9092}
  topics:
    readings: plantstream.readings.v1
    points: plantstream.points.v1
    deadletter: plantstream.deadletter.v1
  partitions: 6
  replication: 1
  group: plantstream
"""
# BASE has 20 lines: kafka is line 21, bootstrap 22, topics 23 (points 25, deadletter 26),
# partitions 27, replication 28, group 29.


def with_section(old: str = "", new: str = "") -> str:
    section = SECTION.replace(old, new) if old else SECTION
    return BASE + section


def test_the_agreed_section_loads_with_its_defaults() -> None:
    kafka = parse_plant(with_section(), environ={}).model.kafka
    assert kafka is not None
    assert kafka.servers() == ["127.0.0.1:9092"]
    assert (kafka.topics.readings, kafka.topics.points, kafka.topics.deadletter) == (
        "plantstream.readings.v1",
        "plantstream.points.v1",
        "plantstream.deadletter.v1",
    )
    assert kafka.topics.windows == "plantstream.windows.v1"
    assert (kafka.partitions, kafka.replication, kafka.group) == (6, 1, "plantstream")


def test_the_section_is_optional_and_its_keys_default() -> None:
    assert parse_plant(BASE).model.kafka is None
    kafka = parse_plant(BASE + "kafka: {}\n").model.kafka
    assert kafka is not None
    assert kafka.bootstrap == "127.0.0.1:9092"
    assert kafka.topics.points == "plantstream.points.v1"


def test_bootstrap_from_the_environment_as_a_list() -> None:
    environ = {"KAFKA_BOOTSTRAP": "k1:9092, k2:9093,[::1]:9094"}
    kafka = parse_plant(with_section(), environ=environ).model.kafka
    assert kafka is not None
    assert kafka.servers() == ["k1:9092", "k2:9093", "[::1]:9094"]


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        pytest.param(
            "partitions: 6", "partitions: 0", 27, "kafka.partitions", "must be >= 1", id="partitions"
        ),
        pytest.param(
            "replication: 1", "replication: 0", 28, "kafka.replication", "must be >= 1", id="replication"
        ),
        pytest.param(
            "${KAFKA_BOOTSTRAP:-127.0.0.1:9092}",
            "127.0.0.1",
            22,
            "kafka.bootstrap",
            "'127.0.0.1' is not host:port",
            id="bootstrap-without-port",
        ),
        pytest.param(
            "${KAFKA_BOOTSTRAP:-127.0.0.1:9092}",
            "k1:9092,k2:99999",
            22,
            "kafka.bootstrap",
            "'k2:99999' is not host:port",
            id="bootstrap-bad-port",
        ),
        pytest.param(
            "points: plantstream.points.v1",
            "points: plantstream/points",
            25,
            "kafka.topics.points",
            "is not a Kafka topic name",
            id="topic-name",
        ),
        pytest.param(
            "deadletter: plantstream.deadletter.v1",
            "deadletter: plantstream.points.v1",
            23,
            "kafka.topics",
            "three different topics",
            id="topics-distinct",
        ),
        pytest.param(
            "deadletter: plantstream.deadletter.v1",
            "deadletter: plantstream.deadletter.v1\n    windows: plantstream.points.v1",
            23,
            "kafka.topics",
            "windows must be a topic of its own",
            id="windows-topic-distinct",
        ),
        pytest.param("group: plantstream", "grup: plantstream", 29, "kafka.grup", "unknown key", id="typo"),
    ],
)
def test_one_clear_error(old: str, new: str, line: int, path: str, fragment: str) -> None:
    assert_issue(only_issue(with_section(old, new), environ={}), line, path, fragment)
