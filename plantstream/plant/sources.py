"""Where readings come from: MQTT and OPC UA sources, their tags, security and settings."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from plantstream.plant.base import Identifier, _Strict
from plantstream.plant.numbers import Integer, Number, refuse_booleans

__all__ = [
    "Deadband",
    "JsonField",
    "JsonTimestamp",
    "MqttSource",
    "MqttSubscription",
    "OpcUaEventSource",
    "OpcUaEvents",
    "OpcUaGroup",
    "OpcUaHistory",
    "OpcUaSecurity",
    "OpcUaSource",
    "OpcUaTag",
    "QueueSettings",
    "Source",
    "TlsSettings",
]


class TlsSettings(_Strict):
    """TLS for a broker: the CA that signed its certificate, and an optional client certificate."""

    ca_file: str | None = Field(default=None, description="PEM file of the CA; the system store when absent")
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class JsonField(_Strict):
    """One signal taken from a JSON payload."""

    path: str = Field(min_length=1, description="dotted path into the payload, e.g. meter.power_w")
    signal: Identifier
    scale: Number = Field(default=1.0, description="multiplier to the signal's unit, e.g. 0.001 for W -> kW")


class JsonTimestamp(_Strict):
    """Where a JSON payload carries its time; without it the time of receipt is used."""

    path: str = Field(min_length=1)
    format: Literal["iso8601", "epoch_s", "epoch_ms", "epoch_ns"] = "iso8601"


class MqttSubscription(_Strict):
    """A topic filter and how its payloads become readings.

    ``topic`` is a template: ``{name}`` matches one topic level and captures it (``{machine}`` is
    the machine id, ``{signal}`` the signal name, others such as ``{line}`` are checked against the
    plant model), ``+`` and a final ``#`` are MQTT wildcards.
    """

    topic: str = Field(min_length=1)
    qos: Annotated[Literal[0, 1, 2], BeforeValidator(refuse_booleans)] = 1
    payload: Literal["json", "number", "sparkplug_b"]
    machine: Identifier | None = Field(
        default=None, description="the machine, when the topic does not name it"
    )
    signal: Identifier | None = Field(
        default=None, description="number payloads: the signal, when the topic does not name it"
    )
    fields: list[JsonField] = Field(default_factory=list, description="json payloads: the signals to take")
    timestamp: JsonTimestamp | None = None
    metrics: dict[str, Identifier] = Field(
        default_factory=dict,
        description="sparkplug_b: metric name -> signal; the machine is the device (or edge node)",
    )

    @model_validator(mode="after")
    def _complete(self) -> MqttSubscription:
        levels = self.topic.split("/")
        if "#" in levels[:-1] or any("#" in level and level != "#" for level in levels):
            raise ValueError("'#' may only be the whole last level of a topic")
        names = re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", self.topic)
        if len(names) != len(set(names)):
            raise ValueError("a placeholder is used twice in the topic")
        for level in levels:
            if "{" in level and not re.fullmatch(r"\{[A-Za-z_][A-Za-z0-9_]*\}", level):
                raise ValueError(f"topic level {level!r}: a placeholder must be a whole level")
        if self.payload == "sparkplug_b":
            if not self.metrics:
                raise ValueError("sparkplug_b subscriptions map metric names to signals in `metrics`")
            return self
        if "machine" not in names and self.machine is None:
            raise ValueError("name the machine: a {machine} level in the topic, or `machine:`")
        if self.payload == "json" and not self.fields:
            raise ValueError("json payloads need `fields` (path -> signal)")
        if self.payload == "number" and "signal" not in names and self.signal is None:
            raise ValueError("number payloads need a {signal} level in the topic, or `signal:`")
        return self


class QueueSettings(_Strict):
    """A bounded queue and what happens when it is full."""

    size: Integer = Field(
        default=10_000, gt=0, le=10_000_000, description="readings waiting; each costs memory until taken"
    )
    overflow: Literal["block", "drop_oldest", "drop_newest"] = Field(
        default="block", description="block back-pressures the source; the drop policies count what they drop"
    )


class MqttSource(_Strict):
    """An MQTT broker and what to read from it."""

    type: Literal["mqtt"]
    id: Identifier
    url: str = Field(description="mqtt://host[:port] or mqtts://host[:port]; ${VAR} allowed")
    client_id: str | None = Field(default=None, description="fixed per source; default plantstream-<id>")
    persistent_session: bool = Field(
        default=True, description="the broker keeps QoS 1 messages while we are away"
    )
    username: str | None = Field(
        default=None, description="write ${MQTT_USER}: secrets come from the environment"
    )
    password: str | None = None
    tls: TlsSettings | None = None
    keepalive_s: Integer = Field(default=30, ge=5, le=3_600)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    subscriptions: list[MqttSubscription] = Field(min_length=1)

    @field_validator("url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if not re.fullmatch(r"mqtts?://[^/:\s]+(:\d{1,5})?/?", value):
            raise ValueError(f"{value!r} is not mqtt://host[:port] or mqtts://host[:port]")
        return value


class OpcUaTag(_Strict):
    """One OPC UA variable mapped to a machine's signal.

    ``node`` is a node id, preferably by namespace URI (``nsu=urn:...;s=Line1.Press.Good``), which
    is resolved to the server's current index at every session; the index form (``ns=2;s=...``) is
    accepted with a warning because indices can move when a server restarts. ``browse_path`` is the
    alternative: ``0:Objects/2:Press/2:Good`` style, with namespace URIs allowed in place of indices.
    """

    node: str | None = None
    browse_path: str | None = None
    machine: Identifier
    signal: Identifier

    @model_validator(mode="after")
    def _one_address(self) -> OpcUaTag:
        if (self.node is None) == (self.browse_path is None):
            raise ValueError("give exactly one of node and browse_path")
        if self.node is not None and not re.match(r"^(nsu=[^;]+;|ns=\d+;)?[isgb]=.+$", self.node):
            raise ValueError(
                f"{self.node!r} is not a node id such as nsu=urn:plant;s=Press.Good or ns=2;i=1001"
            )
        return self


class Deadband(_Strict):
    """A data-change filter's deadband."""

    type: Literal["none", "absolute", "percent"] = "none"
    value: Number = Field(default=0.0, ge=0)


