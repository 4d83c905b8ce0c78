"""The dead-letter folder: refused input kept with its reason, bounded per letter and in total.

A letter keeps at most :data:`RAW_KEPT_BYTES` of its payload (``raw``): a device that sends a
megabyte of garbage per message must not fill the disk with copies of it. A shortened letter says
so with the payload's full length in UTF-8 bytes (``raw_bytes``) and its SHA-256 (``raw_sha256``),
enough to tell whether two refusals were of the same payload, or to match one kept elsewhere.

The folder is bounded in bytes (:data:`DEFAULT_MAX_BYTES` unless configured) with the policy
``drop_oldest``: letters are written to segments, ``<day>.jsonl`` and, when a segment reaches an
eighth of the bound, ``<day>.1.jsonl``, ``<day>.2.jsonl`` and so on; when a new letter would take
the folder past its bound, the oldest segments are deleted, and the letters and bytes deleted are
counted (``/metrics``). A flood thus keeps its newest letters, and the first ones of the day
survive until the flood fills the bound. The folder's size is read once when the first letter is
written, so the bound holds across restarts.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TextIO

from plantstream.private import open_private, private_dir
from plantstream.records import DeadLetter

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ERROR_KEPT_CHARS",
    "MIN_MAX_BYTES",
    "POLICY",
    "RAW_KEPT_BYTES",
    "DeadLetterFolder",
    "bounded_payload",
]

RAW_KEPT_BYTES = 4096
"""The most of a payload a letter keeps (UTF-8 bytes, cut at a character boundary)."""

ERROR_KEPT_CHARS = 1024
"""The most of an error message a letter keeps (messages can quote the input)."""

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""The folder's default bound: 256 MiB."""

MIN_MAX_BYTES = 64 * 1024
"""The smallest bound accepted: room for a few segments of full-size letters."""

POLICY = "drop_oldest"
"""What happens at the bound: the oldest segments make room."""

_SEGMENTS_PER_BOUND = 8
_SEGMENT_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.(\d+))?\.jsonl$")
_CHUNK = 1 << 20


def bounded_payload(raw: str) -> dict[str, str | int]:
    """``{"raw": raw}``, or for a payload over :data:`RAW_KEPT_BYTES` its prefix with the length and digest.

    The prefix is cut at a character boundary (a character cut in half is left out), so it is
    never longer than the bound; ``raw_bytes`` and ``raw_sha256`` are of the whole payload in UTF-8.
    """
    data = raw.encode("utf-8", "surrogatepass")
    if len(data) <= RAW_KEPT_BYTES:
        return {"raw": raw}
    return {
        "raw": data[:RAW_KEPT_BYTES].decode("utf-8", "ignore"),
        "raw_bytes": len(data),
        "raw_sha256": hashlib.sha256(data).hexdigest(),
    }


