"""``plantstream demo`` end to end: the simulator, the embedded pipeline and the file sink."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_runs_by_itself_and_writes_oee_energy_and_carbon_points(tmp_path: Path) -> None:
    exe = shutil.which("plantstream", path=str(Path(sys.executable).parent))
    assert exe
    state = tmp_path / "demo"
    result = subprocess.run(
        [exe, "demo", "--duration", "8", "--no-ui", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    points = [
        json.loads(line) for f in (state / "points").glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    measurements = {p["measurement"] for p in points}
    assert {"oee", "energy", "carbon", "reading"} <= measurements
    machines = {p["tags"].get("machine") for p in points if p["measurement"] == "oee"}
    assert {"press1", "cnc1", "packer1"} <= machines
    oven = [p for p in points if p["measurement"] == "carbon" and p["tags"].get("machine") == "oven1"]
    assert any(p["fields"]["scope1_co2e_kg"] > 0 for p in oven), "the gas oven burns natural gas: Scope 1"
    assert (state / "checkpoint.json").exists()
    assert "points written to" in result.stderr
    assert "press1: shift" in result.stderr
