from __future__ import annotations

import ast
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("plantstream", "collectors", "streams", "sinks", "runtimes")

# Project packages each package may import (besides itself). runtimes wires everything together.
ALLOWED = {
    "plantstream": set(),
    "collectors": {"plantstream"},
    "streams": {"plantstream"},
    "sinks": {"plantstream"},
    "runtimes": set(PACKAGES),
}

# Pure modules: no I/O, no clock.
IO_MODULES = frozenset(
    {
        "asyncio",
        "asyncua",
        "aiomqtt",
        "faust",
        "aiokafka",
        "influxdb_client",
        "urllib3",
        "http",
        "socket",
        "time",
        "threading",
        "subprocess",
        "logging",
        "io",
        "os",
        "pathlib",
        "shutil",
        "sqlite3",
    }
)
CLOCK_ATTRIBUTES = frozenset({"now", "utcnow", "today"})
EXTRA_PURE_FILES = (
    "plantstream/records.py",
    "plantstream/plant/base.py",
    "plantstream/plant/calendars.py",
    "plantstream/plant/carbon.py",
    "plantstream/plant/cbam_checks.py",
    "plantstream/plant/cbam_goods.py",
    "plantstream/plant/cbam_installation.py",
    "plantstream/plant/checks.py",
    "plantstream/plant/plant_model.py",
    "plantstream/plant/production.py",
    "plantstream/plant/runtimes_config.py",
    "plantstream/plant/schema.py",
    "plantstream/plant/signals.py",
    "plantstream/plant/sinks_config.py",
    "plantstream/plant/sites.py",
    "plantstream/plant/sources.py",
    "plantstream/plant/cn_codes.py",
    "collectors/topics.py",
    "collectors/payloads.py",
    "collectors/sparkplug.py",
    "runtimes/simulator/model.py",
)


def python_files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def pure_files() -> list[Path]:
    streams = python_files("streams")
    return streams + [ROOT / f for f in EXTRA_PURE_FILES]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every imported module as (line, absolute dotted name); relative imports are resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
                continue
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            if not base:  # beyond the top: still this package as far as layering goes
                base = module.split(".")[:1]
            found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
    return found


def layer_violations(source: str, filename: str, module: str, is_package: bool = False) -> list[str]:
    own = module.partition(".")[0]
    allowed = ALLOWED[own] | {own}
    tree = ast.parse(source, filename=filename)
    out = []
    for line, name in imports(tree, module, is_package):
        top = name.partition(".")[0]
        if top in PACKAGES and top not in allowed:
            out.append(f"{filename}:{line} imports {name!r}: {own} may import only {sorted(allowed)}")
    return out


def purity_violations(source: str, filename: str, module: str, is_package: bool = False) -> list[str]:
    tree = ast.parse(source, filename=filename)
    out = [
        f"{filename}:{line} imports {name!r}: a pure module does no I/O"
        for line, name in imports(tree, module, is_package)
        if name.partition(".")[0] in IO_MODULES
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in CLOCK_ATTRIBUTES:
            out.append(f"{filename}:{node.lineno} reads the clock ({ast.unparse(node)}): time is data here")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "open":
            out.append(f"{filename}:{node.lineno} calls open(): a pure module does no I/O")
    return out


Checker = Callable[[str, str, str, bool], list[str]]


def check_file(path: Path, checker: Checker) -> list[str]:
    source = path.read_text(encoding="utf-8")
    return checker(source, rel(path), module_name(path), path.name == "__init__.py")


# --- the layout --------------------------------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES)
def test_package_is_a_top_level_folder(package: str) -> None:
    assert (ROOT / package).is_dir(), f"{package}/ is missing at the repository root {ROOT}"


def test_distribution_ships_exactly_these_packages() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert sorted(config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) == sorted(PACKAGES)


def test_pure_module_list_is_not_empty() -> None:
    files = pure_files()
    assert all(p.is_file() for p in files), [rel(p) for p in files if not p.is_file()]
    assert any(p.parent.name == "streams" for p in files)


# --- layering ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_data(package: str) -> None:
    problems = [v for path in python_files(package) for v in check_file(path, layer_violations)]
    assert not problems, "\n".join(problems)


def import_time_dependencies(source: str, module: str, known: set[str]) -> set[str]:
    """Our modules that importing ``module`` imports first: its top-level imports, not those under
    ``TYPE_CHECKING`` or inside functions; ``from package import module`` counts as that module."""
    found: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = {f"{node.module}.{alias.name}" for alias in node.names}
            found.update(names & known)
            if names - known:  # a name defined in the package's __init__ needs it imported
                found.add(node.module)
    return (found & known) - {module}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``graph`` (module -> modules it imports), each as its sorted members."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in order:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], order[other])
        if low[node] == order[node]:
            members = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(members) > 1:
                cycles.append(sorted(members))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    # Split modules (collectors/opcua_*.py, plantstream/plant/*.py) lean on one another; a cycle
    # would make the order of imports matter and break on the first import from the other side.
    paths = [path for package in PACKAGES for path in python_files(package)]
    known = {module_name(path) for path in paths}
    graph = {
        module_name(path): import_time_dependencies(
            path.read_text(encoding="utf-8"), module_name(path), known
        )
        for path in paths
    }
    assert import_cycles(graph) == []


def test_cycle_checker_catches_a_cycle_through_a_submodule_import() -> None:
    known = {"collectors", "collectors.a", "collectors.b", "collectors.c"}
    graph = {
        "collectors.a": import_time_dependencies("from collectors.b import B\n", "collectors.a", known),
        "collectors.b": import_time_dependencies("from collectors import c\n", "collectors.b", known),
        "collectors.c": import_time_dependencies("import collectors.a\n", "collectors.c", known),
    }
    assert import_cycles(graph) == [["collectors.a", "collectors.b", "collectors.c"]]


def test_cycle_checker_ignores_imports_for_type_checking_only() -> None:
    known = {"collectors.a", "collectors.b"}
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from collectors.a import A\n"
    graph = {
        "collectors.a": import_time_dependencies("from collectors.b import B\n", "collectors.a", known),
        "collectors.b": import_time_dependencies(source, "collectors.b", known),
    }
    assert graph["collectors.b"] == set()
    assert import_cycles(graph) == []


# --- purity ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", pure_files(), ids=rel)
def test_pure_module_does_no_io(path: Path) -> None:
    problems = check_file(path, purity_violations)
    assert not problems, "\n".join(problems)


# --- the checkers catch what they should -------------------------------------------------------------


def test_purity_checker_catches_asyncio() -> None:
    assert purity_violations("import asyncio\n", "streams/bad.py", "streams.bad") == [
        "streams/bad.py:1 imports 'asyncio': a pure module does no I/O"
    ]


@pytest.mark.parametrize(
    ("source", "offender"),
    [
        ("import os.path\n", "'os.path'"),
        ("from time import monotonic\n", "'time'"),
        ("from aiokafka.producer import AIOKafkaProducer\n", "'aiokafka.producer'"),
        ("import influxdb_client as influx\n", "'influxdb_client'"),
        ("def f():\n    import logging\n", "'logging'"),
        ("from datetime import datetime\nx = datetime.now()\n", "datetime.now"),
        ("import datetime\nx = datetime.datetime.utcnow()\n", "datetime.datetime.utcnow"),
        ("from datetime import date\nx = date.today()\n", "date.today"),
        ("x = open('f').read()\n", "open()"),
    ],
)
def test_purity_checker_catches(source: str, offender: str) -> None:
    [problem] = purity_violations(source, "streams/bad.py", "streams.bad")
    assert problem.startswith("streams/bad.py:")
    assert offender in problem


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC, date, datetime, time, timedelta\n",
        "import math\nfrom dataclasses import dataclass\n",
        "from plantstream.records import Reading\nfrom streams import carbon\n",
        "x = obj.nowhere\n",
    ],
)
def test_purity_checker_accepts(source: str) -> None:
    assert purity_violations(source, "streams/ok.py", "streams.ok") == []