class OpcUaGroup(_Strict):
    """Tags read the same way: by subscription (default) or by polling."""

    mode: Literal["subscribe", "poll"] = "subscribe"
    publishing_interval_ms: Number = Field(default=500, gt=0)
    sampling_interval_ms: Number = Field(default=250, ge=0)
    queue_size: Integer = Field(default=10, ge=1, description="server-side queue per monitored item")
    discard_oldest: bool = True
    trigger: Literal["status", "status_value", "status_value_timestamp"] = "status_value"
    deadband: Deadband = Field(default_factory=Deadband)
    poll_interval_ms: Number = Field(default=1_000, gt=0)
    repeat_unchanged_s: Number | None = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="a subscribed tag silent this long is taken again with its last value, as of the "
        "time the live subscription vouches for (report by exception made explicit); null: never",
    )
    tags: list[OpcUaTag] = Field(min_length=1)

    @property
    def repeats_unchanged(self) -> bool:
        """Whether silent tags of this group are taken again (a subscription with the setting)."""
        return self.mode == "subscribe" and self.repeat_unchanged_s is not None

    @model_validator(mode="after")
    def _repeat_fits(self) -> OpcUaGroup:
        if "repeat_unchanged_s" not in self.model_fields_set or self.repeat_unchanged_s is None:
            return self
        if self.mode == "poll":
            raise ValueError(
                "repeat_unchanged_s: a polled group reads every tag each poll_interval_ms; "
                "the setting is for subscriptions (mode: subscribe)"
            )
        interval_s = self.publishing_interval_ms / 1000
        if self.repeat_unchanged_s < 2 * interval_s:
            raise ValueError(
                f"repeat_unchanged_s ({self.repeat_unchanged_s:g}) must be at least two publishing "
                f"intervals ({2 * interval_s:g} s): a tag is silent for one interval between any two messages"
            )
        return self


