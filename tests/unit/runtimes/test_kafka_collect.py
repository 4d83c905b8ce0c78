"""``plantstream collect``'s bound on sends not yet delivered: it keeps reading while the broker answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from plantstream.plant.schema import Kafka
from runtimes.kafka import collect
from runtimes.kafka.collect import Collector
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
