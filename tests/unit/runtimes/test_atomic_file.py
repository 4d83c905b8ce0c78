"""``runtimes.atomic_file``: an output appears whole at the end, or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from runtimes.atomic_file import written_at_end


def test_nothing_is_left_when_the_block_fails(tmp_path: Path) -> None:
    target = tmp_path / "points.jsonl"
    target.write_text("the previous run\n")

    def interrupted_half_way() -> None:
        with written_at_end(target) as handle:
            handle.write("half of it")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_half_way()
    assert target.read_text() == "the previous run\n"
    assert os.listdir(tmp_path) == ["points.jsonl"]


def test_a_finished_block_replaces_the_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "points.jsonl"
    target.write_text("old\n")
    target.chmod(0o640)
    with written_at_end(target) as handle:
        handle.write("new\n")
        # Not there yet: only a hidden temporary beside it.
        assert target.read_text() == "old\n"
        [temporary] = [p for p in tmp_path.iterdir() if p != target]
        assert temporary.name.startswith(".points.jsonl.")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["points.jsonl"]


def test_a_new_file_gets_the_umask_as_open_would(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with written_at_end(tmp_path / "new.json") as handle:
            handle.write("{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~0o027


def test_a_device_is_written_directly() -> None:
    with written_at_end(Path(os.devnull)) as handle:
        handle.write("discarded\n")
    assert Path(os.devnull).is_char_device()


def test_a_folder_that_does_not_exist_is_an_error_naming_the_target(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "points.jsonl"
    with pytest.raises(FileNotFoundError) as caught, written_at_end(target):
        pass
    assert caught.value.filename == str(target)
