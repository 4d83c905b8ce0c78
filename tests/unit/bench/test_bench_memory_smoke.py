"""Smoke test of the offline memory harness (bench/memory.py) on a small plant.

Nothing about RSS or time is asserted (the machine is shared): what the engine keeps is, from
arithmetic on the readings pushed.
"""

from __future__ import annotations

import io
import sys

from bench.memory import deep_size, run


def test_the_engine_reports_what_it_keeps_each_minute() -> None:
    log = io.StringIO()
    minutes, top = run(tags=20, rate=2.0, minutes=2, trace=5, log=log)
    assert [m.minute for m in minutes] == [1, 2]
    first = minutes[0].kept
    # 20 meters at 2 Hz: 120 readings each a minute, 5 s of them (10) held for ordering.
    assert first["held_readings"] == 20 * 10
    # The first minute's window is not closed yet: every released reading is kept, 18 B each.
    assert first["history_readings"] == 20 * (120 - 10)
    assert first["history_bytes"] == first["history_readings"] * (4 + 4 + 8 + 1 + 1)
    assert len(top) == 5
    assert "minute   2" in log.getvalue()


def test_an_object_shared_by_two_owners_is_counted_once_for_the_first() -> None:
    shared = [1.5, 2.5]
    first, second = {"a": shared}, (shared,)
    seen: set[int] = set()
    one = deep_size(first, seen)
    two = deep_size(second, seen)
    # The dict, its key, the list and its two floats; then the tuple alone.
    assert one == sys.getsizeof(first) + sys.getsizeof("a") + sys.getsizeof(shared) + 2 * sys.getsizeof(1.5)
    assert two == sys.getsizeof(second)


def test_the_engine_gives_its_bytes_by_owner() -> None:
    log = io.StringIO()
    run(tags=20, rate=2.0, minutes=1, log=log, by_owner=True)
    text = log.getvalue()
    assert "before any reading: bytes by owner" in text
    assert "after 1 simulated minutes: bytes by owner" in text
    # 20 meters and the site's ten machines (bench.endtoend.plant_document).
    assert "(30 machines)" in text
