"""Output files that appear whole or not at all (``replay --out``, ``simulate --truth``).

The text is written to a hidden temporary file beside the target, made durable, and renamed over
the target at the end: a run that fails or is interrupted leaves neither a partial file nor the
temporary one, and a file of the same name from an earlier run stays as it was.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = ["written_at_end"]


@contextmanager
def written_at_end(path: Path) -> Iterator[TextIO]:
    """A text file (UTF-8) that replaces ``path`` only when the block ends without an exception.

    A target that exists and is not a regular file (``/dev/null``, a named pipe) is written
    directly: it cannot be replaced, and holds nothing partial to clean up. The new file gets the
    old file's permissions, or those ``open()`` would give it (0666 less the umask).

    Raises:
        OSError: the temporary file cannot be created; ``filename`` is ``path``, not the temporary.
    """
    try:
        existing: os.stat_result | None = path.stat()
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with path.open("w", encoding="utf-8") as handle:
            yield handle
        return
    # Same directory, so the rename is atomic; a random part, so two runs never share it.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with open(descriptor, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if existing is not None:
            os.chmod(temporary, stat.S_IMODE(existing.st_mode))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