@pytest.mark.parametrize(
    ("module", "source", "offender"),
    [
        ("plantstream.records", "from streams.engine import Engine\n", "'streams.engine'"),
        ("plantstream.plant.loader", "import sinks\n", "'sinks'"),
        ("collectors.opcua", "from sinks.influx import InfluxSink\n", "'sinks.influx'"),
        ("collectors.opcua", "import streams.engine\n", "'streams.engine'"),
        ("collectors.mqtt", "from runtimes import cli\n", "'runtimes'"),
        ("sinks.influx", "from collectors.opcua import Collector\n", "'collectors.opcua'"),
        ("sinks.file", "from streams.points import window_label\n", "'streams.points'"),
        ("streams.engine", "from sinks.file import FileSink\n", "'sinks.file'"),
        ("streams.engine", "from runtimes.embedded import run\n", "'runtimes.embedded'"),
        ("streams.engine", "import collectors.mqtt as m\n", "'collectors.mqtt'"),
    ],
)
def test_layer_checker_catches(module: str, source: str, offender: str) -> None:
    filename = module.replace(".", "/") + ".py"
    [problem] = layer_violations(source, filename, module)
    assert problem.startswith(f"{filename}:1 imports {offender}")


@pytest.mark.parametrize(
    ("module", "is_package", "source"),
    [
        ("collectors.opcua", False, "from plantstream.records import Reading\nfrom . import base\n"),
        ("collectors.opcua", False, "from .base import Collector\n"),
        ("collectors", True, "from . import opcua\nfrom .mqtt import MqttCollector\n"),
        (
            "streams.engine",
            False,
            "from streams.config import EngineSpec\nfrom plantstream.records import Point\n",
        ),
        ("plantstream.plant.loader", False, "from .. import records\nfrom .schema import PlantModel\n"),
        ("sinks.influx", False, "import influxdb_client\nfrom plantstream.records import Point\n"),
        ("runtimes.cli", False, "from collectors import opcua\nfrom sinks import influx\nimport streams\n"),
    ],
)
def test_layer_checker_accepts(module: str, is_package: bool, source: str) -> None:
    assert layer_violations(source, "x.py", module, is_package) == []


def test_relative_imports_resolve_to_the_same_package() -> None:
    tree = ast.parse("from . import a\nfrom .b import c\nfrom .. import d\nfrom ..e.f import g\n")
    assert imports(tree, "plantstream.plant.loader", is_package=False) == [
        (1, "plantstream.plant"),
        (2, "plantstream.plant.b"),
        (3, "plantstream"),
        (4, "plantstream.e.f"),
    ]
    assert imports(ast.parse("from . import a\n"), "streams", is_package=True) == [(1, "streams")]
