"""A small asyncua server for the collector's tests, run as its own process so it can be stopped,
restarted on the same port, or paused with SIGSTOP.

Variables (namespace ``urn:plantstream:test``): ``s=press.state`` (Int32 code), ``s=press.good``
(UInt32 counter, +1 every tick), ``s=press.power`` (Double), ``s=press.flag`` (Boolean); with
``--late-node``, ``s=press.late`` appears after 2 s. Every write carries a SourceTimestamp one
second before the server time, so the tests can tell the two apart; every three seconds
``press.power`` carries a BadSensorFailure status instead of a value. ``s=server.sessions``
(UInt32) is the number of client sessions the server holds, those whose connection is gone but
which it keeps until their timeout included.

With ``--secure DIR`` the server offers only SignAndEncrypt/Basic256Sha256, with a certificate it
generates into DIR (``server.der``) on first use.

Usage: python tests/opcua_test_server.py PORT [--late-node] [--secure DIR]
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

URI = "urn:plantstream:test"


async def main(port: int, late_node: bool, secure: Path | None) -> None:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/")
    if secure is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    else:
        uri = "urn:plantstream:test-server"
        key, cert = secure / "server.key.pem", secure / "server.der"
        if not cert.exists():
            await setup_self_signed_certificate(
                key, cert, uri, "localhost", [ExtendedKeyUsageOID.SERVER_AUTH], {"commonName": "test server"}
            )
        await server.set_application_uri(uri)
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
    # Register some namespaces first, so the test namespace is not at a predictable index.
    await server.register_namespace("urn:plantstream:filler")
    idx = await server.register_namespace(URI)
    press = await server.nodes.objects.add_object(idx, "press")
    state = await press.add_variable(
        ua.NodeId("press.state", idx), "state", ua.Variant(2, ua.VariantType.Int32)
    )
    good = await press.add_variable(
        ua.NodeId("press.good", idx), "good", ua.Variant(0, ua.VariantType.UInt32)
    )
    power = await press.add_variable(
        ua.NodeId("press.power", idx), "power", ua.Variant(1.5, ua.VariantType.Double)
    )
    await press.add_variable(ua.NodeId("press.flag", idx), "flag", ua.Variant(True, ua.VariantType.Boolean))
    sessions = await server.nodes.objects.add_variable(
        ua.NodeId("server.sessions", idx), "sessions", ua.Variant(0, ua.VariantType.UInt32)
    )
    held = 0
    async with server:
        print("ready", flush=True)
        count = 0
        started = asyncio.get_running_loop().time()
        added = False
        while True:
            await asyncio.sleep(0.1)
            count += 1
            now = datetime.now(tz=UTC)
            # asyncua keeps no session count in its diagnostics nodes: ask its session registry.
            if len(server.iserver._external_sessions) != held:
                held = len(server.iserver._external_sessions)
                await sessions.write_value(ua.Variant(held, ua.VariantType.UInt32))
            source = now - timedelta(seconds=1)
            await good.write_value(
                ua.DataValue(
                    ua.Variant(count, ua.VariantType.UInt32), SourceTimestamp=source, ServerTimestamp=now
                )
            )
            await power.write_value(
                ua.DataValue(
                    ua.Variant(10.0 + count % 7, ua.VariantType.Double),
                    SourceTimestamp=source,
                    ServerTimestamp=now,
                )
            )
            if count % 20 == 0:
                code = 3 if count % 40 == 0 else 2
                await state.write_value(
                    ua.DataValue(ua.Variant(code, ua.VariantType.Int32), SourceTimestamp=source)
                )
            if count % 30 == 15:
                # A value of bad quality every three seconds: kept by the collector, never dropped.
                await power.write_value(
                    ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure))
                )
            if late_node and not added and asyncio.get_running_loop().time() - started > 2:
                await press.add_variable(
                    ua.NodeId("press.late", idx), "late", ua.Variant(7, ua.VariantType.Int32)
                )
                added = True


if __name__ == "__main__":
    flags = sys.argv[2:]
    secure_dir = Path(flags[flags.index("--secure") + 1]) if "--secure" in flags else None
    asyncio.run(main(int(sys.argv[1]), "--late-node" in flags, secure_dir))
