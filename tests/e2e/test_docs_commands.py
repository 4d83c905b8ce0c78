"""The shell blocks of README.md and docs/*.md run as written.

Every command in a ```sh (or bash, shell, console) block is either run, in the order the page
gives, or listed in NOT_RUN with the reason it cannot run here (it needs Docker, a broker, a server
or a running pipeline; it runs for minutes or forever; it stands for the reader's own files).
Each page runs in its own temporary folder holding a copy of examples/ and a `.venv` that points
at this environment, so what the commands write never lands in the checkout; the checkout's git
status is the same after the test as before.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.S | re.M)
pytestmark = pytest.mark.e2e

# Commands that are not run here, by the start of their text, with the reason. Every entry must
# still match a command in the docs (a test below), so the list cannot hide a command that is gone.
NEEDS_KAFKA = "needs a Kafka broker (docs/kafka.md; tests/component/test_kafka.py runs the roles)"
NEEDS_INFLUX = "needs an InfluxDB server (tests/component/test_influx.py runs the sink against one)"
BENCHMARK = "a benchmark: minutes of full load on the machine (docs/benchmarks.md)"
NOT_RUN: dict[str, str] = {
    "scripts/quickstart": "sets up .venv and runs the live demo; tests/e2e/test_scripts.py checks its steps",
    "scripts/test": "runs the whole suite, this test included",
    "cp .env.example .env": "prepares the compose stack, which needs Docker",
    "docker compose up": "needs Docker with the compose plugin",
    ".venv/bin/plantstream replay -c plant.yaml --readings -": "stands for the reader's own files",
    ".venv/bin/plantstream demo --duration 60": "a minute of live demo on fixed ports; test_demo.py runs it",
    ".venv/bin/plantstream run -c plant.yaml": "runs until Ctrl-C against the reader's plant",
    ".venv/bin/plantstream tail": "follows a running pipeline",
    ".venv/bin/plantstream reason": "needs a running pipeline; test_operator_reason.py runs it",
    "INFLUX_URL=": NEEDS_INFLUX,
    ".venv/bin/plantstream simulate": "serves OPC UA on port 4840; test_simulator.py runs it",
    ".venv/bin/plantstream browse": "needs the simulator (or a real OPC UA server) running",
    ".venv/bin/plantstream collect": NEEDS_KAFKA,
    ".venv/bin/plantstream process": NEEDS_KAFKA,
    ".venv/bin/plantstream sink": NEEDS_KAFKA,
    "plantstream collect": NEEDS_KAFKA,
    "plantstream process": NEEDS_KAFKA,
    "plantstream sink": NEEDS_KAFKA,
    ".venv/bin/python bench/": BENCHMARK,
    "$EDITOR": "opens an editor",
    ".venv/bin/python docker/grafana/make_dashboards.py": "rewrites the dashboards; test_grafana checks",
    ".venv/bin/pytest tests/unit/test_grafana.py": "part of the suite already",
    "plantstream replay -c examples/influx.yaml": NEEDS_INFLUX,
}

# Commands run with a smaller input than the page gives, with the reason. The page says the
# option exists, so the command run is one a reader may type too.
SMALLER: dict[str, tuple[str, str]] = {
    "examples/make_steel_year.py > year.jsonl": (
        "examples/make_steel_year.py --days 14 > year.jsonl",
        "a year takes ten seconds or more to replay; two weeks go through the same commands",
    ),
    "report cbam -c examples/steel-cbam.yaml --year 2026": (
        "report cbam -c examples/steel-cbam.yaml --year 2026 --allow-partial",
        "two weeks are 3.8 % of the year's operating hours: under the completeness threshold, so the "
        "report of the smaller input is signed as partial (docs/cbam.md says so)",
    ),
}


@dataclass(frozen=True)
class Command:
    """One command of a shell block: its page, the line it starts on, its text."""

    page: Path
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {self.text}"


def commands_of(page: Path) -> list[Command]:
    """The commands of a page's shell blocks: continuations joined, comments and blank lines dropped."""
    text = page.read_text(encoding="utf-8")
    commands = []
    for block in FENCE.finditer(text):
        if block.group(1) not in SHELL_LANGUAGES:
            continue
        first_line = text.count("\n", 0, block.start(2)) + 1
        pending: list[str] = []
        start = first_line
        for offset, raw in enumerate(block.group(2).splitlines()):
            line = raw.strip()
            if not pending:
                start = first_line + offset
                if not line or line.startswith("#"):
                    continue
            if line.endswith("\\"):
                pending.append(line[:-1].strip())
                continue
            pending.append(line)
            commands.append(Command(page, start, " ".join(pending)))
            pending = []
        assert not pending, f"{page}:{start}: a command ends with a backslash"
    return commands


