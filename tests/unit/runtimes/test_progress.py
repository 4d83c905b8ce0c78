"""``runtimes.progress``: a bar for a person at a terminal, nothing for a pipe or a log."""

from __future__ import annotations

import io

from rich.console import Console

from runtimes.progress import UPDATE_EVERY_LINES, TerminalProgress
from runtimes.replay import OverlongLine


def terminal() -> tuple[Console, io.StringIO]:
    screen = io.StringIO()
    return Console(file=screen, force_terminal=True, width=100), screen


def test_off_a_terminal_the_lines_pass_and_nothing_is_written() -> None:
    console, screen = terminal()
    lines: list[bytes | OverlongLine] = [b"a\n", OverlongLine(5000, b"b"), b"c\n"]
    with TerminalProgress(console, "replay f", 10, enabled=False) as progress:
        assert list(progress.bytes_read(lines)) == lines
    assert screen.getvalue() == ""


class RecordedProgress(TerminalProgress):
    """Records where the bar was moved to."""

    moves: list[int | None]

    def update(self, completed: int | None = None, description: str | None = None) -> None:
        self.moves.append(completed)
        super().update(completed, description)


def test_on_a_terminal_the_bar_counts_the_bytes_read_and_is_gone_at_the_end() -> None:
    console, screen = terminal()
    lines = [b"x" * 9 + b"\n"] * (2 * UPDATE_EVERY_LINES + 1)
    with RecordedProgress(console, "replay f", 10 * len(lines), enabled=True) as progress:
        progress.moves = []
        assert list(progress.bytes_read(lines)) == lines
    # Two updates on the way (every UPDATE_EVERY_LINES lines of 10 bytes), one at the end.
    assert progress.moves == [10 * UPDATE_EVERY_LINES, 20 * UPDATE_EVERY_LINES, 10 * len(lines)]
    assert "replay f" in screen.getvalue()
