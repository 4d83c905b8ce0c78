"""Smoke test of the offline memory harness (bench/memory.py) on a small plant.

Nothing about RSS or time is asserted (the machine is shared): what the engine keeps is, from
arithmetic on the readings pushed.
"""

from __future__ import annotations

import io

from bench.memory import run


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