class OpcUaSecurity(_Strict):
    """Message security, certificates and user identity."""

    mode: Literal["None", "Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    policy: Literal["Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] = "Basic256Sha256"
    allow_insecure: bool = Field(default=False, description="required to use mode None")
    server_certificate_sha256: str | None = Field(default=None, description="pin the server's certificate")
    trusted_certificates_dir: str | None = None
    username: str | None = Field(
        default=None, description="write ${OPCUA_USER}: secrets stay in the environment"
    )
    password: str | None = None

    @model_validator(mode="after")
    def _insecure_is_explicit(self) -> OpcUaSecurity:
        if self.mode == "None" and not self.allow_insecure:
            raise ValueError(
                "security mode None sends everything in clear: set allow_insecure: true to accept that"
            )
        return self


class OpcUaHistory(_Strict):
    """Backfill after an outage from the server's history (OPC UA Part 11, HistoryRead raw).

    After every (re)connect, each tag whose node keeps history (AccessLevel HistoryRead and
    ``Historizing``) gets the values it missed since the last one delivered, in the server's
    batches, marked ``backfilled``. Only under ``timestamps: source``: history values carry
    their source time, and the gap is measured in it.
    """

    enabled: bool = Field(default=True, description="read the gap from history where the server keeps it")
    max_span_s: Number = Field(
        default=3_600.0,
        gt=0,
        le=7 * 86_400,
        description="at most this much of a gap is read back (its newest part)",
    )
    max_values_per_s: Number = Field(
        default=10_000.0, gt=0, le=10_000_000, description="history values taken per second, at most"
    )
    values_per_request: Integer = Field(
        default=1_000, gt=0, le=100_000, description="NumValuesPerNode of each HistoryRead"
    )
    max_values_per_node: Integer = Field(
        default=100_000, gt=0, le=10_000_000, description="values read back per node and session, at most"
    )
    max_values_per_session: Integer = Field(
        default=200_000,
        gt=0,
        le=10_000_000,
        description="values held at once after a reconnect, all nodes together (memory: about 0.3 KiB each)",
    )


class OpcUaEventSource(_Strict):
    """Which machine an Alarms & Conditions event belongs to, and the reason signal it sets.

    Matched by the event's ``SourceNode`` (a node id, ``nsu=`` form resolved per session) or its
    ``SourceName`` (the text the server sends); exactly one of the two.
    """

    source_node: str | None = None
    source_name: str | None = Field(default=None, min_length=1, max_length=256)
    machine: Identifier
    signal: Identifier = Field(description="the machine's signal with role reason")

    @model_validator(mode="after")
    def _one_match(self) -> OpcUaEventSource:
        if (self.source_node is None) == (self.source_name is None):
            raise ValueError("give exactly one of source_node and source_name")
        if self.source_node is not None and not re.match(
            r"^(nsu=[^;]+;|ns=\d+;)?[isgb]=.+$", self.source_node
        ):
            raise ValueError(
                f"{self.source_node!r} is not a node id such as nsu=urn:plant;s=Press or ns=2;i=1001"
            )
        return self


