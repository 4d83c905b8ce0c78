"""The provisioned Grafana dashboards query only what docs/points.md documents.

docs/points.md is the contract between the pipeline and its readers. This test parses it (its
``## `measurement` `` sections, their Field and Tag tables, the "Tag(s) `a`, `b`" sentences, and
the shared Tags table that applies to sections naming no tags of their own), then parses every
Flux query of every dashboard (panels and variables) and checks each reference to a measurement
(``r._measurement == "..."``), a field (``r._field == "..."``) and a column (``r.<name>``,
``exists r.<name>``, ``group(columns: [...])``, ``keep``, ``pivot``, ``sort``, ``tag: "..."`` of
``schema.tagValues``). A column must be a tag or a field (after a pivot) of the measurements the
query reads, one of Flux's own columns, or one the query itself creates in a record literal
(``map(fn: (r) => ({name: ...}))``), ``set`` or ``rename``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
POINTS_MD = ROOT / "docs" / "points.md"
PROVISIONING = ROOT / "docker" / "grafana" / "provisioning"
DASHBOARD_DIR = PROVISIONING / "dashboards" / "json"
GENERATOR = ROOT / "docker" / "grafana" / "make_dashboards.py"

FLUX_COLUMNS = frozenset({"_measurement", "_field", "_value", "_time", "_start", "_stop"})


# --- docs/points.md -------------------------------------------------------------------------------


@dataclass
class Measurement:
    tags: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def _tags_named_in(text: str) -> list[str]:
    """Tag names a sentence lists: "Tags `a`, `b` and `c`;", "Tags: `a` (a note), `b`.", "(tag `a`)"."""
    names = []
    for mention in re.finditer(r"\btags?\b:?\s*", text, flags=re.IGNORECASE):
        # The list runs to the first '.', ';' or ')' outside parentheses; notes in parentheses go.
        rest, depth, kept = text[mention.end() :], 0, []
        for char in rest:
            if char == "(":
                depth += 1
            elif char == ")" and depth:
                depth -= 1
            elif depth == 0 and char in ".;)":
                break
            elif depth == 0:
                kept.append(char)
        listed = re.match(r"\s*((?:`[A-Za-z_]\w*`(?:\s*,\s*(?:and\s+)?|\s+and\s+)?)+)", "".join(kept))
        if listed:
            names += _backticked(listed.group(1))
    return names


def parse_points_doc(text: str) -> dict[str, Measurement]:
    """Measurements with their tags and fields, as docs/points.md documents them."""
    measurements: dict[str, Measurement] = {}
    shared_tags: set[str] = set()
    current: Measurement | None = None
    table_kind: str | None = None  # "field" or "tag" while inside such a table
    paragraph: list[str] = []

    def end_paragraph() -> None:
        text = " ".join(paragraph)
        paragraph.clear()
        if current is not None:
            current.tags.update(_tags_named_in(text))

    for line in [*text.splitlines(), ""]:
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if heading:
            end_paragraph()
            table_kind = None
            title = heading.group(2).strip()
            name = re.fullmatch(r"`([A-Za-z_]\w*)`", title)
            current = measurements.setdefault(name.group(1), Measurement()) if name else None
        elif line.lstrip().startswith("|"):
            end_paragraph()
            cells = _cells(line)
            if table_kind is None:
                header = cells[0].lower()
                table_kind = header if header in {"field", "tag"} else "other"
            elif not set(cells[0]) <= set("-: "):  # not the separator row
                names = _backticked(cells[0])
                if table_kind == "field" and current is not None:
                    current.fields.update(names)
                elif table_kind == "tag":
                    (current.tags if current is not None else shared_tags).update(names)
        else:
            table_kind = None
            if line.strip():
                paragraph.append(line.strip())
            else:
                end_paragraph()
    for measurement in measurements.values():
        if not measurement.tags:
            measurement.tags = set(shared_tags)
    return {name: m for name, m in measurements.items() if m.fields}


@pytest.fixture(scope="module")
def documented() -> dict[str, Measurement]:
    return parse_points_doc(POINTS_MD.read_text())


def test_points_doc_is_parsed(documented: dict[str, Measurement]) -> None:
    # A sanity check of the parser on a few facts of docs/points.md, so it cannot pass by parsing
    # nothing; the checks below use the parsed tables, not these names.
    assert {"oee", "energy", "carbon", "reading", "health"} <= documented.keys()
    assert {"site", "line", "machine", "window", "shift"} == documented["oee"].tags
    assert documented["energy"].tags == documented["oee"].tags
    assert {"site", "line", "machine", "signal"} == documented["reading"].tags
    assert "source" in documented["health"].tags
    assert {"total_count", "good_count", "reject_count", "revision", "machines"} <= documented["oee"].fields
    assert {"kwh", "avg_kw", "kwh_per_good_unit"} <= documented["energy"].fields
    assert "connected" in documented["health"].fields
    if "cbam" in documented:  # its tags are its own, listed in a sentence with notes in parentheses
        assert {"installation", "process", "good", "cn_code", "window"} == documented["cbam"].tags


def test_tag_sentences_in_their_usual_forms() -> None:
    doc = (
        "## Tags\n\n| Tag | Value |\n|---|---|\n| `site` | the site |\n\n"
        "## `a`\n\nTags `x`, `y` and\n`z`; time is the reading's time.\n\n"
        "| Field | Meaning |\n|---|---|\n| `f` | f |\n\n"
        "## `b`\n\nOne point per source (tag `source`) and one per sink (tag `sink`).\n\n"
        "| Field | Meaning |\n|---|---|\n| `g`, `h` | g and h |\n\n"
        "## `c`\n\nTags: `u` (the id), `v` (`1d`).\n\n| Field | Meaning |\n|---|---|\n| `k` | k |\n\n"
        "## `d`\n\nThe tags of the site apply.\n\n| Field | Meaning |\n|---|---|\n| `m` | m |\n"
    )
    parsed = parse_points_doc(doc)
    assert {name: (m.tags, m.fields) for name, m in parsed.items()} == {
        "a": ({"x", "y", "z"}, {"f"}),
        "b": ({"source", "sink"}, {"g", "h"}),
        "c": ({"u", "v"}, {"k"}),
        "d": ({"site"}, {"m"}),
    }


# --- Flux ------------------------------------------------------------------------------------------


def _strip_comments(query: str) -> str:
    return re.sub(r"(?m)(^|\s)//.*$", r"\1", query)


def _record_literal_keys(query: str) -> set[str]:
    """Keys of the ``({ ... })`` records a query builds, e.g. in ``map``."""
    keys: set[str] = set()
    for start in (m.end() for m in re.finditer(r"\(\{", query)):
        depth, end = 1, start
        while end < len(query) and depth:
            depth += {"{": 1, "}": -1}.get(query[end], 0)
            end += 1
        body = re.sub(r"^\s*r\s+with\s+", "", query[start : end - 1])
        previous = None
        while previous != body:  # drop nested calls and lists, whose keyword arguments are no keys
            previous, body = body, re.sub(r"\([^()]*\)|\[[^\[\]]*\]", "", body)
        keys.update(re.findall(r"(?:^|,)\s*([A-Za-z_]\w*)\s*:", body))
    return keys


def _created_columns(query: str) -> set[str]:
    created = _record_literal_keys(query)
    created.update(re.findall(r"\bset\(\s*key:\s*\"([^\"]+)\"", query))
    created.update(re.findall(r"\bas:\s*\"([^\"]+)\"", query))
    for mapping in re.findall(r"\brename\(\s*columns:\s*\{([^}]*)\}", query):
        created.update(re.findall(r":\s*\"([^\"]+)\"", mapping))
    return created


def check_query(query: str, documented: dict[str, Measurement]) -> list[str]:
    """What a Flux query refers to that docs/points.md does not document (empty: all documented)."""
    # r["name"] is r.name.
    query = re.sub(r"\br\[\s*\"([A-Za-z_]\w*)\"\s*\]", r"r.\1", _strip_comments(query))
    problems: list[str] = []
    measurements: list[str] = []
    for op, value, regex in re.findall(r"\br\._measurement\s*(==|!=|=~|!~)\s*(?:\"([^\"]*)\"|(/))", query):
        if regex:
            problems.append(f"measurement matched by a regular expression ({op} /.../): not checkable")
        elif value not in documented:
            problems.append(f"unknown measurement {value!r}")
        else:
            measurements.append(value)
    read = [documented[m] for m in measurements] or list(documented.values())
    tags = set().union(*(m.tags for m in read))
    fields = set().union(*(m.fields for m in read))
    for op, value, regex in re.findall(r"\br\._field\s*(==|!=|=~|!~)\s*(?:\"([^\"]*)\"|(/))", query):
        if regex:
            problems.append(f"field matched by a regular expression ({op} /.../): not checkable")
        elif value not in fields:
            problems.append(f"unknown field {value!r} (of {', '.join(sorted(set(measurements))) or 'any'})")
    columns = FLUX_COLUMNS | tags | fields | _created_columns(query)
    referenced: list[tuple[str, str]] = [
        (name, "column") for name in re.findall(r"\br\.([A-Za-z_]\w*)", query)
    ]
    referenced += [(name, "column") for name in re.findall(r"\br\[\s*\"([^\"]+)\"\s*\]", query)]
    for key, names in re.findall(r"\b(columns|rowKey|columnKey)\s*:\s*\[([^\]]*)\]", query):
        referenced += [(name, f"{key} column") for name in re.findall(r"\"([^\"]+)\"", names)]
    for key, name in re.findall(r"\b(column|valueColumn|timeSrc|timeDst)\s*:\s*\"([^\"]+)\"", query):
        referenced.append((name, f"{key}"))
    for name, what in referenced:
        if name not in columns:
            problems.append(f"unknown {what} {name!r}")
    for name in re.findall(r"\btag\s*:\s*\"([^\"]+)\"", query):
        if name not in tags:
            problems.append(f"unknown tag {name!r} in tagValues")
    return list(dict.fromkeys(problems))


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out += _panels(panel.get("panels", []))  # panels inside collapsed rows
    return out


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, query) of every Flux query of a dashboard: panel targets and query variables."""
    queries = []
    for panel in _panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            queries.append((f"panel {panel.get('title', panel.get('id'))!r}", target.get("query", "")))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"] if isinstance(var["query"], str) else var["query"].get("query", "")
            queries.append((f"variable ${var['name']}", query))
    return queries


