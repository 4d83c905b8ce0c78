"""``plantstream browse`` against a real asyncua server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from services import OpcUaTestServer

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


def test_browse_config_is_a_valid_source_block(opcua_server: OpcUaTestServer, tmp_path: Path) -> None:
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
    block = yaml.safe_load(result.stdout)
    [source] = block["sources"]
    assert source["security"] == {"mode": "None", "allow_insecure": True}
    tags = {t["node"]: (t["machine"], t["signal"]) for t in source["groups"][0]["tags"]}
    assert tags[f"nsu={URI};s=press.good"] == ("press", "good")
    # Pasted under a plant with that machine, it validates.
    plant = {
        "sites": [
            {
                "id": "s",
                "timezone": "UTC",
                "country": "VN",
                "lines": [
                    {
                        "id": "l",
                        "machines": [{"id": "press", "signals": {"good": "good_count"}, "ideal_cycle_s": 1}],
                    }
                ],
            }
        ],
        "sources": block["sources"],
    }
    parse_plant(yaml.safe_dump(plant))


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
