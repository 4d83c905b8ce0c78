"""State files are owner-only (0600) and the folders plantstream creates 0700, under umask 022."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import reading

from collectors.opcua_security import _application_certificate
from plantstream.private import open_private, private_dir
from plantstream.records import DeadLetter, Point
from runtimes.embedded import CHECKPOINT, EmbeddedPipeline
from runtimes.plant import load_and_resolve
from sinks.cbam_store import CbamStore
from sinks.files import JsonLinesSink
from sinks.outbox import Outbox

MINIMAL = Path(__file__).resolve().parents[2] / "examples" / "minimal.yaml"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual umask, under which a plain open() makes 0644 files and 0755 folders."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def point() -> Point:
    return Point(
        measurement="reading",
        tags={"site": "s", "line": "l", "machine": "m", "signal": "x"},
        fields={"value": 1.0, "quality": "good"},
        time=datetime(2026, 11, 28, 8, tzinfo=UTC),
    )


def letter() -> DeadLetter:
    return DeadLetter(
        ts=datetime(2026, 11, 28, 8, tzinfo=UTC),
        source="mqtt",
        where="t",
        reason="malformed",
        error="e",
        raw="x",
    )


def test_points_dead_letters_and_their_folders_are_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sink = JsonLinesSink(state)
    sink.write([point()])
    sink.dead_letter(letter())
    sink.close()
    for folder in (state, state / "points", state / "deadletter"):
        assert mode(folder) == 0o700, folder
    for file in (state / "points" / "2026-11-28.jsonl", state / "deadletter" / "2026-11-28.jsonl"):
        assert mode(file) == 0o600, file


async def test_the_opc_ua_client_key_and_its_folder_are_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    key, cert = await _application_certificate(state / "pki" / "line1-plc", "line1-plc")
    # The folder is owner-only before the key is written into it (the generator obeys the umask).
    for folder in (state / "pki", state / "pki" / "line1-plc"):
        assert mode(folder) == 0o700, folder
    assert mode(key) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN")
    assert cert.stat().st_size > 0


def test_the_checkpoint_is_owner_only(tmp_path: Path) -> None:
    plant, spec = load_and_resolve(MINIMAL)
    pipeline = EmbeddedPipeline(plant, spec, tmp_path / "state")
    pipeline.engine.push(reading(0, "power_kw", 1.0))
    private_dir(pipeline.state_dir)
    pipeline._checkpoint()
    pipeline.sink.close()
    assert mode(tmp_path / "state" / CHECKPOINT) == 0o600
    assert mode(tmp_path / "state") == 0o700


def test_the_outbox_and_the_cbam_ledger_are_owner_only_with_their_wal_files(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "state" / "outbox" / "influx.sqlite", max_bytes=1000)
    box.append([("s", ["a 1"])])
    with CbamStore(tmp_path / "state" / "cbam-ledger.sqlite", ["m"], "UTC") as store:
        store.commit()
        files = sorted((tmp_path / "state").glob("cbam-ledger.sqlite*"))
        files += sorted((tmp_path / "state" / "outbox").glob("influx.sqlite*"))
        assert any(f.name.endswith("-wal") for f in files), files  # the companions are checked too
        for file in files:
            assert mode(file) == 0o600, file
    box.close()
    assert mode(tmp_path / "state" / "outbox") == 0o700


def test_a_file_left_0644_by_an_older_version_is_tightened_when_opened(tmp_path: Path) -> None:
    old = tmp_path / "points" / "2026-11-28.jsonl"
    old.parent.mkdir(mode=0o755)
    old.write_text("{}\n")
    old.chmod(0o644)
    sink = JsonLinesSink(tmp_path)
    sink.write([point()])
    sink.close()
    assert mode(old) == 0o600
    assert mode(old.parent) == 0o700
    assert old.read_text().splitlines()[0] == "{}"  # appended to, not truncated


def test_a_folder_that_existed_keeps_its_mode(tmp_path: Path) -> None:
    """`--state-dir .` must not change the mode of the user's own folder."""
    tmp_path.chmod(0o755)
    private_dir(tmp_path)
    assert mode(tmp_path) == 0o755
    private_dir(tmp_path / "a" / "b")
    assert (mode(tmp_path / "a"), mode(tmp_path / "a" / "b")) == (0o700, 0o700)


def test_open_private_writes_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="writes only"):
        open_private(tmp_path / "f", "r")  # type: ignore[call-overload]
    with open_private(tmp_path / "f", "wb") as handle:
        handle.write(b"new")
    with open_private(tmp_path / "f", "w", encoding="utf-8") as text:
        text.write("truncated")
    assert (tmp_path / "f").read_text() == "truncated"
    assert mode(tmp_path / "f") == 0o600
