"""``plantstream collect``: its bound on sends not yet delivered, and how it says its dead letters."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from plantstream.plant.schema import Kafka
from runtimes.deadletter_log import DeadLetterLog
from runtimes.kafka import collect
from runtimes.kafka.collect import Collector
from runtimes.kafka.topics import dead_letter
from runtimes.plant import load_and_resolve

ROOT = Path(__file__).resolve().parents[3]


def collector(tmp_path: Path) -> Collector:
    plant, spec = load_and_resolve(ROOT / "examples" / "minimal.yaml")
    return Collector(plant, spec, Kafka(), tmp_path)


def delivered() -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


async def test_delivered_sends_are_forgotten_without_waiting_for_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collect, "_IN_FLIGHT", 8)
    c = collector(tmp_path)
    loop = asyncio.get_running_loop()
    waiting = [loop.create_future() for _ in range(3)]
    c._pending = [delivered(), *waiting, delivered(), delivered(), delivered(), delivered()]
    # 3 of 8 still pending, under half the bound (4): nothing to wait for, so this returns at once.
    await asyncio.wait_for(c._settle(), 1)
    assert c._pending == waiting


async def test_past_half_the_bound_only_the_oldest_sends_are_awaited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collect, "_IN_FLIGHT", 8)
    c = collector(tmp_path)
    loop = asyncio.get_running_loop()
    waiting = [loop.create_future() for _ in range(6)]
    c._pending = [delivered(), delivered(), *waiting]
    settling = asyncio.create_task(c._settle())
    await asyncio.sleep(0)
    assert not settling.done()  # 6 pending > 4: the 2 oldest must be delivered first
    for future in waiting[:2]:
        future.set_result(None)
    await asyncio.wait_for(settling, 1)
    assert c._pending == waiting[2:]  # the 4 newest are still in the air


async def test_a_failed_send_is_raised_not_forgotten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "_IN_FLIGHT", 8)
    c = collector(tmp_path)
    failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    failed.set_exception(ConnectionError("broker gone"))
    c._pending = [delivered(), failed, delivered()]
    with pytest.raises(ConnectionError, match="broker gone"):
        await c._settle()


def test_dead_letters_are_said_once_per_reason_and_source_then_summed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plantstream.collect")
    c = collector(tmp_path)
    moment = [0.0]
    c.dead_letter_log = DeadLetterLog(collect._log, clock=lambda: moment[0])  # a clock moved by hand
    for i in range(500):  # a sender inventing a machine per message, as a misconfigured gateway does
        where = f"plant/l1/ghost{i}/power"
        c._dead_letter(dead_letter("meters", where, "unknown_machine", "no such machine", "1"))
    assert c.stats.dead_letters == 500
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1, said
    assert said[0].startswith("dead letter from source meters, reason unknown_machine, at plant/l1/ghost0")
    moment[0] = 61.0  # past the 60 s interval: the next digest sums the 499 others
    c.dead_letter_log.digest()
    digest = caplog.records[-1].getMessage()
    assert digest == "dead letters in the last 61 s: source meters unknown_machine: 499"
