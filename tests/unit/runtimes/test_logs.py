"""The commands' logging: a library's records below our own, the level from the environment."""

from __future__ import annotations

import logging

import pytest

from runtimes.logs import LibraryDemotion, setup_logging


def record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "text", None, None)


def test_a_librarys_records_are_demoted_and_shown_only_at_debug() -> None:
    at_info = LibraryDemotion(logging.INFO)
    warning = record("asyncua.client.client", logging.WARNING)
    assert not at_info.filter(warning)
    assert warning.levelno == logging.DEBUG
    assert warning.levelname == "DEBUG"
    assert LibraryDemotion(logging.DEBUG).filter(record("asyncua", logging.ERROR))
    # Our own records, and a logger whose name merely starts with the library's, pass unchanged.
    ours = record("plantstream.collectors.opcua", logging.WARNING)
    assert at_info.filter(ours)
    assert ours.levelno == logging.WARNING
    assert at_info.filter(record("asyncuax", logging.WARNING))


def test_an_unknown_level_in_the_environment_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTSTREAM_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit, match="PLANTSTREAM_LOG_LEVEL='loud' is not a level"):
        setup_logging(logging.INFO)
