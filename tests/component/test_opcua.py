"""The OPC UA collector against real asyncua servers (in their own processes)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from services import OpcUaTestServer, free_port

from collectors.backoff import Backoff
from collectors.opcua import OpcUaCollector
from plantstream.plant import parse_plant
from plantstream.plant.schema import OpcUaSource
from plantstream.records import Quality, Reading

URI = "urn:plantstream:test"
PLANT = """
sites:
  - id: demo
    timezone: UTC
    country: VN
    lines:
      - id: l1
        machines:
          - id: press
            ideal_cycle_s: 1
            signals:
              {{state: state, good_count: good_count, power_kw: power_kw, flag: product, late: reject_count,
               sessions: total_count}}
sources:
  - type: opcua
    id: plc
    endpoint: {endpoint}
    security: {{mode: None, allow_insecure: true}}
    watchdog_s: {watchdog}
    groups:
      - publishing_interval_ms: 100
        sampling_interval_ms: 50
        tags:
{tags}
"""
TAGS = {
    "state": "nsu={uri};s=press.state",
    "good_count": "nsu={uri};s=press.good",
    "power_kw": "nsu={uri};s=press.power",
}
FAST = Backoff(first_s=0.05, cap_s=0.5)


def _tag_lines(tags: dict[str, str], uri: str) -> str:
    return "\n".join(
        f'          - {{node: "{node.format(uri=uri)}", machine: press, signal: {signal}}}'
        for signal, node in tags.items()
    )


def source(
    endpoint: str, tags: dict[str, str] | None = None, watchdog: float = 30, uri: str = URI
) -> OpcUaSource:
    lines = _tag_lines(tags or TAGS, uri)
    [src] = parse_plant(PLANT.format(endpoint=endpoint, tags=lines, watchdog=watchdog)).model.sources
    assert isinstance(src, OpcUaSource)
    return src


async def take(
    collector: OpcUaCollector, n: int, timeout: float = 15, signal: str | None = None
) -> list[Reading]:
    out: list[Reading] = []
    iterator: AsyncIterator[Reading] = collector.readings()

    async def collect() -> None:
        async for reading in iterator:
            if signal is None or reading.signal == signal:
                out.append(reading)
            if len(out) >= n:
                return

    await asyncio.wait_for(collect(), timeout)
    return out


async def wait_for(condition, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_values_timestamps_quality_and_counters_arrive(opcua_server: OpcUaTestServer) -> None:
    async with OpcUaCollector(source(opcua_server.endpoint), backoff=FAST) as collector:
        readings = await take(collector, 60)
    by_signal: dict[str, list[Reading]] = {}
    for r in readings:
        by_signal.setdefault(r.signal, []).append(r)
    assert set(by_signal) >= {"state", "good_count", "power_kw"}
    goods = [r.value for r in by_signal["good_count"] if r.quality is Quality.GOOD]
    assert goods == sorted(goods)  # a cumulative counter, in order
    assert all(isinstance(v, int) for v in goods)
    some = by_signal["good_count"][-1]
    # The server stamps the source one second before its own time; the policy is "source".
    assert some.server_ts is not None
    assert (some.server_ts - some.ts).total_seconds() == pytest.approx(1, abs=0.05)
    assert some.source == "plc"
    assert some.status_code == 0
    assert collector.health.skew_server_minus_source_s == pytest.approx(1, abs=0.05)
    assert collector.health.items_ok == 3
    assert collector.health.items_failed == {}


async def test_bad_values_are_kept_with_their_status_code(opcua_server: OpcUaTestServer) -> None:
    async with OpcUaCollector(source(opcua_server.endpoint), backoff=FAST) as collector:
        readings = await take(collector, 60, timeout=20, signal="power_kw")
        bad = [r for r in readings if r.quality is Quality.BAD]
    assert bad, "the server writes a BadSensorFailure value every three seconds"
    assert bad[0].status_code == 0x808C0000  # BadSensorFailure
    assert bad[0].value is None


async def test_an_unknown_node_fails_alone_and_is_retried_until_it_exists() -> None:
    server = OpcUaTestServer(port=free_port(), late_node=True)
    server.start()
    try:
        tags = {**TAGS, "late": "nsu={uri};s=press.late"}
        collector = OpcUaCollector(source(server.endpoint, tags), backoff=FAST, retry_failed_s=0.5)
        async with collector:
            await take(collector, 5, signal="good_count")
            late_label = f"nsu={URI};s=press.late"
            if collector.health.items_failed:  # the node is created two seconds after the server starts
                assert collector.health.items_failed == {late_label: "BadNodeIdUnknown"}
            late = await take(collector, 1, signal="late")
        assert late[0].value == 7
        assert collector.health.items_failed == {}
    finally:
        server.stop()


async def test_a_namespace_the_server_lacks_is_a_clear_per_item_error(opcua_server: OpcUaTestServer) -> None:
    tags = {**TAGS, "late": "nsu=urn:nobody;s=x"}
    async with OpcUaCollector(source(opcua_server.endpoint, tags), backoff=FAST) as collector:
        await take(collector, 5, signal="good_count")
        error = collector.health.items_failed["nsu=urn:nobody;s=x"]
    assert "namespace URI 'urn:nobody' is not on the server" in error


async def test_an_unreachable_endpoint_is_reported_and_retried() -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/"
    async with OpcUaCollector(source(endpoint), backoff=FAST) as collector:
        await wait_for(lambda: collector.health.last_error is not None)
        assert "connection refused" in (collector.health.last_error or "")
        assert endpoint in (collector.health.last_error or "")
        assert not collector.health.connected


async def test_it_resumes_by_itself_after_the_server_restarts(opcua_server: OpcUaTestServer) -> None:
    async with OpcUaCollector(source(opcua_server.endpoint), backoff=FAST) as collector:
        await take(collector, 3, signal="good_count")
        await asyncio.to_thread(opcua_server.stop)
        await wait_for(lambda: not collector.health.connected)
        await asyncio.to_thread(opcua_server.start)
        # The restarted server counts from 0 again: seeing small values proves fresh data.
        fresh = await take(collector, 3, signal="good_count", timeout=10)
        assert collector.health.connects == 2
        assert collector.health.reconnects == 1
    assert fresh[-1].value is not None


class Gathered:
    """Readings of a running collector, per signal, each with the session (connect) it came in."""

    def __init__(self, collector: OpcUaCollector) -> None:
        self.collector = collector
        self.by_signal: dict[str, list[tuple[int, Reading]]] = {}
        self._task: asyncio.Task[None] | None = None

    def values(self, signal: str, session: int | None = None) -> list[int]:
        """The integer values of ``signal``, of one session (1 = the first) or of all."""
        return [
            int(reading.value)  # type: ignore[arg-type]
            for connects, reading in self.by_signal.get(signal, [])
            if session is None or connects == session
        ]

    async def __aenter__(self) -> Gathered:
        async def gather() -> None:
            async for reading in self.collector.readings():
                entry = (self.collector.health.connects, reading)
                self.by_signal.setdefault(reading.signal, []).append(entry)

        self._task = asyncio.create_task(gather())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


SESSIONS_TAGS = {**TAGS, "sessions": "nsu={uri};s=server.sessions"}


async def test_the_watchdog_rebuilds_a_silent_session_and_closes_the_old_one(
    opcua_server: OpcUaTestServer,
) -> None:
    collector = OpcUaCollector(source(opcua_server.endpoint, SESSIONS_TAGS, watchdog=1.5), backoff=FAST)
    async with collector, Gathered(collector) as gathered:
        await wait_for(lambda: len(gathered.values("good_count")) >= 3)
        opcua_server.pause()  # connected, but nothing comes: no data, no keep-alive, no clock
        try:
            await wait_for(lambda: collector.health.watchdog_trips >= 1, timeout=20)
        finally:
            opcua_server.resume()
        # A second of the new session's values: a change of the session count would be among them.
        await wait_for(lambda: len(gathered.values("good_count", session=2)) >= 10, timeout=20)
        assert collector.health.watchdog_trips == 1
    # The old session was closed before the new one was made: the server never held two. (Left
    # open, it would keep it for session_timeout_s, 60 s.)
    assert max(gathered.values("sessions")) == 1


STALLS = 6
STALL_S = 3.0
BETWEEN_STALLS_S = 7.0


@pytest.mark.slow
async def test_a_server_that_stalls_for_seconds_keeps_its_session_and_loses_nothing(
    opcua_server: OpcUaTestServer,
) -> None:
    """SIGSTOP the server for 3 s, six times: a busy server, not a lost one.

    The group publishes every 100 ms, so each stall is 30 publishing intervals long, longer than
    asyncua's default one-second probe and than 1.5 keep-alive periods of its defaults; the full
    pattern of the issue (3 s every 30 s for 10 minutes) runs in bench/opcua_stall.py.
    """
    collector = OpcUaCollector(source(opcua_server.endpoint, SESSIONS_TAGS), backoff=FAST)
    async with collector, Gathered(collector) as gathered:
        await wait_for(lambda: len(gathered.values("good_count")) >= 5)
        for _ in range(STALLS):
            opcua_server.pause()
            await asyncio.sleep(STALL_S)
            opcua_server.resume()
            # The values the server makes after the stall arrive (the server counts +1 a tick).
            stalled_at = gathered.values("good_count")[-1]
            await wait_for(lambda at=stalled_at: gathered.values("good_count")[-1] >= at + 10)
            await asyncio.sleep(BETWEEN_STALLS_S - 1)
        health = collector.health
    # The first value is the catch-up read's; the counter may move on before the subscription
    # exists (a subscription starts from the current value). From the subscription's first value
    # on, every value, once each, in order: none lost.
    subscribed = gathered.values("good_count")[1:]
    assert subscribed == list(range(subscribed[0], subscribed[-1] + 1))
    assert (health.connects, health.reconnects, health.watchdog_trips) == (1, 0, 0), health.last_error
    assert health.dropped_events == 0
    # The server held one session throughout (the first value read may predate ours: 0).
    sessions = gathered.values("sessions")
    assert max(sessions) == 1
    assert sessions[-1] == 1


def secure_source(endpoint: str, security: str) -> OpcUaSource:
    text = PLANT.format(endpoint=endpoint, tags=_tag_lines(TAGS, URI), watchdog=30)
    text = text.replace("{mode: None, allow_insecure: true}", security)
    [src] = parse_plant(text).model.sources
    assert isinstance(src, OpcUaSource)
    return src


def _fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


async def test_sign_and_encrypt_with_a_pinned_certificate_and_clear_refusals(tmp_path: Path) -> None:
    server = OpcUaTestServer(port=free_port(), secure_dir=tmp_path)
    server.start()
    try:
        pin = _fingerprint((tmp_path / "server.der").read_bytes())
        state = tmp_path / "state"
        good = secure_source(server.endpoint, f'{{mode: SignAndEncrypt, server_certificate_sha256: "{pin}"}}')
        async with OpcUaCollector(good, backoff=FAST, state_dir=state) as collector:
            await take(collector, 3, signal="good_count")
            thumbprint = collector.health.client_certificate_sha256
        # The application certificate was generated on first use and is kept for the next run.
        assert (state / "pki" / "plc" / "client.cert.der").exists()
        async with OpcUaCollector(good, backoff=FAST, state_dir=state) as collector:
            await take(collector, 1, signal="good_count")
            assert collector.health.client_certificate_sha256 == thumbprint

        wrong = secure_source(server.endpoint, '{mode: SignAndEncrypt, server_certificate_sha256: "AB:CD"}')
        async with OpcUaCollector(wrong, backoff=FAST, state_dir=state) as collector:
            await wait_for(lambda: collector.health.last_error is not None)
            assert f"has SHA-256 {pin}, not the pinned AB:CD" in (collector.health.last_error or "")

        unpinned = secure_source(server.endpoint, "{mode: SignAndEncrypt}")
        async with OpcUaCollector(unpinned, backoff=FAST, state_dir=state) as collector:
            await wait_for(lambda: collector.health.last_error is not None)
            assert f"pin it with server_certificate_sha256: {pin}" in (collector.health.last_error or "")

        trusted = tmp_path / "trusted"
        trusted.mkdir()
        (trusted / "server.der").write_bytes((tmp_path / "server.der").read_bytes())
        by_folder = secure_source(
            server.endpoint, f"{{mode: SignAndEncrypt, trusted_certificates_dir: {trusted}}}"
        )
        async with OpcUaCollector(by_folder, backoff=FAST, state_dir=state) as collector:
            await take(collector, 1, signal="good_count")

        sign_only = secure_source(server.endpoint, f'{{mode: Sign, server_certificate_sha256: "{pin}"}}')
        async with OpcUaCollector(sign_only, backoff=FAST, state_dir=state) as collector:
            await wait_for(lambda: collector.health.last_error is not None)
            assert "offers no endpoint with Sign/Basic256Sha256" in (collector.health.last_error or "")
    finally:
        server.stop()


def test_mode_none_needs_allow_insecure() -> None:
    from plantstream.plant import PlantError

    text = PLANT.format(
        endpoint="opc.tcp://127.0.0.1:4840",
        tags='          - {node: "ns=2;s=x", machine: press, signal: state}',
        watchdog=30,
    )
    with pytest.raises(PlantError, match="set allow_insecure: true"):
        parse_plant(text.replace("{mode: None, allow_insecure: true}", "{mode: None}"))


def _custom_source(endpoint: str, group: str, tags: str) -> OpcUaSource:
    text = PLANT.format(endpoint=endpoint, tags=tags, watchdog=30)
    text = text.replace("      - publishing_interval_ms: 100\n        sampling_interval_ms: 50\n", group)
    [src] = parse_plant(text).model.sources
    assert isinstance(src, OpcUaSource)
    return src


async def test_items_are_created_in_batches_no_larger_than_the_cap(opcua_server: OpcUaTestServer) -> None:
    text = PLANT.format(endpoint=opcua_server.endpoint, tags=_tag_lines(TAGS, URI), watchdog=30)
    text = text.replace("    watchdog_s: 30\n", "    watchdog_s: 30\n    max_items_per_call: 1\n")
    [src] = parse_plant(text).model.sources
    assert isinstance(src, OpcUaSource)
    async with OpcUaCollector(src, backoff=FAST) as collector:
        seen = {r.signal for r in await take(collector, 40)}
        assert collector.health.items_ok == 3
    assert seen == {"state", "good_count", "power_kw"}


async def test_index_form_browse_paths_and_polling(
    opcua_server: OpcUaTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    # urn:plantstream:test is the server's fourth namespace (0 standard, 1 the server, 2 filler);
    # the test server gives its variables browse names in namespace 0.
    tags = (
        '          - {node: "ns=3;s=press.good", machine: press, signal: good_count}\n'
        '          - {browse_path: "0:Objects/3:press/0:power", machine: press, signal: power_kw}'
    )
    src = _custom_source(opcua_server.endpoint, "      - mode: poll\n        poll_interval_ms: 100\n", tags)
    async with OpcUaCollector(src, backoff=FAST) as collector:
        readings = await take(collector, 20)
    assert {r.signal for r in readings} == {"good_count", "power_kw"}
    assert "names a namespace by index" in caplog.text


# -- repeat_unchanged_s: a tag a live subscription does not report is unchanged, and is said so --
# The test server's ``press.flag`` is written once and never changes; ``press.good`` changes every
# 100 ms and so moves the source's clock on.

UNCHANGED_TAGS = {"flag": "nsu={uri};s=press.flag", "good_count": "nsu={uri};s=press.good"}


def repeating_source(endpoint: str, repeat: str) -> OpcUaSource:
    text = PLANT.format(endpoint=endpoint, tags=_tag_lines(UNCHANGED_TAGS, URI), watchdog=30)
    group = "      - publishing_interval_ms: 100\n"
    assert text.count(group) == 1
    text = text.replace(group, f"{group}        repeat_unchanged_s: {repeat}\n")
    [src] = parse_plant(text).model.sources
    assert isinstance(src, OpcUaSource)
    return src


async def test_a_silent_tag_is_taken_again_at_the_time_the_subscription_vouches_for(
    opcua_server: OpcUaTestServer,
) -> None:
    async with OpcUaCollector(repeating_source(opcua_server.endpoint, "0.5"), backoff=FAST) as collector:
        readings: list[Reading] = []
        flags: list[int] = []  # indices of the flag's readings in ``readings``
        while len(flags) < 4:
            [reading] = await take(collector, 1, timeout=20)
            if reading.signal == "flag":
                flags.append(len(readings))
            readings.append(reading)
        repeats = collector.health.unchanged_repeats
    first, *again = (readings[i] for i in flags)
    assert first.value is True
    assert first.quality is Quality.GOOD
    assert [r.value for r in again] == [True, True, True]
    assert all(r.quality is Quality.GOOD and r.status_code == 0 for r in again)
    times = [first.ts] + [r.ts for r in again]
    assert times == sorted(set(times)), "each repeat is later than the one before"
    # Never behind what the subscription had delivered: a repeat is not late data.
    for i in flags[1:]:
        assert readings[i].ts >= max(r.ts for r in readings[:i])
        assert readings[i].server_ts is None  # no sample of the server's: a vouched time
    assert repeats >= 3


async def test_without_the_setting_a_silent_tag_is_taken_once(opcua_server: OpcUaTestServer) -> None:
    async with OpcUaCollector(repeating_source(opcua_server.endpoint, "null"), backoff=FAST) as collector:
        readings: list[Reading] = []
        counts: list[Reading] = []
        # Until the counter's readings span 3 s of the source's clock: six times the 0.5 s above.
        while not counts or (counts[-1].ts - counts[0].ts).total_seconds() <= 3:
            readings += await take(collector, 1, timeout=20)
            counts = [r for r in readings if r.signal == "good_count"]
        assert collector.health.unchanged_repeats == 0
    assert [r.value for r in readings if r.signal == "flag"] == [True]  # the catch-up read's