def check_dashboard(name: str, dashboard: dict[str, Any], documented: dict[str, Measurement]) -> list[str]:
    """Every undocumented reference in a dashboard, as ``dashboard: panel 'title': problem``."""
    problems = []
    for where, query in dashboard_queries(dashboard):
        if not query.strip():
            problems.append(f"{name}: {where}: empty query")
        problems += [f"{name}: {where}: {problem}" for problem in check_query(query, documented)]
    return problems


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboard_queries_use_only_documented_names(path: Path, documented: dict[str, Measurement]) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard_queries(dashboard), f"{path.name}: no queries found"
    problems = check_dashboard(path.name, dashboard, documented)
    assert not problems, "\n".join(problems)


def test_the_check_reports_undocumented_names(documented: dict[str, Measurement]) -> None:
    bad = (
        "from(bucket: v.defaultBucket)\n"
        "  |> range(start: v.timeRangeStart)\n"
        '  |> filter(fn: (r) => r._measurement == "oee" and r._field == "oee_pct")\n'
        '  |> filter(fn: (r) => r.plant == "hcm" and exists r.machine and r["cell"] == "c1")\n'
        '  |> group(columns: ["area"])\n'
    )
    dashboard = {
        "panels": [
            {
                "title": "Fine",
                "targets": [{"query": 'from(bucket: "b") |> filter(fn: (r) => r._measurement == "energy")'}],
            },
            {"title": "Bad", "targets": [{"query": bad}]},
            {
                "title": "Typo",
                "targets": [{"query": 'x |> filter(fn: (r) => r["_measurement"] == "eneryg")'}],
            },
        ],
        "templating": {
            "list": [{"type": "query", "name": "cell", "query": 'schema.tagValues(bucket: "b", tag: "cell")'}]
        },
    }
    problems = check_dashboard("bad.json", dashboard, documented)
    assert problems == [
        "bad.json: panel 'Bad': unknown field 'oee_pct' (of oee)",
        "bad.json: panel 'Bad': unknown column 'plant'",
        "bad.json: panel 'Bad': unknown column 'cell'",
        "bad.json: panel 'Bad': unknown columns column 'area'",
        "bad.json: panel 'Typo': unknown measurement 'eneryg'",
        "bad.json: variable $cell: unknown tag 'cell' in tagValues",
    ]