class DeadLetterFolder:
    """Appends dead letters to ``<directory>/deadletter/``, bounded as the module says.

    Args:
        directory: the state directory; the folder is its ``deadletter/``.
        max_bytes: the folder's bound in bytes (at least :data:`MIN_MAX_BYTES`).

    Raises:
        ValueError: ``max_bytes`` is below :data:`MIN_MAX_BYTES`.
    """

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"the dead-letter folder's bound must be at least {MIN_MAX_BYTES} bytes")
        self.folder = directory / "deadletter"
        self.max_bytes = max_bytes
        self.segment_bytes = max_bytes // _SEGMENTS_PER_BOUND
        self.written = 0
        """Letters written since this folder was opened."""
        self.truncated = 0
        """Letters whose payload was shortened to :data:`RAW_KEPT_BYTES`."""
        self.dropped_letters = 0
        """Letters deleted to stay within the bound (``drop_oldest``)."""
        self.dropped_bytes = 0
        """Bytes deleted to stay within the bound."""
        self._segments: dict[Path, int] | None = None  # path -> bytes, oldest first; read lazily
        self._handle: TextIO | None = None
        self._retired: list[TextIO] = []  # segments left since the last flush: synced by the next
        self._closing: list[TextIO] = []  # handed out by the last flush: closed by the next
        self._current: Path | None = None
        self._size = 0

    @property
    def size(self) -> int:
        """The folder's size in bytes (its segments), as far as this process knows."""
        return self._size

    def write(self, letter: DeadLetter) -> None:
        """Append one letter (its payload shortened if need be), making room by ``drop_oldest``."""
        line = (self._encoded(letter) + "\n").encode("utf-8", "surrogatepass")
        segments = self._known_segments()
        handle = self._segment_for(letter.ts.strftime("%Y-%m-%d"), len(line))
        while self._size + len(line) > self.max_bytes:
            oldest = next((path for path in segments if path != self._current), None)
            if oldest is None:
                break  # only the segment being written is left: it is at most a segment long
            self._drop(oldest)
        handle.write(line.decode("utf-8", "surrogatepass"))
        handle.flush()
        assert self._current is not None
        segments[self._current] += len(line)
        self._size += len(line)
        self.written += 1

    def flush(self) -> list[int]:
        """Hand what was written to the OS; return the descriptors to ``os.fsync``.

        They stay open until the next call: the runtime forces them to disk in a worker thread
        while letters go on being written, and its checkpoints (each of which calls this once)
        follow one another, so a segment left meanwhile is closed only after it was synced.
        """
        for handle in self._closing:
            handle.close()
        self._closing, self._retired = self._retired, []
        handles = [*self._closing, *([self._handle] if self._handle is not None else [])]
        for handle in handles:
            handle.flush()
        return [handle.fileno() for handle in handles]

    def close(self) -> None:
        """Close every segment (once nothing syncs them any more)."""
        for handle in (*self._closing, *self._retired):
            handle.close()
        self._closing, self._retired = [], []
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self._current = None

    def _encoded(self, letter: DeadLetter) -> str:
        if len(letter.error) > ERROR_KEPT_CHARS:
            # An error message can quote the input it refused: bounded like the payload.
            shown = letter.error[:ERROR_KEPT_CHARS]
            letter = letter.model_copy(update={"error": f"{shown}... ({len(letter.error)} characters)"})
        kept = bounded_payload(letter.raw)
        if len(kept) == 1:
            return letter.to_json()
        self.truncated += 1
        text = letter.model_copy(update={"raw": kept["raw"]}).to_json()
        return f'{text[:-1]},"raw_bytes":{kept["raw_bytes"]},"raw_sha256":"{kept["raw_sha256"]}"}}'

    def _known_segments(self) -> dict[Path, int]:
        if self._segments is None:
            private_dir(self.folder, tighten=True)
            found: list[tuple[tuple[str, int], Path, int]] = []
            for path in self.folder.iterdir():
                match = _SEGMENT_NAME.match(path.name)
                if match is not None and path.is_file():
                    order = (match.group(1), int(match.group(2) or 0))
                    found.append((order, path, path.stat().st_size))
            self._segments = {path: size for _, path, size in sorted(found)}
            self._size = sum(self._segments.values())
        return self._segments

    def _segment_for(self, day: str, length: int) -> TextIO:
        segments = self._known_segments()
        current = self._current
        if (
            self._handle is not None
            and current is not None
            and current.name.startswith(day)
            and (segments[current] + length <= self.segment_bytes or not segments[current])
        ):
            return self._handle
        # The newest segment of the day if it has room, else the next one.
        number = 0
        for path in segments:
            match = _SEGMENT_NAME.match(path.name)
            if match is not None and match.group(1) == day:
                number = max(number, int(match.group(2) or 0))
        path = self._segment_path(day, number)
        if segments.get(path, 0) and segments[path] + length > self.segment_bytes:
            path = self._segment_path(day, number + 1)
        if self._handle is not None:
            self._retired.append(self._handle)  # its last letters are synced by the next flush
        self._handle = open_private(path, "a", encoding="utf-8")
        self._current = path
        segments.setdefault(path, 0)
        return self._handle

    def _segment_path(self, day: str, number: int) -> Path:
        return self.folder / (f"{day}.jsonl" if number == 0 else f"{day}.{number}.jsonl")

    def _drop(self, path: Path) -> None:
        assert self._segments is not None
        letters = 0
        try:
            with path.open("rb") as old:
                while chunk := old.read(_CHUNK):
                    letters += chunk.count(b"\n")
            path.unlink()
        except FileNotFoundError:
            pass  # deleted by someone else meanwhile: nothing to count
        self.dropped_letters += letters
        size = self._segments.pop(path)
        self.dropped_bytes += size
        self._size -= size
