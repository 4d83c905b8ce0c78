"""The state directory's lock: exclusive, naming its holder, released with the holder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runtimes.statedir import LOCK_FILE, StateDirBusy, StateDirLock


def test_a_second_lock_names_the_directory_and_the_pid_holding_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with StateDirLock(state):
        # flock is per open file: a second open in the same process is refused like another process.
        with pytest.raises(StateDirBusy) as refused:
            StateDirLock(state)
        assert refused.value.pid == os.getpid()
        assert str(refused.value) == f"{state} is in use by another plantstream (PID {os.getpid()})"
    with StateDirLock(state):  # released: free again
        pass


def test_the_directory_and_the_lock_file_are_owner_only(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        lock = StateDirLock(tmp_path / "state")
    finally:
        os.umask(before)
    try:
        assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "state" / LOCK_FILE).stat().st_mode) == 0o600
        assert (tmp_path / "state" / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def test_a_holder_whose_pid_is_not_written_yet_is_still_refused(tmp_path: Path) -> None:
    with StateDirLock(tmp_path):
        (tmp_path / LOCK_FILE).write_text("")  # as between the holder's flock and its write
        with pytest.raises(StateDirBusy, match="a process whose PID is not written yet"):
            StateDirLock(tmp_path)


@pytest.mark.parametrize(
    "command",
    [
        ["sink", "-c", "{kafka_plant}", "--state-dir", "{state}"],
        ["demo", "--duration", "1", "--no-ui", "--state-dir", "{state}", "--http-port", "0"],
        ["replay", "-c", "{plant}", "--readings", "-", "--to-sinks", "--state-dir", "{state}"],
    ],
    ids=["sink", "demo", "replay --to-sinks"],
)
def test_every_command_that_writes_a_state_directory_takes_its_lock_first(
    tmp_path: Path, command: list[str]
) -> None:
    from click.testing import CliRunner

    from runtimes.cli import main

    minimal = Path(__file__).resolve().parents[3] / "examples" / "minimal.yaml"
    kafka_plant = tmp_path / "kafka.yaml"
    kafka_plant.write_text(minimal.read_text() + "\nkafka: {bootstrap: 127.0.0.1:9}\n")
    plant = tmp_path / "influx.yaml"
    plant.write_text(
        minimal.read_text()
        + "\nsinks:\n  - {type: influxdb, id: tsdb, url: http://127.0.0.1:9, org: o, bucket: b,"
        + " token_env: NO_TOKEN}\n"
    )
    state = tmp_path / "state"
    names = {"kafka_plant": str(kafka_plant), "plant": str(plant), "state": str(state)}
    with StateDirLock(state):
        result = CliRunner().invoke(main, [part.format(**names) for part in command], input="")
    assert result.exit_code == 2, result.output
    assert f"{state} is in use by another plantstream (PID {os.getpid()})" in result.output
    assert sorted(p.name for p in state.iterdir()) == [LOCK_FILE]  # nothing else was written
