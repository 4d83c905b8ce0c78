"""``plantstream browse``: walk an OPC UA server's address space, print it, or draft a source block.

Node ids are printed in the ``nsu=<namespace URI>;`` form, which stays valid when a server's
namespace indices move. Children are browsed with bounded concurrency, so a large server is walked
quickly without flooding it.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from asyncua import Client, Node, ua

from collectors.opcua_security import secure_client
from plantstream.plant.schema import OpcUaSecurity, PlantModel

__all__ = ["BrowsedNode", "DraftTag", "browse", "draft_tags", "source_block"]

_ACCESS_BITS = ((1, "r"), (2, "w"), (4, "h"))


@dataclass(frozen=True)
class BrowsedNode:
    """One node found under Objects."""

    path: tuple[str, ...]
    node_id: str
    node_class: str
    data_type: str | None = None
    access: str | None = None

    @property
    def depth(self) -> int:
        """How far below Objects (1 for its children)."""
        return len(self.path)


async def browse(
    endpoint: str,
    *,
    depth: int = 4,
    security: OpcUaSecurity | None = None,
    pki: Path = Path("plantstream-data") / "pki" / "browse",
    concurrency: int = 8,
    include_server: bool = False,
    timeout_s: float = 10.0,
) -> list[BrowsedNode]:
    """Walk the address space below Objects, ``depth`` levels deep, in browse-name order.

    Raises:
        OSError, TimeoutError, asyncua.ua.UaError: the server could not be reached or refused.
        UntrustedServer: with message security, the server's certificate is not trusted.
    """
    security = security or OpcUaSecurity(mode="None", allow_insecure=True)
    client = Client(endpoint, timeout=timeout_s)
    await secure_client(client, security, "browse", pki)
    async with client:
        namespaces = await client.get_namespace_array()
        gate = asyncio.Semaphore(concurrency)
        walker = _Walker(client, namespaces, gate, depth, include_server)
        return await walker.walk(client.nodes.objects, ())


class _Walker:
    def __init__(
        self, client: Client, namespaces: list[str], gate: asyncio.Semaphore, depth: int, include_server: bool
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.gate = gate
        self.depth = depth
        self.include_server = include_server

    async def walk(self, node: Node, path: tuple[str, ...]) -> list[BrowsedNode]:
        async with self.gate:
            children = await node.get_children_descriptions()
        children = sorted(children, key=lambda ref: ref.BrowseName.Name or "")
        if not path and not self.include_server:
            children = [c for c in children if c.NodeId.NamespaceIndex != 0]
        variables = [c for c in children if c.NodeClass == ua.NodeClass.Variable]
        details = await self._details(variables)
        below = [
            self.walk(self.client.get_node(c.NodeId), (*path, c.BrowseName.Name))
            if len(path) + 1 < self.depth and c.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable)
            else _nothing()
            for c in children
        ]
        subtrees = await asyncio.gather(*below)
        out: list[BrowsedNode] = []
        for child, subtree in zip(children, subtrees, strict=True):
            data_type, access = details.get(child.NodeId.to_string(), (None, None))
            out.append(
                BrowsedNode(
                    path=(*path, child.BrowseName.Name),
                    node_id=self._nsu(child.NodeId),
                    node_class=child.NodeClass.name,
                    data_type=data_type,
                    access=access,
                )
            )
            out.extend(subtree)
        return out

    async def _details(
        self, variables: list[ua.ReferenceDescription]
    ) -> dict[str, tuple[str | None, str | None]]:
        if not variables:
            return {}
        params = ua.ReadParameters()
        for ref in variables:
            for attribute in (ua.AttributeIds.DataType, ua.AttributeIds.AccessLevel):
                target = ua.ReadValueId()
                target.NodeId = ref.NodeId
                target.AttributeId = attribute
                params.NodesToRead.append(target)
        async with self.gate:
            values = await self.client.uaclient.read(params)
        out = {}
        for index, ref in enumerate(variables):
            type_value, access_value = values[2 * index].Value, values[2 * index + 1].Value
            data_type = _type_name(type_value.Value if type_value is not None else None)
            bits = access_value.Value if access_value is not None and access_value.Value is not None else None
            access = (
                "".join(letter for bit, letter in _ACCESS_BITS if bits is not None and bits & bit) or None
            )
            out[ref.NodeId.to_string()] = (data_type, access)
        return out

    def _nsu(self, node_id: ua.NodeId) -> str:
        text: str = node_id.to_string()
        index = node_id.NamespaceIndex
        if index == 0:
            return text
        identifier = text.split(";", 1)[1]
        return f"nsu={self.namespaces[index]};{identifier}"


async def _nothing() -> list[BrowsedNode]:
    return []


def _type_name(type_id: ua.NodeId | None) -> str | None:
    if type_id is None:
        return None
    if type_id.NamespaceIndex == 0 and isinstance(type_id.Identifier, int):
        return str(ua.ObjectIdNames.get(type_id.Identifier, type_id.to_string()))
    return str(type_id.to_string())


def _identifier(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]", "_", text).strip("_.-") or "x"
    return cleaned[:64] if cleaned[0].isalnum() else f"x{cleaned}"[:64]


@dataclass(frozen=True)
class DraftTag:
    """One variable drafted as a tag; ``reason`` says why it is commented out (``None``: it maps)."""

    node: str
    machine: str
    signal: str
    reason: str | None = None


def draft_tags(nodes: list[BrowsedNode], plant: PlantModel | None = None) -> list[DraftTag]:
    """Every readable variable as a tag: machine from its parent object, signal from its own name.

    With ``plant``, a name that differs from a machine id or signal name only in case is taken as
    that id, and a tag that still names no machine or signal of the plant gets the reason.
    """
    signals = {m.id: list(m.signals) for _, _, m in plant.machines()} if plant is not None else None
    out = []
    for node in nodes:
        if node.node_class != "Variable" or (node.access is not None and "r" not in node.access):
            continue
        machine = _identifier(node.path[-2]) if len(node.path) > 1 else "machine"
        signal = _identifier(node.path[-1])
        reason = None
        if signals is not None:
            machine = _same_but_case(machine, signals) or machine
            if machine not in signals:
                reason = f"no machine {machine!r} in the plant{_closest(machine, signals)}"
            else:
                signal = _same_but_case(signal, signals[machine]) or signal
                if signal not in signals[machine]:
                    reason = (
                        f"machine {machine!r} has no signal {signal!r}{_closest(signal, signals[machine])}"
                    )
        out.append(DraftTag(node.node_id, machine, signal, reason))
    return out


def source_block(
    nodes: list[BrowsedNode],
    endpoint: str,
    source_id: str,
    security: OpcUaSecurity,
    plant: PlantModel | None = None,
) -> str:
    """A ready-to-edit ``sources:`` entry with every readable variable as a tag.

    Without ``plant`` the machine is the variable's parent object and the signal its own browse
    name: edit both to the plant's ids. With ``plant``, tags that do not map onto its machines and
    signals are commented out with the reason, so the block passes ``plantstream check`` as it is
    (entirely commented out when no tag maps).
    """
    tags = draft_tags(nodes, plant)
    settings = security.model_dump(exclude_defaults=True, exclude_none=True)
    head = {"type": "opcua", "id": source_id, "endpoint": endpoint, "security": settings}
    lines = yaml.safe_dump(
        {"sources": [head]}, sort_keys=False, default_flow_style=None, width=200
    ).splitlines()
    lines += ["  groups:", "  - tags:"]
    for tag in tags:
        entry = yaml.safe_dump(
            {"node": tag.node, "machine": tag.machine, "signal": tag.signal},
            sort_keys=False,
            default_flow_style=True,
            width=10_000,
        ).strip()
        lines.append(f"    - {entry}" if tag.reason is None else f"    # - {entry}  # {tag.reason}")
    if plant is None:
        note = "# machine and signal are the browse names: edit them to the plant's ids (or use --plant)"
        return "\n".join([note, *lines]) + "\n"
    if all(tag.reason is not None for tag in tags):
        note = "# no tag maps to the plant's machines and signals; edit machine and signal, then uncomment"
        return "\n".join([note, *(line if line.startswith("#") else f"# {line}" for line in lines)]) + "\n"
    return "\n".join(lines) + "\n"


def _same_but_case(name: str, known: Iterable[str]) -> str | None:
    matches = [k for k in known if k.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _closest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
