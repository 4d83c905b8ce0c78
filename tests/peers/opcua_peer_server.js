#!/usr/bin/env node
// An independent OPC UA peer for the collector's tests: a node-opcua server (issue #3), run as its
// own process by tests/component/test_opcua_peer.py so it can be stopped and started again on the
// same port.
//
// Usage: node tests/peers/opcua_peer_server.js PORT [PKI_DIR]
//
// Listens on opc.tcp://127.0.0.1:PORT/ with security mode None only (anonymous). In namespace
// urn:plantstream:peer, object "press" holds variables with string node ids:
//   s=press.state  Int32   2 or 3, toggled every second, with a SourceTimestamp
//   s=press.good   UInt32  +1 every 100 ms, with a SourceTimestamp
//   s=press.power  Double  changes every 100 ms, with a SourceTimestamp
// Prints "ready" on stdout once listening. Commands on stdin, one a line, each answered on stdout:
//   delete press.power   removes that node from the address space -> "deleted press.power"
//   subscriptions        -> "subscriptions N", N = subscriptions across all sessions
//   sessions             -> "sessions N"
//   historize            the three variables keep history from now on (node-opcua's in-memory
//                        historian, at most 10000 values each: HistoryRead raw with continuation
//                        points) -> "historized N", N = variables now historizing
// Errors are answered "error <text>". Exits cleanly (code 0) on SIGTERM or SIGINT or when stdin closes.
"use strict";

// stdout carries "ready" and the answers to commands, nothing else: node-opcua's own log lines
// (it writes them with console.log) go to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const {
    OPCUAServer,
    OPCUACertificateManager,
    MessageSecurityMode,
    SecurityPolicy,
    DataType,
    Variant,
    StatusCodes,
} = require("node-opcua");

const URI = "urn:plantstream:peer";

function answer(line) {
    process.stdout.write(`${line}\n`);
}

async function main() {
    const port = Number.parseInt(process.argv[2] ?? "", 10);
    if (!Number.isInteger(port) || port <= 0) {
        process.stderr.write("usage: node opcua_peer_server.js PORT [PKI_DIR]\n");
        process.exit(2);
    }
    // The server makes itself a certificate even for mode None: keep it in one folder per test run
    // (reused when the server is started again) instead of the user's configuration folder.
    const pki = process.argv[3] ?? path.join(os.tmpdir(), `plantstream-opcua-peer-${port}`);
    const certificates = (name) =>
        new OPCUACertificateManager({
            rootFolder: path.join(pki, name),
            automaticallyAcceptUnknownCertificate: true,
        });

    const server = new OPCUAServer({
        host: "127.0.0.1",
        hostname: "127.0.0.1",
        port,
        securityModes: [MessageSecurityMode.None],
        securityPolicies: [SecurityPolicy.None],
        allowAnonymous: true,
        disableDiscovery: true,
        serverCertificateManager: certificates("server"),
        userCertificateManager: certificates("user"),
        buildInfo: { productName: "plantstream OPC UA peer", softwareVersion: "1" },
    });
    await server.initialize();

    const addressSpace = server.engine.addressSpace;
    // Another namespace first, so ours is not at the first free index.
    addressSpace.registerNamespace("urn:plantstream:filler");
    const ns = addressSpace.registerNamespace(URI);
    const press = ns.addObject({
        organizedBy: addressSpace.rootFolder.objects,
        browseName: "press",
        nodeId: "s=press",
    });
    // minimumSamplingInterval 0 lets a client ask for every change as it is written (a sampling
    // interval of 0); press.good allows it, so a test can tell a value the client lost from one
    // the server's sampling never saw.
    const variable = (name, dataType, value, minimumSamplingInterval = 50) =>
        ns.addVariable({
            componentOf: press,
            browseName: name,
            nodeId: `s=press.${name}`,
            dataType,
            minimumSamplingInterval,
            value: new Variant({ dataType, value }),
        });
    const state = variable("state", DataType.Int32, 2);
    const good = variable("good", DataType.UInt32, 0, 0);
    const power = variable("power", DataType.Double, 1.5);
    const deleted = new Set();

    let count = 0;
    const ticker = setInterval(() => {
        count += 1;
        const now = new Date();
        good.setValueFromSource(new Variant({ dataType: DataType.UInt32, value: count }), StatusCodes.Good, now);
        if (count % 10 === 0) {
            const code = count % 20 === 0 ? 2 : 3;
            state.setValueFromSource(new Variant({ dataType: DataType.Int32, value: code }), StatusCodes.Good, now);
        }
        if (!deleted.has("press.power")) {
            power.setValueFromSource(
                new Variant({ dataType: DataType.Double, value: 10 + (count % 7) }),
                StatusCodes.Good,
                now,
            );
        }
    }, 100);

    await server.start();
    answer("ready");

    let stopping = false;
    async function stop() {
        if (stopping) {
            return;
        }
        stopping = true;
        clearInterval(ticker);
        try {
            await server.shutdown(0);
        } finally {
            process.exit(0);
        }
    }
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);

    const commands = readline.createInterface({ input: process.stdin });
    commands.on("line", (line) => {
        const [verb, argument] = line.trim().split(/\s+/, 2);
        try {
            if (verb === "delete" && argument) {
                const node = addressSpace.findNode(`ns=${ns.index};s=${argument}`);
                if (!node) {
                    answer(`error no node s=${argument}`);
                    return;
                }
                deleted.add(argument);
                addressSpace.deleteNode(node);
                answer(`deleted ${argument}`);
            } else if (verb === "subscriptions") {
                answer(`subscriptions ${server.currentSubscriptionCount}`);
            } else if (verb === "sessions") {
                answer(`sessions ${server.currentSessionCount}`);
            } else if (verb === "historize") {
                // Sets Historizing and the HistoryRead bit of AccessLevel; every value written from
                // now on is kept, bounded by maxOnlineValues.
                const kept = [state, good, power].filter((node) => !deleted.has(`press.${node.browseName.name}`));
                for (const node of kept) {
                    if (!node.historizing) {
                        addressSpace.installHistoricalDataNode(node, { maxOnlineValues: 10000 });
                    }
                }
                answer(`historized ${kept.length}`);
            } else if (verb) {
                answer(`error unknown command ${line.trim()}`);
            }
        } catch (err) {
            answer(`error ${err.message}`);
        }
    });
    commands.on("close", stop);
}

main().catch((err) => {
    process.stderr.write(`${err.stack ?? err}\n`);
    process.exit(1);
});
