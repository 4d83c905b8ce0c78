"""One pipeline per state directory: an OS lock held for the life of the process that writes it.

Two pipelines on one state directory would write the same checkpoint, points and outboxes (and,
with the fixed MQTT client id, knock each other off the broker). Every command that writes a
state directory (``run``, ``demo``, ``replay --state-dir``, the kafka ``sink`` role) takes an
exclusive ``flock`` on ``<state-dir>/plantstream.lock`` first and keeps it until it exits; a
second one finds it taken and stops, naming the PID written in the file by the holder.

Why ``flock`` rather than a PID file alone: the kernel releases the lock when the holder exits,
however it ends (``kill -9``, a crash, a power cut), so there is never a stale lock to clean up,
and no PID-reuse guess is needed to tell whether the holder still lives. The file itself stays
(deleting it could let two processes lock two different files of the same name).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from plantstream.private import PRIVATE_FILE_MODE, private_dir

__all__ = ["LOCK_FILE", "StateDirBusy", "StateDirLock"]

LOCK_FILE = "plantstream.lock"
"""The lock file's name in a state directory."""


class StateDirBusy(Exception):
    """Another process holds the state directory's lock."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        self.directory = directory
        self.pid = pid
        holder = f"PID {pid}" if pid is not None else "a process whose PID is not written yet"
        super().__init__(f"{directory} is in use by another plantstream ({holder})")


class StateDirLock:
    """An exclusive lock on a state directory (created 0700 if missing), held until :meth:`release`.

    Raises:
        StateDirBusy: another process (or another lock in this one) holds it.
        OSError: the directory or its lock file cannot be created.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        private_dir(directory)
        path = directory / LOCK_FILE
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _written_pid(descriptor)
            os.close(descriptor)
            raise StateDirBusy(directory, holder) from None
        except BaseException:
            os.close(descriptor)
            raise
        # The holder's PID, for the message the next one prints; the lock itself is the kernel's.
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        """Give the lock up (exiting does the same)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> StateDirLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _written_pid(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
