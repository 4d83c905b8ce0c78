"""The ``plantstream`` command line. Errors are one clear line each; exit codes are documented.

Exit codes: 0 success; 1 the data was bad and ``--strict`` was given; 2 the plant file or the
command line is invalid; ``replay`` stopped by Ctrl-C 130, by SIGTERM 143 (128 + the signal).
"""

from __future__ import annotations

# The commands register themselves on the group as their modules are imported.
from runtimes.cli import check, kafka, operator, pipeline, replay, report  # noqa: F401
from runtimes.cli.group import main

__all__ = ["main"]
