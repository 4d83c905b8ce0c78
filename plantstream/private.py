"""Owner-only state: the folders plantstream creates are 0700 and its state files 0600.

A state directory holds the plant's production and energy history, refused payloads (which can
carry whatever a device sent) and the outboxes' queued points; none of it is for other users of
the machine. The modes are set explicitly, not left to the umask: a umask can only take
permissions away, so creating with 0600 / 0700 and then setting the same mode on what already
existed (a file written by an older version under umask 022) gives owner-only whatever it is.

A folder that existed before (``--state-dir .``, a mounted volume) keeps its own mode: changing
the mode of a folder plantstream did not make would surprise its owner, and the files inside are
owner-only anyway. Sub-folders of a state directory (``points/``, ``deadletter/``, ``outbox/``) are
plantstream's and are tightened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal, TextIO, overload

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "open_private", "private_dir", "private_sqlite"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Create ``path`` and its missing parents as 0700 folders; return ``path``.

    Args:
        path: the folder.
        tighten: also set 0700 on ``path`` when it already exists (a sub-folder of a state
            directory, which is plantstream's own); parents that existed are never changed.
    """
    missing: list[Path] = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        os.chmod(created, PRIVATE_DIR_MODE)
    if tighten and not missing:
        os.chmod(path, PRIVATE_DIR_MODE)
    return path


@overload
def open_private(path: Path, mode: Literal["a", "w"] = "a", *, encoding: str | None = None) -> TextIO: ...
@overload
def open_private(path: Path, mode: Literal["ab", "wb"], *, encoding: None = None) -> BinaryIO: ...
def open_private(path: Path, mode: str = "a", *, encoding: str | None = None) -> IO[Any]:
    """Open ``path`` for writing as an owner-only (0600) file.

    Args:
        path: the file; created if missing, its mode set to 0600 if it existed.
        mode: ``"a"`` / ``"ab"`` to append, ``"w"`` / ``"wb"`` to truncate.
        encoding: for text modes.

    Raises:
        ValueError: ``mode`` is not one of the writing modes above.
        OSError: the file cannot be opened.
    """
    if mode.rstrip("b") not in ("a", "w"):
        raise ValueError(f"open_private writes only (mode a, ab, w or wb), not {mode!r}")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        return os.fdopen(descriptor, mode, encoding=encoding)
    except BaseException:
        os.close(descriptor)
        raise


def private_sqlite(path: Path) -> Path:
    """Make ``path`` an owner-only SQLite file before ``sqlite3.connect`` opens it; return it.

    SQLite creates a database's journal, WAL and shared-memory files with the mode of the
    database file, so a 0600 database keeps its companions 0600 too; companions left by an
    older version are tightened here.
    """
    private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.chmod(companion, PRIVATE_FILE_MODE)
    return path
