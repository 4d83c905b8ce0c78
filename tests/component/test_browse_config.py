"""``browse --config`` drafting, from browsed nodes (no server needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from support import one_line_plant

from plantstream.plant import parse_plant
from plantstream.plant.schema import OpcUaSecurity
from runtimes.browse import BrowsedNode, draft_tags, source_block

PLANT = parse_plant(
    one_line_plant("- id: press1\n  ideal_cycle_s: 1\n  signals: {good: good_count, state: state}\n")
).model
INSECURE = OpcUaSecurity(mode="None", allow_insecure=True)


def variable(*path: str, access: str | None = "r") -> BrowsedNode:
    return BrowsedNode(
        path=path, node_id=f"nsu=urn:x;s={'.'.join(path)}", node_class="Variable", access=access
    )


def test_tags_are_kept_or_given_the_reason_they_do_not_map() -> None:
    nodes = [
        variable("Press1", "Good"),  # differs only in case: mapped
        variable("press1", "temp"),
        variable("press2", "good"),
        variable("press1", "stat"),
        variable("press1", "setpoint", access="w"),  # not readable: left out
    ]
    assert [(t.machine, t.signal, t.reason) for t in draft_tags(nodes, PLANT)] == [
        ("press1", "good", None),
        ("press1", "temp", "machine 'press1' has no signal 'temp'"),
        ("press2", "good", "no machine 'press2' in the plant (did you mean 'press1'?)"),
        ("press1", "stat", "machine 'press1' has no signal 'stat' (did you mean 'state'?)"),
    ]


def test_a_block_where_nothing_maps_is_commented_out_whole() -> None:
    text = source_block([variable("oven", "temp")], "opc.tcp://127.0.0.1:4840/", "plc", INSECURE, PLANT)
    assert text.startswith("# no tag maps to the plant's machines and signals")
    assert all(line.startswith("#") for line in text.splitlines())
    assert yaml.safe_load(text) is None  # nothing to paste, nothing `check` could refuse


def test_a_partly_mapped_block_parses_and_keeps_the_mapped_tags() -> None:
    nodes = [variable("press1", "temp"), variable("press1", "good")]
    text = source_block(nodes, "opc.tcp://127.0.0.1:4840/", "plc", INSECURE, PLANT)
    [source] = yaml.safe_load(text)["sources"]
    assert source["groups"] == [
        {"tags": [{"node": "nsu=urn:x;s=press1.good", "machine": "press1", "signal": "good"}]}
    ]


def _browse(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    return subprocess.run([exe, "browse", *args], capture_output=True, text=True, timeout=60, check=False)


def test_plant_without_config_is_a_usage_error() -> None:
    # Nothing listens on port 1: the command must stop before trying to connect.
    result = _browse("opc.tcp://127.0.0.1:1/", "--plant", "examples/demo-line.yaml")
    assert result.returncode == 2
    assert "--plant goes with --config" in result.stderr


def test_an_invalid_plant_stops_browse_before_connecting(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("sites: [\n")
    result = _browse("opc.tcp://127.0.0.1:1/", "--config", "--plant", str(broken))
    assert result.returncode == 2
    assert "broken.yaml:2 (file): not valid YAML" in result.stderr
    assert "nothing was browsed" in result.stderr
