"""Load a plant file: YAML to validated :class:`PlantModel`, every error pointing at its line.

The YAML is screened first (size, NUL bytes, anchors, depth: see :mod:`plantstream.plant.reader`)
and read with a core-schema resolver (only ``true``/``false`` are booleans and ``16:00``
stays a time, not the base-60 integer 960 that YAML 1.1 makes of it), duplicate keys are errors,
and ``${VAR}`` / ``${VAR:-default}`` in any string are replaced from the environment, so secrets
never sit in the file. Errors read ``plant.yaml:14 sites[0].lines[0].machines[2].ideal_cycle_s:
must be > 0``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from plantstream.plant import reader, schema
from plantstream.plant.mapping import mapping_problems, mapping_problems_in
from plantstream.plant.schema import PlantModel, cross_check

__all__ = ["KeyPath", "LoadedPlant", "PlantError", "PlantIssue", "format_path", "load_plant", "parse_plant"]

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class PlantIssue:
    """One problem in a plant file: where (file, line, key path) and what."""

    file: str
    line: int
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = format_path(self.path) or "(file)"
        return f"{self.file}:{self.line} {where}: {self.message}"


class PlantError(Exception):
    """A plant file is invalid; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: list[PlantIssue], plant: LoadedPlant | None = None) -> None:
        self.issues = sorted(issues, key=lambda i: (i.line, format_path(i.path)))
        self.plant = plant
        """The validated plant when only its source mapping is wrong, so it can still be resolved."""
        super().__init__("\n".join(str(i) for i in self.issues))