class OpcUaEvents(_Strict):
    """Alarms & Conditions events as stop reasons (OPC UA Part 9), subscribed on one notifier.

    A condition that becomes active sets its machine's reason signal to the condition's name (the
    EventType's browse name when it has none), at the event's ``Time``; when every active
    condition of the machine is inactive again, the signal is cleared to ``""``.
    """

    notifier: str = Field(
        default="i=2253", description="node whose events are subscribed (default the Server object)"
    )
    min_severity: Integer = Field(
        default=1, ge=1, le=1000, description="events below this Severity are ignored"
    )
    max_events_per_s: Number = Field(
        default=100.0, gt=0, le=100_000, description="above it, activations are dropped (clears still pass)"
    )
    queue_size: Integer = Field(
        default=1_000, ge=1, le=100_000, description="events waiting, server and client side"
    )
    max_active_per_machine: Integer = Field(
        default=64, ge=1, le=10_000, description="active conditions tracked"
    )
    where: list[OpcUaEventSource] = Field(min_length=1)

    @field_validator("where")
    @classmethod
    def _one_machine_per_source(cls, value: list[OpcUaEventSource]) -> list[OpcUaEventSource]:
        seen: dict[str, str] = {}
        for match in value:
            key = match.source_node or match.source_name or ""
            if key in seen and seen[key] != match.machine:
                raise ValueError(f"{key!r} is mapped to two machines ({seen[key]}, {match.machine})")
            seen[key] = match.machine
        return value

    @field_validator("notifier")
    @classmethod
    def _notifier_node(cls, value: str) -> str:
        if not re.match(r"^(nsu=[^;]+;|ns=\d+;)?[isgb]=.+$", value):
            raise ValueError(f"{value!r} is not a node id such as i=2253 or nsu=urn:plant;s=Line1")
        return value


class OpcUaSource(_Strict):
    """An OPC UA server and the tags to read from it."""

    type: Literal["opcua"]
    id: Identifier
    endpoint: str = Field(description="opc.tcp://host:port[/path]; ${VAR} allowed")
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity)
    timestamps: Literal["source", "server", "ingest"] = Field(
        default="source", description="which time a reading carries; falls back when the server omits it"
    )
    watchdog_s: Number = Field(
        default=30.0, gt=0, description="rebuild a session that is connected but silent"
    )
    max_items_per_call: Integer = Field(
        default=1_000, gt=0, description="cap when the server publishes no limit"
    )
    timeout_s: Number = Field(
        default=10.0, gt=0, description="how long a request, or the liveness probe, may take to answer"
    )
    session_timeout_s: Number = Field(
        default=60.0,
        ge=10,
        le=3_600,
        description="how long the server keeps the session (and its subscriptions) once we are gone",
    )
    queue: QueueSettings = Field(default_factory=lambda: QueueSettings(overflow="drop_oldest"))
    groups: list[OpcUaGroup] = Field(min_length=1)
    history: OpcUaHistory = Field(default_factory=OpcUaHistory)
    events: OpcUaEvents | None = Field(default=None, description="Alarms & Conditions events as stop reasons")

    @field_validator("endpoint")
    @classmethod
    def _opc_url(cls, value: str) -> str:
        if not re.fullmatch(r"opc\.tcp://[^/\s:]+(:\d{1,5})?(/\S*)?", value):
            raise ValueError(f"{value!r} is not opc.tcp://host:port")
        return value

    @model_validator(mode="after")
    def _history_needs_source_time(self) -> OpcUaSource:
        asked = "enabled" in self.history.model_fields_set and self.history.enabled
        if self.timestamps != "source" and asked:
            raise ValueError(
                f"history.enabled: the backfill needs timestamps: source (this source has {self.timestamps})"
            )
        return self

    @model_validator(mode="after")
    def _repeats_need_source_time(self) -> OpcUaSource:
        if self.timestamps == "source":
            return self
        for index, group in enumerate(self.groups):
            if "repeat_unchanged_s" in group.model_fields_set and group.repeat_unchanged_s is not None:
                raise ValueError(
                    f"groups[{index}].repeat_unchanged_s: a repeat is dated on the source's clock, which "
                    f"needs timestamps: source (this source has {self.timestamps})"
                )
        return self


Source = Annotated[MqttSource | OpcUaSource, Field(discriminator="type")]