def reason_not_run(command: Command) -> str | None:
    """Why ``command`` is not run here, or None when it is."""
    for prefix, reason in NOT_RUN.items():
        if command.text.startswith(prefix):
            return reason
    return None


def as_run(command: Command) -> str:
    """The command as it runs here: the same, or with the smaller input of SMALLER."""
    text = command.text
    for original, (smaller, _) in SMALLER.items():
        text = text.replace(original, smaller)
    return text


def sandbox(tmp_path: Path) -> Path:
    """A folder that looks like the repository's root to the docs' commands."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copytree(ROOT / "examples", root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    # `.venv/bin/plantstream` and `.venv/bin/python` are this environment's.
    (root / ".venv").mkdir()
    (root / ".venv" / "bin").symlink_to(Path(sys.executable).parent, target_is_directory=True)
    return root


def git_status() -> str:
    """The checkout's short git status (untracked files included)."""
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def all_commands() -> list[Command]:
    return [command for page in PAGES for command in commands_of(page)]


def pages_with_commands_run_here() -> list[Path]:
    """The pages with at least one command this test runs (the others' are all in NOT_RUN)."""
    return [page for page in PAGES if any(reason_not_run(c) is None for c in commands_of(page))]


@pytest.mark.parametrize("page", pages_with_commands_run_here(), ids=lambda page: page.name)
def test_the_commands_of_a_page_run_as_written(page: Path, tmp_path: Path) -> None:
    runnable = [command for command in commands_of(page) if reason_not_run(command) is None]
    root = sandbox(tmp_path)
    before = git_status()
    env = {**os.environ, "PATH": f"{root / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("VIRTUAL_ENV", None)
    last_output = ""
    for command in runnable:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", as_run(command)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (
            f"{command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        last_output = result.stdout
    if page.name == "cbam.md":
        # The walkthrough ends with the verifier's check, which says what the page promises.
        assert "report: signature and digests verified" in last_output
    assert git_status() == before, "a documented command wrote into the checkout"


def test_every_shell_command_is_run_or_has_a_reason() -> None:
    commands = all_commands()
    assert len(commands) > 20, "found too few commands: is the block parser broken?"
    run_here = [c for c in commands if reason_not_run(c) is None]
    # The pages a new user follows end to end: the README's replay and the CBAM walkthrough.
    assert any("make_steel_year.py" in c.text and c.page.name == "cbam.md" for c in run_here)
    assert any("verify report" in c.text and c.page.name == "README.md" for c in run_here)


def test_the_not_run_list_has_no_stale_entry() -> None:
    commands = all_commands()
    stale = [prefix for prefix in NOT_RUN if not any(c.text.startswith(prefix) for c in commands)]
    assert stale == [], f"NOT_RUN entries that match no documented command: {stale}"
    stale = [original for original in SMALLER if not any(original in c.text for c in commands)]
    assert stale == [], f"SMALLER entries that match no documented command: {stale}"


def test_the_block_parser_joins_continuations_and_skips_comments(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```sh\n# a comment\nA=1 \\\n  echo $A\n\necho two\n```\n\n```yaml\nkey: 1\n```\n"
    )
    assert [(c.line, c.text) for c in commands_of(page)] == [(5, "A=1 echo $A"), (8, "echo two")]