def format_path(path: KeyPath) -> str:
    """Render a key path as ``sites[0].lines[1].machines[2].id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class LoadedPlant:
    """A validated plant model plus what is needed to point later errors at the file."""

    model: PlantModel
    file: str
    lines: Mapping[KeyPath, int] = field(repr=False)
    from_environment: frozenset[KeyPath] = field(default=frozenset(), repr=False)
    """Key paths whose text came (at least partly) from a ``${VAR}`` reference."""

    def issue(self, path: KeyPath, message: str) -> PlantIssue:
        """Build an issue for ``path``, located at the nearest line the file has for it."""
        return PlantIssue(self.file, _nearest_line(self.lines, path), path, message)


def load_plant(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedPlant:
    """Read and validate a plant file; raise :class:`PlantError` listing every problem."""
    file = Path(path)
    try:
        with file.open("rb") as stream:
            # One byte more than allowed tells a file at the limit from one beyond it, without
            # reading a huge (or endless) file whole.
            data = stream.read(reader.MAX_BYTES + 1)
    except OSError as exc:
        raise PlantError(
            [PlantIssue(file.name, 0, (), f"cannot read the plant file {file}: {exc.strerror}")]
        ) from None
    try:
        text = reader.decode(data)
    except reader.YamlRefused as exc:
        raise PlantError([PlantIssue(file.name, p.line, (), p.message) for p in exc.problems]) from None
    return parse_plant(text, file.name, environ)


def parse_plant(text: str, name: str = "plant.yaml", environ: Mapping[str, str] | None = None) -> LoadedPlant:
    """Validate plant-file text; ``name`` is used in error messages."""
    env = os.environ if environ is None else environ
    try:
        root = reader.compose(text)
    except reader.YamlRefused as exc:
        raise PlantError([PlantIssue(name, p.line, (), p.message) for p in exc.problems]) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise PlantError([PlantIssue(name, line, (), f"not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:  # e.g. a control character, which the reader reports unmarked
        line = text.count("\n", 0, getattr(exc, "position", 0)) + 1
        raise PlantError([PlantIssue(name, line, (), f"not valid YAML: {exc}")]) from None
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
        raise PlantError([PlantIssue(name, 1, (), "the file is empty")])
    builder = _Builder(name, env)
    data = builder.build(root, ())
    issues = list(builder.issues)
    try:
        model = PlantModel.model_validate(data)
    except ValidationError as exc:
        # A value the builder already refused comes out of validation as a second, vaguer error.
        for err in exc.errors():
            issue = _issue_from(err, data, builder.lines, name)
            if not any(issue.path[: len(path)] == path for path in builder.replaced):
                issues.append(issue)
        issues.extend(_section_issues(data, builder.lines, name))
        raise PlantError(issues) from None
    plant = LoadedPlant(model, name, builder.lines, frozenset(builder.from_environment))
    references = [plant.issue(p, msg) for p, msg in cross_check(model)]
    mapped = [plant.issue(p, msg) for p, msg in mapping_problems(model)]
    if issues or references or mapped:
        # With only mapping problems the model is whole, so the caller may still resolve it and
        # report what resolving finds in the same run.
        raise PlantError([*issues, *references, *mapped], plant=None if issues or references else plant)
    return plant


_SOURCE: TypeAdapter[schema.Source] = TypeAdapter(schema.Source)


def _valid_source(raw: Any) -> schema.Source | None:
    try:
        return _SOURCE.validate_python(raw)
    except ValidationError:
        return None


def _section_issues(data: Any, lines: Mapping[KeyPath, int], file: str) -> list[PlantIssue]:
    """The checks across sections whose sections are valid, when the whole file is not.

    The reference checks run only when every section they read validates on its own, so a broken
    section never makes a reference to it look wrong. The source mapping needs only the machine
    ids and signal names, which the sites section usually still gives when a value in it is wrong.
    """
    if not isinstance(data, dict):
        return []
    found: list[tuple[KeyPath, str]] = []
    references = {key: data[key] for key in ("sites", "calendars", "sinks", "cbam") if key in data}
    with contextlib.suppress(ValidationError):  # a broken section: its own errors say it all
        found.extend(cross_check(PlantModel.model_validate(references)))
    signals = _raw_machine_signals(data.get("sites"))
    raw_sources = data.get("sources", [])
    if signals is not None and isinstance(raw_sources, list):
        # Each source on its own: one broken source does not hide the tags of the others.
        found.extend(mapping_problems_in(signals, [_valid_source(raw) for raw in raw_sources]))
    return [PlantIssue(file, _nearest_line(lines, p), p, msg) for p, msg in found]


def _raw_machine_signals(sites: Any) -> dict[str, list[str]] | None:
    """Machine id -> signal names from unvalidated sites; None when the structure hides any machine."""
    out: dict[str, list[str]] = {}
    if not isinstance(sites, list):
        return None
    for site in sites:
        lines = site.get("lines") if isinstance(site, dict) else None
        if not isinstance(lines, list):
            return None
        for line in lines:
            machines = line.get("machines") if isinstance(line, dict) else None
            if not isinstance(machines, list):
                return None
            for machine in machines:
                if not isinstance(machine, dict):
                    return None
                machine_id, signals = machine.get("id"), machine.get("signals")
                if not isinstance(machine_id, str) or not isinstance(signals, dict):
                    return None
                out[machine_id] = [str(name) for name in signals]
    return out


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Builder:
    """Turns a composed YAML node tree into plain data, recording the line of every key path."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.lines: dict[KeyPath, int] = {}
        self.issues: list[PlantIssue] = []
        self.from_environment: set[KeyPath] = set()
        self.replaced: set[KeyPath] = set()
        """Paths of values that could not be read (an issue says why); validation errors there repeat it."""
        self._loader = reader.CoreLoader("")

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                reported = len(self.issues)
                key = self._scalar(key_node, path)
                if not isinstance(key, str | int | float):
                    if len(self.issues) == reported:  # one problem, one message
                        self._add(key_node, path, "mapping keys must be plain scalars")
                    continue
                key_path = (*path, key if isinstance(key, str) else str(key))
                if key in out:
                    self._add(key_node, key_path, "duplicate key (YAML would silently keep the last one)")
                    continue
                self.lines[key_path] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, key_path)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        reported = len(self.issues)
        value = self._scalar(node, path)
        if isinstance(value, str) and "${" in value:
            if _ENV_REF.search(value):
                self.from_environment.add(path)
            value = self._substitute(value, node, path)
        if len(self.issues) > reported:
            self.replaced.add(path)
        return value

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self._add(node, path, "mapping keys must be plain scalars")
            return None
        try:
            return self._loader.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            # Unknown tags (!custom, !!python/...), impossible dates, YAML 1.1 value tags.
            problem = getattr(exc, "problem", None) or str(exc)
            self._add(node, path, f"cannot read this value: {problem}")
            return None

    def _substitute(self, text: str, node: yaml.Node, path: KeyPath) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            self._add(
                node,
                path,
                f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
            )
            return ""

        return _ENV_REF.sub(replace, text)

    def _add(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        self.issues.append(PlantIssue(self.file, node.start_mark.line + 1, path, message))


def _nearest_line(lines: Mapping[KeyPath, int], path: KeyPath) -> int:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return 0


def _data_path(loc: tuple[str | int, ...], data: Any) -> KeyPath:
    """Map a pydantic error location onto key paths of the data.

    Pydantic puts the tag of a discriminated union into the location (``signals.x.fuel`` for a
    fuel signal named ``x``, ``sinks.0.influxdb.url`` for a sink); such a part equals the node's
    ``role`` (signals) or ``type`` (sources, sinks) and is dropped.
    """
    path: list[str | int] = []
    node = data
    tag_skipped_at: object = None
    for part in loc:
        if isinstance(node, dict) and part in _tags_of(node) and tag_skipped_at is not node:
            tag_skipped_at = node
            continue
        if isinstance(node, str) and part == node and tag_skipped_at is not node:
            tag_skipped_at = node  # the shorthand `name: role` of a signal
            continue
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(path)


def _tags_of(node: dict[Any, Any]) -> tuple[object, ...]:
    return (node.get("role"), node.get("type"))


def _model_fields() -> set[str]:
    names: set[str] = set()
    for obj in vars(schema).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            names.update(obj.model_fields)
    return names


_FIELD_NAMES = _model_fields()


def _issue_from(err: Any, data: Any, lines: Mapping[KeyPath, int], file: str) -> PlantIssue:
    path = _data_path(tuple(err["loc"]), data)
    return PlantIssue(file, _nearest_line(lines, path), path, _message(err, path))


def _message(err: Any, path: KeyPath) -> str:
    kind, ctx = err["type"], err.get("ctx", {})
    if kind == "extra_forbidden":
        key = str(path[-1]) if path else ""
        close = difflib.get_close_matches(key, sorted(_FIELD_NAMES), n=1, cutoff=0.7)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "required key is missing"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {bounds[kind]} {limit}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_message(kind, ctx)
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message.replace("Input should be", "must be").replace("String should", "must")


def _tag_message(kind: str, ctx: dict[str, Any]) -> str:
    """The message for a missing or unknown discriminator: a signal's role, a source's or sink's type."""
    is_role = "role" in str(ctx.get("discriminator", ""))
    if kind == "union_tag_not_found":
        return "needs a role" if is_role else "needs a type"
    if is_role:
        roles = ", ".join(role.value for role in schema.Role)
        return f"unknown role {ctx.get('tag')!r} (roles: {roles})"
    expected = str(ctx.get("expected_tags", "")).replace("'", "")
    return f"unknown type {ctx.get('tag')!r} (types: {expected})"
