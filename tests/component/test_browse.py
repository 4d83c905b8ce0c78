"""``plantstream browse`` against a real asyncua server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from services import OpcUaTestServer
from support import one_line_plant

from plantstream.plant import parse_plant
from runtimes.browse import browse

URI = "urn:plantstream:test"


async def test_browse_lists_variables_with_nsu_ids_types_and_access(opcua_server: OpcUaTestServer) -> None:
    nodes = await browse(opcua_server.endpoint, depth=3)
    by_id = {n.node_id: n for n in nodes}
    assert by_id[f"nsu={URI};s=press.good"].data_type == "UInt32"
    assert by_id[f"nsu={URI};s=press.state"].data_type == "Int32"
    assert by_id[f"nsu={URI};s=press.power"].path[-2:] == ("press", "power")
    assert "r" in (by_id[f"nsu={URI};s=press.power"].access or "")
    # The standard Server object is left out unless asked for.
    assert not any(n.path[0] == "Server" for n in nodes)


PLANT_WITH_PRESS = one_line_plant(
    "- id: press\n  ideal_cycle_s: 1\n  signals: {good: good_count, State: state}\n"
)


def test_browse_config_with_plant_is_a_block_check_accepts(
    opcua_server: OpcUaTestServer, tmp_path: Path
) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    plant_file = tmp_path / "plant.yaml"
    plant_file.write_text(PLANT_WITH_PRESS, encoding="utf-8")
    result = subprocess.run(
        [
            exe,
            "browse",
            opcua_server.endpoint,
            "--config",
            "--plant",
            str(plant_file),
            "--state-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    block = yaml.safe_load(result.stdout)
    [source] = block["sources"]
    assert source["security"] == {"mode": "None", "allow_insecure": True}
    tags = {t["node"]: (t["machine"], t["signal"]) for t in source["groups"][0]["tags"]}
    # good maps as it is; state maps to the plant's `State` (only the case differs).
    assert tags == {
        f"nsu={URI};s=press.good": ("press", "good"),
        f"nsu={URI};s=press.state": ("press", "State"),
    }
    # flag, power and the server's session count are there, commented out with the reason.
    assert (
        f"# - {{node: 'nsu={URI};s=press.power', machine: press, signal: power}}  # machine 'press' has no "
        "signal 'power'" in result.stdout
    )
    assert "3 tag(s) commented out" in result.stderr
    # Pasted under the plant unchanged, `check` accepts it.
    plant_file.write_text(PLANT_WITH_PRESS + result.stdout, encoding="utf-8")
    checked = subprocess.run(
        [exe, "check", "-c", str(plant_file)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    parse_plant(plant_file.read_text(encoding="utf-8"))


def test_browse_config_without_plant_says_the_names_are_guesses(
    opcua_server: OpcUaTestServer, tmp_path: Path
) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    result = subprocess.run(
        [exe, "browse", opcua_server.endpoint, "--config", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [source] = yaml.safe_load(result.stdout)["sources"]
    tags = {t["node"]: (t["machine"], t["signal"]) for t in source["groups"][0]["tags"]}
    assert tags[f"nsu={URI};s=press.good"] == ("press", "good")
    assert result.stdout.startswith("# machine and signal are the browse names")
    assert "--plant FILE" in result.stderr


def test_browse_an_unreachable_endpoint_is_one_clear_line(tmp_path: Path) -> None:
    from services import free_port

    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/"
    result = subprocess.run(
        [exe, "browse", endpoint], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert endpoint in result.stderr
    assert "Traceback" not in result.stderr
