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


def stop(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "start": "2026-03-02T03:41:37Z",
        "duration_s": 276.0,
        "micro": False,
        "loss": "small_stop",
        "code": "302",
        "cause": "first",
        "revision": 0,
    }
    return {
        "measurement": "stop",
        "tags": {
            "site": "hcm",
            "line": "line1",
            "machine": "packer1",
            "category": "down",
            "reason": "film break",
            "reason_group": "material",
        },
        "fields": {**base, **fields},
        "time": "2026-03-02T03:41:37Z",
    }


def test_a_stop_reads_as_a_sentence_with_its_reason_and_cause() -> None:
    # 276 s is 4.6 min.
    assert render(stop()) == (
        "[cyan]2026-03-02T03:41:37Z[/cyan] [bold]stop[/bold] hcm/line1/packer1 stopped 4.6 min (down): "
        "film break (material) [dim]code 302[/dim], first cause"
    )
    corrected = render(stop(cause="operator", revision=1))
    assert corrected.endswith(
        "film break (material) [dim]code 302[/dim], given by an operator [magenta]rev 1[/magenta]"
    )
    micro = render(stop(duration_s=6.0, micro=True, cause="last"))
    assert "stopped 6 s (down): film break (material) [dim]code 302[/dim], last cause, micro-stop" in micro


def test_a_stop_without_a_reason_or_with_markup_in_its_names_stays_one_plain_line() -> None:
    record = stop()
    record["tags"] = {**record["tags"], "reason": "unassigned", "reason_group": "unassigned"}  # type: ignore[dict-item]
    record["fields"] = {"duration_s": 90.0, "revision": 0, "cause": "first"}
    assert render(record).endswith("stopped 1.5 min (down): unassigned")
    record["tags"] = {**record["tags"], "reason": "[red]jam", "reason_group": "unknown"}  # type: ignore[dict-item]
    line = render(record)
    assert "\\[red]jam (unknown)" in line  # escaped: rich shows it as written
    garbled = {"measurement": "stop", "tags": {}, "fields": {"duration_s": "long"}, "time": "t"}
    assert render(garbled) == "[cyan]t[/cyan] [bold]stop[/bold]  stopped ? (?): ?"