def test_the_check_follows_the_doc_not_a_copy_of_it() -> None:
    # The same dashboards against docs/points.md without its `avg_kw` row: the panel that charts
    # kW must now be reported, which shows the names come from the document.
    text = POINTS_MD.read_text()
    assert "| `avg_kw` |" in text
    shrunk = parse_points_doc("\n".join(ln for ln in text.splitlines() if not ln.startswith("| `avg_kw` |")))
    problems = check_dashboard("energy.json", json.loads((DASHBOARD_DIR / "energy.json").read_text()), shrunk)
    assert problems == [
        "energy.json: panel 'Power (average kW per window)': unknown field 'avg_kw' (of energy)"
    ]


def test_columns_a_query_creates_are_known(documented: dict[str, Measurement]) -> None:
    query = (
        'import "strings"\n'
        'x |> filter(fn: (r) => r._measurement == "oee")\n'
        '  |> map(fn: (r) => ({loss: strings.trimSuffix(v: r._field, suffix: "_s"), minutes: r._value}))\n'
        '  |> sort(columns: ["minutes"])\n'
        '  |> filter(fn: (r) => r.loss != "run" and r.suffix == "x")\n'
    )
    # `suffix` is a keyword argument inside the record, not a column it creates.
    assert check_query(query, documented) == ["unknown column 'suffix'"]


