"""scripts/test and scripts/quickstart: prerequisites named first, in one line; a phase line before each step.

Nothing here installs anything: ``scripts/test --check`` only looks, and the phase tests stop the
scripts at their first step with a stand-in Python that exits at once. The scripts run from a copy
of scripts/ and tests/kafka/pom.xml in a temporary folder, so they cannot touch the checkout.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

# A stand-in Python: answers the prerequisite probe (``-c``) with success, and stops the script at
# its first real use, saying so on stdout so the order of lines shows what ran first.
FAKE_PYTHON = """#!/bin/sh
case "$1" in -c) exit 0;; esac
echo "FAKE-PYTHON $*"
exit 3
"""


def executable(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` as an executable script."""
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of what the scripts read: scripts/ and the Kafka pom."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "scripts", repo / "scripts")
    (repo / "tests" / "kafka").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "kafka" / "pom.xml", repo / "tests" / "kafka" / "pom.xml")
    return repo


def path_without(tmp_path: Path, hidden: set[str]) -> str:
    """A PATH with every command of the current PATH except ``hidden`` (symlinks in one folder)."""
    folder = tmp_path / "bin-without"
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not Path(directory).is_dir():
            continue
        for entry in Path(directory).iterdir():
            target = folder / entry.name
            if entry.name in hidden or target.exists() or target.is_symlink():
                continue
            if entry.is_file() and os.access(entry, os.X_OK):
                target.symlink_to(entry)
    return str(folder)


def fake_tools(tmp_path: Path, node_version: str = "v20.11.1") -> Path:
    """Stand-ins for every tool scripts/test needs, so its checks pass on any machine."""
    folder = tmp_path / "fake-bin"
    folder.mkdir()
    executable(folder / "node", f"#!/bin/sh\necho {node_version}\n")
    for tool in ("npm", "mosquitto", "mosquitto_pub", "victoria-metrics", "java", "mvn"):
        executable(folder / tool, "#!/bin/sh\necho should-not-run >&2\nexit 9\n")
    return folder


def run(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_check_names_a_missing_npm_in_one_line_and_changes_nothing(checkout: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, {"npm", "node", "npx"}), "HOME": str(tmp_path)}
    result = run(checkout / "scripts" / "test", env, "--check")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("scripts/test: missing prerequisites: ")
    assert "Node.js 20+ and npm" in lines[0]
    assert result.stdout == ""
    assert not (checkout / ".venv").exists()


def test_check_names_an_old_node_and_every_other_missing_tool_on_the_same_line(
    checkout: Path, tmp_path: Path
) -> None:
    # Node.js 18 is too old; Mosquitto is hidden too; as a non-root user nothing can be installed,
    # so both are named. (As root, a missing Debian package is installed later, not refused.)
    fakes = fake_tools(tmp_path, node_version="v18.19.0")
    (fakes / "mosquitto_pub").unlink()
    hidden = {"node", "npm", "mosquitto_pub", "id"}
    # `id` says we are not root, so the script does not plan an apt-get install.
    executable(fakes / "id", "#!/bin/sh\necho 1000\n")
    path = f"{fakes}{os.pathsep}{path_without(tmp_path, hidden)}"
    env = {**os.environ, "PATH": path, "HOME": str(tmp_path)}
    result = run(checkout / "scripts" / "test", env, "--check")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "Node.js 20+ (found v18.19.0)" in line
    assert "mosquitto and mosquitto_pub" in line


def test_check_passes_when_everything_is_there(checkout: Path, tmp_path: Path) -> None:
    fakes = fake_tools(tmp_path)
    env = {**os.environ, "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
    result = run(checkout / "scripts" / "test", env, "--check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("scripts/test: prerequisites OK")


def test_the_test_script_prints_a_phase_line_before_its_first_step(checkout: Path, tmp_path: Path) -> None:
    fakes = fake_tools(tmp_path)
    python = executable(tmp_path / "python-stand-in", FAKE_PYTHON)
    env = {
        **os.environ,
        "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PYTHON": str(python),
    }
    result = run(checkout / "scripts" / "test", env)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("== venv")
    assert lines[1] == "FAKE-PYTHON -m venv .venv"
    assert "should-not-run" not in result.stderr


def test_the_quickstart_prints_a_phase_line_before_its_first_step(checkout: Path, tmp_path: Path) -> None:
    python = executable(tmp_path / "python-stand-in", FAKE_PYTHON)
    env = {**os.environ, "HOME": str(tmp_path), "PYTHON": str(python)}
    result = run(checkout / "scripts" / "quickstart", env)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("== venv")
    assert lines[1] == "FAKE-PYTHON -m venv .venv"


def test_every_step_of_the_scripts_has_a_phase_line() -> None:
    # The long steps (pip, apt-get, npm, Maven) each follow an "== " line, and Maven runs in batch
    # mode without transfer progress (no escape codes), pip without its progress bar.
    test_script = (ROOT / "scripts" / "test").read_text()
    phases = ("== venv", "== pip", "== apt-get", "== mosquitto", "== npm", "== mvn", "== ruff", "== pytest")
    for phase in phases:
        assert phase in test_script
    assert "mvn -B --no-transfer-progress" in test_script
    for script in (test_script, (ROOT / "scripts" / "quickstart").read_text()):
        assert "pip install --quiet" not in script
        assert "pip install -q" not in script
    quickstart = (ROOT / "scripts" / "quickstart").read_text()
    for phase in ("== venv", "== pip", "== check", "== replay", "== demo"):
        assert phase in quickstart
