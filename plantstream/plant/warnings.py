"""Warnings about a valid plant file: what works but exposes the plant, or leaves a signal unfed.

None of these stops the pipeline: a loopback test rig without TLS is fine, and a signal may be fed
by a replayed file. ``plantstream check`` prints them, ``plantstream run`` logs them at start.

Security (the OPC UA and MQTT transport of credentials and readings):

- an OPC UA source with message security ``None`` on an endpoint that is not this machine: readings,
  commands and the user's password cross the network in clear (OPC 10000-2, Security Model);
- an MQTT source without TLS (``mqtt://``) to a broker that is not this machine; a ``tls:`` block
  does not help without ``mqtts://``;
- an InfluxDB sink over plain ``http://`` to another machine: the token travels in clear;
- a password, token or secret written literally in the file instead of a ``${VAR}`` reference: plant
  files are copied, committed and mailed.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from plantstream.plant.loader import KeyPath, LoadedPlant, PlantIssue
from plantstream.plant.mapping import unmapped_signals
from plantstream.plant.schema import InfluxDbSink, MqttSource, OpcUaSource

__all__ = ["plant_warnings", "security_warnings"]

_SECRET_WORDS = ("password", "token", "secret")


def plant_warnings(plant: LoadedPlant) -> list[PlantIssue]:
    """Every warning about ``plant``: security first, then signals no source delivers."""
    unfed = [plant.issue(path, message) for path, message in unmapped_signals(plant.model)]
    return [*security_warnings(plant), *unfed]


def security_warnings(plant: LoadedPlant) -> list[PlantIssue]:
    """Transport without security off this machine, and secrets written literally, in file order."""
    out: list[PlantIssue] = []
    model = plant.model
    for i, source in enumerate(model.sources):
        if isinstance(source, OpcUaSource):
            host = urlsplit(source.endpoint).hostname or ""
            if source.security.mode == "None" and not is_loopback(host):
                out.append(
                    plant.issue(
                        ("sources", i, "security", "mode"),
                        f"source {source.id}: OPC UA security None to {host}, which is not this machine: "
                        "readings and passwords cross the network in clear (use SignAndEncrypt)",
                    )
                )
        elif isinstance(source, MqttSource):
            url = urlsplit(source.url)
            host = url.hostname or ""
            if url.scheme != "mqtts" and not is_loopback(host):
                extra = " (the tls: block is used only with mqtts://)" if source.tls is not None else ""
                out.append(
                    plant.issue(
                        ("sources", i, "url"),
                        f"source {source.id}: MQTT without TLS to {host}, which is not this machine: "
                        f"readings and passwords cross the network in clear (use mqtts://){extra}",
                    )
                )
    for i, sink in enumerate(model.sinks):
        if isinstance(sink, InfluxDbSink):
            url = urlsplit(sink.url)
            host = url.hostname or ""
            if url.scheme == "http" and not is_loopback(host):
                out.append(
                    plant.issue(
                        ("sinks", i, "url"),
                        f"sink {sink.id}: InfluxDB over http to {host}, which is not this machine: "
                        "the token crosses the network in clear (use https://)",
                    )
                )
    for path, value in _secrets(model, ()):
        if value and path not in plant.from_environment:
            out.append(
                plant.issue(
                    path,
                    f"{path[-1]} is written literally in the plant file: write ${{VARIABLE}} "
                    "and set the variable in the environment",
                )
            )
    return sorted(out, key=lambda issue: issue.line)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address (no DNS lookup)."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _secrets(node: Any, path: KeyPath) -> list[tuple[KeyPath, str]]:
    """(path, text) of every field whose name says it holds a secret, anywhere in the model."""
    found: list[tuple[KeyPath, str]] = []
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if isinstance(value, str):
                # token_env names a variable; it is not the token.
                if any(word in name for word in _SECRET_WORDS) and not name.endswith("_env"):
                    found.append(((*path, name), value))
            else:
                found.extend(_secrets(value, (*path, name)))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found.extend(_secrets(item, (*path, index)))
    elif isinstance(node, dict):
        for key, item in node.items():
            found.extend(_secrets(item, (*path, str(key))))
    return found
