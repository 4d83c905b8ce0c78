"""``plantstream tail``'s line per record: counters that show every increment, corrections that say so."""

from __future__ import annotations

import pytest

from runtimes.tail import number, render


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (427_013.0, "427,013"),  # a counter read as a Double: .4g would say 4.27e+05
        (427_014.0, "427,014"),  # ... and the next piece would look the same
        (18_848, "18,848"),
        (0.8333333333333333, "0.8333"),
        (1234.5678, "1,234.568"),
        (12.5, "12.5"),
        (1.0, "1"),
        (-0.5, "-0.5"),
        (1e38, "1e+38"),  # beyond 2**53 a float is no count any more
        (float("inf"), "inf"),
        (True, "True"),
        ("running", "running"),
        (None, "None"),
    ],
)
def test_a_number_is_shown_in_full_with_thousands_separators(value: object, shown: str) -> None:
    assert number(value) == shown


def point(revision: int) -> dict[str, object]:
    return {
        "measurement": "oee",
        "tags": {"site": "s", "line": "l", "machine": "m1", "window": "1m"},
        "fields": {"availability": 0.76, "good_count": 42_700, "revision": revision},
        "time": "2026-03-02T08:00:00Z",
    }


def test_a_corrected_window_shows_its_revision() -> None:
    assert render(point(2)) == (
        "[cyan]2026-03-02T08:00:00Z[/cyan] [bold]oee[/bold] s/l/m1 [magenta]rev 2[/magenta] "
        "availability=0.76, good_count=42,700, revision=2"
    )
    assert "rev" not in render(point(0)).replace("revision=0", "")


def test_a_reading_of_a_counter_shows_every_piece() -> None:
    reading = {"ts": "2026-03-02T08:00:00Z", "machine": "m1", "signal": "total_count", "value": 427_013.0}
    assert render(reading).endswith("m1.total_count = [green]427,013[/green]")