# --- provisioning ----------------------------------------------------------------------------------


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_dashboards", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = _generator().render()
    assert sorted(rendered) == [p.name for p in dashboard_files()]
    for name, text in rendered.items():
        assert (DASHBOARD_DIR / name).read_text() == text, (
            f"{name} differs from docker/grafana/make_dashboards.py: run it and commit the result"
        )


def test_datasource_reads_its_settings_from_the_environment() -> None:
    config = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())
    (source,) = config["datasources"]
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "Flux"
    assert source["url"] == "${INFLUX_URL}"
    assert source["jsonData"]["organization"] == "${INFLUX_ORG}"
    assert source["jsonData"]["defaultBucket"] == "${INFLUX_BUCKET}"
    assert source["secureJsonData"]["token"] == "${INFLUX_TOKEN}"


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_dashboards_use_the_provisioned_datasource_and_variables(path: Path) -> None:
    uid = yaml.safe_load((PROVISIONING / "datasources" / "influxdb.yaml").read_text())["datasources"][0][
        "uid"
    ]
    dashboard = json.loads(path.read_text())
    for panel in _panels(dashboard["panels"]):
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    names = {var["name"] for var in dashboard["templating"]["list"]}
    assert {"site", "line", "machine"} <= names
    used = {name for _, query in dashboard_queries(dashboard) for name in re.findall(r"\$\{(\w+)", query)}
    assert used <= names, f"{path.name} uses undefined variables {used - names}"


def test_dashboard_provider_points_at_the_json() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "plantstream.yaml").read_text())
    (provider,) = config["providers"]
    # compose.yaml mounts docker/grafana/provisioning at /etc/grafana/provisioning.
    mounted = Path("/etc/grafana/provisioning") / DASHBOARD_DIR.relative_to(PROVISIONING)
    assert provider["options"]["path"] == str(mounted)
    uids = [json.loads(p.read_text())["uid"] for p in dashboard_files()]
    assert len(uids) == len(set(uids)) == 5
