"""The plant model: what a plant file may say, validated by pydantic before any socket opens.

Every model forbids unknown keys, so a typo is an error that names its line, never a silently
ignored setting. The schema holds structure and units; reference data (grid factors, fuels, GWP
sets) belongs to the calculators and is resolved by the runtime, with errors mapped back to the
line of the plant file that asked for it.
"""

from __future__ import annotations

import re
from datetime import date, time
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from plantstream.plant.cbam_factors import PFC_SLOPE_DEFAULTS, STOICHIOMETRIC
from plantstream.plant.cbam_parameters import check_parameter
from plantstream.plant.cbam_routes import routes_of
from plantstream.plant.cn_codes import cn_category, normalise_cn
from plantstream.plant.numbers import Integer, Number, refuse_booleans
from plantstream.plant.reasons import ReasonTree

__all__ = [
    "CORRECTION_HISTORY_BYTES",
    "CORRECTION_HISTORY_BYTES_MAX",
    "Break",
    "Calendar",
    "Carbon",
    "Cbam",
    "CbamDeclarations",
    "CbamElectricity",
    "CbamGood",
    "CbamInstallation",
    "CbamOperator",
    "CbamProcess",
    "Coordinates",
    "CounterSignal",
    "Deadband",
    "DefaultValue",
    "EnergySignal",
    "FuelSignal",
    "GoodOutput",
    "GoodPrecursor",
    "GridRef",
    "Http",
    "InfluxDbSink",
    "JsonField",
    "JsonTimestamp",
    "Line",
    "Machine",
    "Market",
    "MqttSource",
    "MqttSubscription",
    "OeeMethod",
    "OpcUaGroup",
    "OpcUaHistory",
    "OpcUaSecurity",
    "OpcUaSource",
    "OpcUaTag",
    "OutboxSettings",
    "Overtime",
    "PlantModel",
    "PowerSignal",
    "ProductSignal",
    "Production",
    "PurchasedPrecursor",
    "QueueSettings",
    "ReasonSignal",
    "ReasonTree",
    "Role",
    "SharedMachine",
    "Shift",
    "Signal",
    "Sink",
    "Site",
    "Source",
    "StateCategory",
    "StateSignal",
    "TlsSettings",
    "Weekday",
    "cross_check",
]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
Identifier = Annotated[str, Field(pattern=_ID, max_length=64)]
"""Ids end up as InfluxDB tags and Kafka keys: letters, digits, ``_``, ``.``, ``-``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SignalBase(_Strict):
    record: bool = Field(default=True, description="also write the raw readings as `reading` points")


class StateCategory(StrEnum):
    """What a machine is doing, in the categories the OEE time model is built from.

    ``running`` is actual production time (APT); ``down`` unplanned stops from malfunction (ADET);
    ``idle`` available but not producing (ADOT); ``setup`` changeover (ASUT); ``planned_stop``
    planned downtime (PDOT); ``off`` switched off during planned time (a loss, like ADOT).
    """

    RUNNING = "running"
    IDLE = "idle"
    DOWN = "down"
    SETUP = "setup"
    PLANNED_STOP = "planned_stop"
    OFF = "off"


class Role(StrEnum):
    """The meaning of a signal to the calculators."""

    STATE = "state"
    TOTAL_COUNT = "total_count"
    GOOD_COUNT = "good_count"
    REJECT_COUNT = "reject_count"
    REWORK_COUNT = "rework_count"
    POWER_KW = "power_kw"
    ENERGY_KWH = "energy_kwh"
    FUEL = "fuel"
    PRODUCT = "product"
    REASON = "reason"


class StateSignal(_SignalBase):
    """A machine-state tag. Category names are always accepted as values; ``codes`` maps PLC codes."""

    role: Literal[Role.STATE]
    codes: dict[str, StateCategory] = Field(
        default_factory=dict, description="PLC code (as written by the PLC) -> category"
    )

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        # PLC codes arrive as numbers; keys are compared as their text form.
        if isinstance(value, dict):
            codes: dict[str, Any] = {}
            for key, category in value.items():
                text = _code_key(key)
                if text in codes:
                    raise ValueError(f"code {key!r} is given twice (codes are compared as text: {text!r})")
                codes[text] = category
            return codes
        return value


def _code_key(code: Any) -> str:
    if isinstance(code, float) and code.is_integer():
        return str(int(code))
    return str(code)


class CounterSignal(_SignalBase):
    """A cumulative piece counter (total, good, reject or rework); resets and rollovers are handled.

    A rework counter counts the pieces sent to be reworked (ISO 22400-2 RQ), a part of the
    machine's rejects: rework is a defect, not good output (docs/references.md [WILLMOTT] p. 100).
    """

    role: Literal[Role.TOTAL_COUNT, Role.GOOD_COUNT, Role.REJECT_COUNT, Role.REWORK_COUNT]
    modulus: Integer | None = Field(
        default=None, gt=0, description="register width, e.g. 65536 for a 16-bit counter"
    )


class PowerSignal(_SignalBase):
    """Active power in kW, integrated into kWh when no energy register exists."""

    role: Literal[Role.POWER_KW]
    integration: Literal["trapezoid", "hold"] = Field(
        default="trapezoid", description="trapezoid for sampled signals, hold for report-on-change"
    )
    scale: Number = Field(default=1.0, gt=0, description="multiplier to kW, e.g. 0.001 for a tag in W")
    max_gap_s: Number = Field(default=300.0, gt=0, description="do not integrate across a longer gap")


class EnergySignal(_SignalBase):
    """A cumulative active-energy register in kWh (after ``scale``), differenced into kWh per window."""

    role: Literal[Role.ENERGY_KWH]
    scale: Number = Field(default=1.0, gt=0, description="multiplier to kWh, e.g. 0.001 for a Wh register")
    modulus: Number | None = Field(default=None, gt=0, description="register rollover value, in raw units")
    max_gap_s: Number = Field(
        default=900.0, gt=0, description="longer gaps are booked when the next sample comes"
    )


class FuelSignal(_SignalBase):
    """A cumulative fuel meter (Scope 1): quantity in ``unit`` of ``fuel``."""

    role: Literal[Role.FUEL]
    fuel: str = Field(description="fuel key of the factor table, e.g. natural_gas")
    unit: Literal["kg", "t", "GJ", "TJ", "MWh", "Nm3"]
    ncv_mj_per_nm3: Number | None = Field(default=None, gt=0, description="required when unit is Nm3")
    modulus: Number | None = Field(default=None, gt=0)
    max_gap_s: Number = Field(
        default=900.0, gt=0, description="longer gaps are booked when the next sample comes"
    )

    @model_validator(mode="after")
    def _nm3_needs_ncv(self) -> FuelSignal:
        if self.unit == "Nm3" and self.ncv_mj_per_nm3 is None:
            raise ValueError("unit Nm3 needs ncv_mj_per_nm3 (the fuel's net calorific value per Nm3)")
        return self


class ProductSignal(_SignalBase):
    """The product (or recipe) currently made; selects the ideal cycle time and mass per piece."""

    role: Literal[Role.PRODUCT]


class ReasonSignal(_SignalBase):
    """A PLC fault or reason-code tag (integer or text), resolved through the plant's reason tree."""

    role: Literal[Role.REASON]
    rule: Literal["first", "last"] = Field(
        default="first",
        description="first: the code active when a stop began (first cause); last: the last before it ended",
    )


Signal = Annotated[
    StateSignal | CounterSignal | PowerSignal | EnergySignal | FuelSignal | ProductSignal | ReasonSignal,
    Field(discriminator="role"),
]


def _role_shorthand(value: Any) -> Any:
    # `good_count: good_count` is the short form of `good_count: {role: good_count}`.
    if isinstance(value, str):
        return {"role": value}
    return value


class Machine(_Strict):
    """A work unit: its signals, ideal cycle time per product, and the calendar it runs to."""

    id: Identifier
    name: str | None = None
    signals: dict[Identifier, Signal] = Field(min_length=1)
    ideal_cycle_s: Number | None = Field(
        default=None, gt=0, description="ideal (design) cycle time per piece"
    )
    ideal_cycle_s_by_product: dict[str, Annotated[Number, Field(gt=0)]] = Field(default_factory=dict)
    mass_kg_per_piece: Number | None = Field(default=None, gt=0)
    mass_kg_per_piece_by_product: dict[str, Annotated[Number, Field(gt=0)]] = Field(default_factory=dict)
    rated_power_kw: Number | None = Field(
        default=None, gt=0, description="nameplate power: bounds register plausibility and rollover"
    )
    calendar: Identifier | None = None
    micro_stop_max_s: Number | None = Field(default=None, ge=0, description="overrides production's")
    startup_reject_s: Number | None = Field(
        default=None, ge=0, le=86_400, description="overrides production's"
    )
    type: Identifier | None = Field(
        default=None, description="machine type: selects its own reason codes (reasons.machine_types)"
    )

    @field_validator("signals", mode="before")
    @classmethod
    def _expand_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: _role_shorthand(spec) for name, spec in value.items()}
        return value

    @model_validator(mode="after")
    def _one_signal_per_role(self) -> Machine:
        seen: dict[Role, str] = {}
        for name, signal in self.signals.items():
            if signal.role is Role.FUEL:
                continue
            if signal.role in seen:
                raise ValueError(
                    f"signals {seen[signal.role]!r} and {name!r} both have role {signal.role.value}"
                )
            seen[signal.role] = name
        counted = {Role.TOTAL_COUNT, Role.GOOD_COUNT, Role.REJECT_COUNT} & seen.keys()
        if counted and self.ideal_cycle_s is None and not self.ideal_cycle_s_by_product:
            raise ValueError("a machine with count signals needs ideal_cycle_s (or ideal_cycle_s_by_product)")
        if Role.REWORK_COUNT in seen and not counted:
            raise ValueError(
                f"signal {seen[Role.REWORK_COUNT]!r} (rework_count) needs a total_count, good_count or "
                "reject_count beside it: the rework ratio is rework over the pieces produced"
            )
        return self

    def signal_of(self, role: Role) -> str | None:
        """Return the name of the signal with ``role``, if the machine has one."""
        for name, signal in self.signals.items():
            if signal.role is role:
                return name
        return None


class Line(_Strict):
    """A production line: machines that are rolled up together."""

    id: Identifier
    name: str | None = None
    area: Identifier | None = None
    calendar: Identifier | None = None
    machines: list[Machine] = Field(min_length=1)


class GridRef(_Strict):
    """Which grid emission factor applies: a row of the shipped table, or a documented custom value."""

    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="defaults to the site's")
    basis: str = Field(default="annual", description="annual, avg_2014_2016, avg_2020_2022, ...")
    year: Integer | None = Field(default=None, ge=1990, le=2100)
    factor_t_per_mwh: Number | None = Field(
        default=None, ge=0, description="custom factor instead of the table"
    )
    source: str | None = Field(default=None, description="required with a custom factor")

    @model_validator(mode="after")
    def _table_or_custom(self) -> GridRef:
        if self.factor_t_per_mwh is None and self.year is None:
            raise ValueError("give year (a row of the factor table) or factor_t_per_mwh with its source")
        if self.factor_t_per_mwh is not None and not self.source:
            raise ValueError("a custom factor_t_per_mwh needs a source, so the number can be audited")
        return self


class Market(_Strict):
    """Market-based Scope 2: the share covered by contractual instruments and the residual mix."""

    covered_share: Number = Field(ge=0, le=1)
    covered_t_per_mwh: Number = Field(ge=0)
    residual_t_per_mwh: Number = Field(ge=0)
    source: str = Field(
        min_length=1, description="the instruments (PPA, EACs, supplier rate) and their vintage"
    )


class Carbon(_Strict):
    """How a site's energy turns into CO2e."""

    grid: GridRef
    market: Market | None = None
    gwp: Literal["AR5", "AR6", "SAR"] = "AR5"


class Break(_Strict):
    """A planned break inside a shift (planned downtime), in local time."""

    start: time
    end: time
    name: str | None = None


class Weekday(StrEnum):
    """Days a shift runs on."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


class Shift(_Strict):
    """A shift in local time; an ``end`` at or before ``start`` ends on the next day."""

    name: Identifier
    start: time
    end: time
    days: list[Weekday] = Field(default_factory=lambda: list(Weekday), min_length=1)
    breaks: list[Break] = Field(default_factory=list)


class Overtime(_Strict):
    """Extra planned operating time on one date (a calendar exception that enlarges POT)."""

    date: date
    start: time
    end: time
    name: Identifier = "overtime"


class Calendar(_Strict):
    """Shifts, holidays and overtime: where planned operating time comes from."""

    shifts: list[Shift] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list)
    overtime: list[Overtime] = Field(default_factory=list)


class Site(_Strict):
    """A plant site: its time zone (for shift calendars), country and carbon settings."""

    id: Identifier
    name: str | None = None
    timezone: str
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    calendar: Identifier | None = None
    carbon: Carbon | None = None
    lines: list[Line] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a zone folder such as "Asia"
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Ho_Chi_Minh)"
            ) from None
        return value


class OeeMethod(StrEnum):
    """Which OEE formulation: ISO 22400-2 (default) or the Nakajima/Vorne variant."""

    ISO22400 = "iso22400"
    VORNE = "vorne"


CORRECTION_HISTORY_BYTES = 32 * 2**20
"""The correction history's default byte budget: 32 MiB, about 1.9 million numeric readings."""
CORRECTION_HISTORY_BYTES_MAX = 2**40
"""1 TiB: a budget beyond any machine plantstream runs on is a typo, not a plan."""


class Production(_Strict):
    """Window, lateness and OEE settings shared by every machine."""

    oee_method: OeeMethod = OeeMethod.ISO22400
    micro_stop_max_s: Number = Field(default=0.0, ge=0, description="stops this short stay in run time")
    startup_reject_s: Number = Field(
        default=0.0,
        ge=0,
        le=86_400,
        description="rejects counted this long after a setup ends are start-up rejects (0: none)",
    )
    window_s: Integer = Field(default=60, gt=0, le=86_400)
    allowed_lateness_s: Number = Field(default=5.0, ge=0)
    correction_horizon_s: Number = Field(default=3_600.0, ge=0, description="how far back late data corrects")
    correction_history_max: Integer = Field(
        default=2_000_000,
        ge=0,
        description="readings kept for corrections, all machines together (a memory bound)",
    )
    correction_history_bytes: Integer = Field(
        default=CORRECTION_HISTORY_BYTES,
        ge=0,
        le=CORRECTION_HISTORY_BYTES_MAX,
        description="bytes of readings kept for corrections, all machines together (a memory bound)",
    )
    max_future_s: float | None = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="how far an event time may be ahead of its receipt; null for a simulated clock",
    )
    max_clock_jump_s: float = Field(
        default=86_400.0,
        gt=0,
        le=3_650 * 86_400,
        description="how far a reading may jump past its machine's newest event time",
    )
    max_gap_fill_s: float = Field(
        default=8 * 86_400.0,
        gt=0,
        le=31 * 86_400,
        description="a machine silent longer than this resumes without the empty windows of the silence",
    )

    @model_validator(mode="after")
    def _horizon_covers_lateness(self) -> Production:
        if self.correction_horizon_s < self.allowed_lateness_s:
            raise ValueError("correction_horizon_s must be >= allowed_lateness_s")
        return self


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

# --------------------------------------------------------------------------------------------------
# CBAM (docs/cbam.md; sources in docs/references.md): the installation, its processes, goods and precursors
# --------------------------------------------------------------------------------------------------

_COUNTRY = r"^[A-Z]{2}$"


def _cbam_cn(value: str) -> str:
    """An 8-digit CN code that Annex I of Reg. 2023/956 covers, spaces removed."""
    digits = normalise_cn(value)
    if cn_category(digits) is None:
        raise ValueError(
            f"CN {value} is not a CBAM good (Annex I of Reg. 2023/956: cement, electricity, "
            "fertilisers, iron and steel, aluminium, hydrogen)"
        )
    return digits


class CbamOperator(_Strict):
    """The operator of the installation (summary report item 1)."""

    name: str = Field(min_length=1)
    address: str | None = None
    contact: str | None = Field(default=None, description="e-mail or telephone for importers")


class Coordinates(_Strict):
    """Coordinates of the installation's main emission source (summary item 2)."""

    latitude: Number = Field(ge=-90, le=90)
    longitude: Number = Field(ge=-180, le=180)


class CbamInstallation(_Strict):
    """Identity of the installation (summary report item 2)."""

    id: Identifier = Field(description="the ledger's key and the tag of `cbam` points")
    name: str = Field(min_length=1)
    registry_id: str | None = Field(
        default=None, description="CBAM Registry installation id, once registered"
    )
    country: str = Field(pattern=_COUNTRY, description="ISO 3166-1 alpha-2")
    city: str | None = None
    address: str | None = None
    unlocode: str | None = Field(default=None, pattern=r"^[A-Z]{2} ?[A-Z2-9]{3}$", description="e.g. VNSGN")
    coordinates: Coordinates | None = None
    economic_activity: str | None = Field(default=None, description="e.g. NACE 24.10")
    site: Identifier | None = Field(default=None, description="the plant file's site; default: the only one")

    @model_validator(mode="after")
    def _locatable(self) -> CbamInstallation:
        if not self.address and not self.unlocode:
            raise ValueError("give the installation's address or its UN/LOCODE (summary report item 2)")
        return self


class CbamElectricity(_Strict):
    """The CBAM electricity emission factor for indirect emissions [IR-2025-2621; CBAM-REG].

    ``commission_default``: the Commission's default for the country (IR 2025/2621 Annex II);
    the shipped table has few countries, so others give ``factor_t_per_mwh`` with its ``source``.
    ``actual``: only with a direct technical link or a PPA meeting Annex IV point 6 of 2023/956.
    """

    basis: Literal["commission_default", "actual"] = "commission_default"
    country: str | None = Field(
        default=None, pattern=r"^([A-Z]{2}|OTHER)$", description="default: the installation's; OTHER"
    )
    factor_t_per_mwh: Number | None = Field(default=None, ge=0)
    source: str | None = None
    link: Literal["direct_link", "ppa"] | None = Field(
        default=None, description="actual factors: how the electricity reaches the installation"
    )
    year: Integer | None = Field(
        default=None, ge=2000, le=2100, description="the factor's year, if it has one"
    )

    @model_validator(mode="after")
    def _documented(self) -> CbamElectricity:
        if self.basis == "actual":
            if self.factor_t_per_mwh is None or self.link is None or not self.source:
                raise ValueError(
                    "an actual electricity factor needs factor_t_per_mwh, link (direct_link or ppa) "
                    "and source (Annex IV point 6 of Reg. 2023/956)"
                )
        elif self.link is not None:
            raise ValueError("link applies to an actual factor (basis: actual) only")
        if self.factor_t_per_mwh is not None and not self.source:
            raise ValueError("a factor_t_per_mwh needs its source, so the number can be audited")
        return self


class SharedMachine(_Strict):
    """A machine serving several processes (a boiler, a compressor): this process's share of it."""

    machine: Identifier
    share: Number = Field(gt=0, le=1, description="fraction of its Scope 1 and electricity attributed here")
    basis: str = Field(min_length=1, description="how the share was determined (metered heat, hours, ...)")


class StreamActivity(_Strict):
    """Where a source stream's activity data (t) comes from: a machine's pieces, or a scale total."""

    machine: Identifier
    mass_kg_per_piece: Number | None = Field(default=None, gt=0)
    weighed: bool = Field(default=False, description="the machine's good_count is a weigh-scale total in kg")

    @model_validator(mode="after")
    def _one_way(self) -> StreamActivity:
        if (self.mass_kg_per_piece is None) == (not self.weighed):
            raise ValueError("give mass_kg_per_piece, or weighed: true for a weigh-scale total in kg")
        return self


_Fraction = Annotated[Number, Field(ge=0, le=1)]


class StreamFactors(_Strict):
    """A source stream's calculation factors, valid from ``from`` (the first: from the start).

    A default value names its ``source``; an operator-specific one (a laboratory analysis) names
    the ``laboratory``, the date the sample was ``analysed`` and the analysis ``standard``
    [IR-2025-2547 Annex II; MRR-2018-2066 Art. 32-35]; a ``measured`` one (an operating figure
    such as the anode-effect minutes from the pot-line control system) names its ``source``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    valid_from: date | None = Field(default=None, alias="from", description="first day these apply")
    basis: Literal["default", "laboratory", "measured"]
    source: str | None = Field(
        default=None, min_length=1, description="where a default or measured value comes from"
    )
    laboratory: str | None = Field(default=None, min_length=1)
    analysed: date | None = Field(default=None, description="date of the laboratory analysis")
    standard: str | None = Field(default=None, min_length=1, description="analysis standard, e.g. EN 196-2")
    emission_factor: Number | None = Field(
        default=None, ge=0, le=1000, description="t CO2/t of a process material, t CO2/TJ of a fuel"
    )
    composition: dict[str, _Fraction] | None = Field(
        default=None, description="mass fractions of carbonates (input method) or oxides (output method)"
    )
    ncv_tj_per_t: Number | None = Field(default=None, gt=0, le=0.1, description="a fuel's NCV, TJ/t")
    oxidation_factor: Number = Field(default=1.0, gt=0, le=1)
    conversion_factor: Number = Field(default=1.0, gt=0, le=1)
    carbon_content: Number | None = Field(default=None, ge=0, le=1, description="t C per t (mass balance)")
    cell_technology: str | None = Field(default=None, description="CWPB, SWPB, VSS or HSS: the PFC defaults")
    slope_cf4: Number | None = Field(default=None, gt=0, le=10, description="(kg CF4/t Al)/(AE-min/cell-day)")
    c2f6_per_cf4: Number | None = Field(default=None, ge=0, le=1, description="kg C2F6 per kg CF4")
    anode_effect_minutes: Number | None = Field(
        default=None, ge=0, le=1000, description="anode-effect minutes per cell-day, over the period"
    )

    @field_validator("composition")
    @classmethod
    def _known_compounds(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(STOICHIOMETRIC))
        if unknown:
            raise ValueError(f"unknown compound(s) {unknown} (known: {', '.join(STOICHIOMETRIC)})")
        if sum(value.values()) > 1 + 1e-9:
            raise ValueError(f"the mass fractions add up to {sum(value.values()):g}, more than 1")
        return value

    @field_validator("cell_technology")
    @classmethod
    def _known_technology(cls, value: str | None) -> str | None:
        if value is not None and value not in PFC_SLOPE_DEFAULTS:
            raise ValueError(f"unknown cell technology {value!r} (known: {', '.join(PFC_SLOPE_DEFAULTS)})")
        return value

    @model_validator(mode="after")
    def _provenance(self) -> StreamFactors:
        if self.basis in ("default", "measured") and self.source is None:
            raise ValueError(f"a {self.basis} factor needs its source, so it can be audited")
        if self.basis == "laboratory" and None in (self.laboratory, self.analysed, self.standard):
            raise ValueError("a laboratory factor needs laboratory, analysed (its date) and standard")
        if self.emission_factor is not None and self.composition is not None:
            raise ValueError("give emission_factor or composition, not both")
        return self


# What each method needs in its factors, and what it must not be given (a typo of a method).
_PFC = ("slope_cf4", "c2f6_per_cf4", "anode_effect_minutes", "cell_technology")
_METHOD_FACTORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "fuel": (
        ("emission_factor", "ncv_tj_per_t"),
        ("composition", "conversion_factor", "carbon_content", *_PFC),
    ),
    "process_material": (
        ("emission_factor|composition",),
        ("ncv_tj_per_t", "oxidation_factor", "carbon_content", *_PFC),
    ),
    "mass_balance": (
        ("carbon_content",),
        ("emission_factor", "composition", "ncv_tj_per_t", "oxidation_factor", "conversion_factor", *_PFC),
    ),
    "pfc_slope": (
        ("anode_effect_minutes", "slope_cf4|cell_technology", "c2f6_per_cf4|cell_technology"),
        (
            "emission_factor",
            "composition",
            "ncv_tj_per_t",
            "oxidation_factor",
            "conversion_factor",
            "carbon_content",
        ),
    ),
}


class SourceStream(_Strict):
    """A source stream of a process [IR-2025-2547 Annex II B]: its method, activity and factors."""

    id: Identifier
    name: str | None = None
    method: Literal["standard", "mass_balance", "n2o_measured", "pfc_slope"]
    material: Literal["fuel", "process_material"] | None = Field(
        default=None, description="standard method: a fuel (NCV, OF) or a process material (CF)"
    )
    direction: Literal["input", "output"] = Field(
        default="input", description="mass balance: carbon in, or out (product, slag, dust)"
    )
    activity: StreamActivity
    factors: list[StreamFactors] = Field(default_factory=list, max_length=400)

    @model_validator(mode="after")
    def _method_needs(self) -> SourceStream:
        if self.method == "standard" and self.material is None:
            raise ValueError("the standard method needs material: fuel or process_material")
        if self.method != "standard" and self.material is not None:
            raise ValueError(f"material applies to the standard method, not to {self.method}")
        if self.method != "mass_balance" and self.direction != "input":
            raise ValueError("direction applies to the mass balance method only")
        if self.method == "n2o_measured":
            if self.factors:
                raise ValueError("metered N2O needs no factors (its GWP is the regulation's)")
            return self
        if not self.factors:
            raise ValueError(f"the {self.method} method needs factors (one entry at least)")
        key = self.material if self.method == "standard" else self.method
        needs, forbidden = _METHOD_FACTORS[key or ""]
        for i, factor in enumerate(self.factors):
            # What the entry says, defaults left out: an oxidation factor on a process material is a mistake.
            given = {name for name in factor.model_fields_set if getattr(factor, name) is not None}
            for need in needs:
                if not any(name in given for name in need.split("|")):
                    raise ValueError(f"factors[{i}] needs {' or '.join(need.split('|'))} for {key}")
            wrong = [name for name in forbidden if name in given]
            if wrong:
                raise ValueError(f"factors[{i}]: {', '.join(wrong)} does not apply to {key}")
            if i == 0 and factor.valid_from is not None:
                raise ValueError("factors[0] applies from the start: leave out its from")
            if i > 0:
                previous = self.factors[i - 1].valid_from
                if factor.valid_from is None or (previous is not None and factor.valid_from <= previous):
                    raise ValueError(f"factors[{i}] needs a from date after the one before it")
        return self


class CbamProcess(_Strict):
    """A production process: its route and the machines whose emissions and electricity it owns."""

    id: Identifier
    name: str | None = None
    route: str = Field(description="the production route, a value of the template's code list (docs/cbam.md)")
    route_description: str | None = Field(
        default=None, min_length=1, description="the route in the operator's words, for the operator report"
    )
    machines: list[Identifier]
    shared_machines: list[SharedMachine] = Field(default_factory=list)
    source_streams: list[SourceStream] = Field(
        default_factory=list,
        max_length=200,
        description="process materials, mass balances, N2O and PFCs beside the machines' fuel meters",
    )

    @field_validator("route")
    @classmethod
    def _route_of_the_code_list(cls, value: str) -> str:
        known = routes_of("")
        if value not in known:
            raise ValueError(
                f"{value!r} is not a production route of the template's code list (one of: "
                f"{'; '.join(known)}); describe the route in route_description"
            )
        return value

    @field_validator("machines")
    @classmethod
    def _has_machines(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a production process needs at least one machine (its emissions come from them)")
        return value


class GoodOutput(_Strict):
    """Where a good's activity level (tonnes) comes from: a machine's good pieces, or a scale."""

    machine: Identifier
    mass_kg_per_piece: Number | None = Field(default=None, gt=0)
    weighed: bool = Field(default=False, description="the machine's good_count is a weigh-scale total in kg")

    @model_validator(mode="after")
    def _one_way(self) -> GoodOutput:
        if (self.mass_kg_per_piece is None) == (not self.weighed):
            raise ValueError("give mass_kg_per_piece, or weighed: true for a weigh-scale total in kg")
        return self


class GoodPrecursor(_Strict):
    """A precursor consumed by a good: purchased, or another good of this installation."""

    purchased: Identifier | None = Field(default=None, description="id in cbam.purchased_precursors")
    good: Identifier | None = Field(default=None, description="id in cbam.goods (made here)")
    mass_t_per_t: Number | None = Field(default=None, ge=0, description="m_i: t consumed per t of good")
    mass_t_by_year: dict[Integer, Annotated[Number, Field(ge=0)]] = Field(
        default_factory=dict, description="M_i: t consumed in the year, incl. spill and scrap"
    )
    metered: StreamActivity | None = Field(
        default=None, description="M_i measured: the scale (or counter) where it enters the process"
    )

    @model_validator(mode="after")
    def _one_each(self) -> GoodPrecursor:
        if (self.purchased is None) == (self.good is None):
            raise ValueError("give exactly one of purchased and good")
        given = [self.mass_t_per_t is not None, bool(self.mass_t_by_year), self.metered is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of mass_t_per_t, mass_t_by_year and metered")
        return self


class CbamGood(_Strict):
    """A CBAM good made by the installation (an Annex I CN code)."""

    id: Identifier
    name: str | None = None
    cn_code: str
    process: Identifier
    output: GoodOutput
    precursors: list[GoodPrecursor] = Field(default_factory=list)
    # Checked by name against the good's sector (check_parameter), which also checks each value:
    # a Number | str union would report a wrong value twice, once for each type.
    qualifying_parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="the sector's qualifying parameters, e.g. scrap_t_per_t (docs/cbam.md lists them)",
    )

    @field_validator("cn_code", mode="before")
    @classmethod
    def _annex_i(cls, value: Any) -> Any:
        # An unquoted 73063077 reads as a number; the code is the same digits.
        return _cbam_cn(str(value)) if isinstance(value, str | int) else value

    @field_validator("qualifying_parameters")
    @classmethod
    def _parameters_of_its_sector(
        cls, value: dict[str, float | str], info: ValidationInfo
    ) -> dict[str, float | str]:
        cn_code = info.data.get("cn_code")
        if cn_code is None:
            return value  # the CN code's own error says what is wrong
        category = cn_category(cn_code) or ""
        problems = [p for name, v in value.items() if (p := check_parameter(category, name, v)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @property
    def category(self) -> str:
        """The Annex I category (cement, iron_steel, ...), derived from the CN code."""
        return cn_category(self.cn_code) or ""


class DefaultValue(_Strict):
    """A published default value of IR 2025/2621 (before the year's mark-up), in t CO2e/t."""

    direct: Number = Field(ge=0)
    indirect: Number | None = Field(
        default=None, ge=0, description="the indirect default; without it the indirect figure is not known"
    )
    source: str = Field(min_length=1, description="table, CN code and country row it was taken from")


class PurchasedPrecursor(_Strict):
    """A relevant precursor bought in from another installation [IR-2025-2547 Annex III B; Art. 15]."""

    id: Identifier
    name: str | None = None
    cn_code: str
    origin: str = Field(pattern=_COUNTRY, description="country of production, ISO 3166-1 alpha-2")
    basis: Literal["actual_verified", "default"]
    see_direct: Number | None = Field(default=None, ge=0)
    see_indirect: Number | None = Field(default=None, ge=0)
    default: DefaultValue | None = None
    production_period: str | None = Field(default=None, description="period the actual SEE covers")
    supplier_operator_id: str | None = None
    supplier_installation_id: str | None = None
    verifier_report: str | None = Field(default=None, description="id of the verification report")

    @field_validator("cn_code", mode="before")
    @classmethod
    def _annex_i(cls, value: Any) -> Any:
        # An unquoted 73063077 reads as a number; the code is the same digits.
        return _cbam_cn(str(value)) if isinstance(value, str | int) else value

    @model_validator(mode="after")
    def _has_a_value(self) -> PurchasedPrecursor:
        if self.see_direct is None and self.default is None:
            raise ValueError(
                f"precursor {self.id!r} has neither an actual SEE (see_direct, see_indirect) nor a "
                "default value (default: {direct, indirect, source})"
            )
        if self.basis == "actual_verified" and (self.see_direct is None or self.see_indirect is None):
            raise ValueError(
                "basis actual_verified needs see_direct and see_indirect from the supplier's verified report"
            )
        if self.basis == "default" and self.default is None:
            raise ValueError("basis default needs default: {direct, indirect, source} (IR 2025/2621)")
        return self

    @property
    def category(self) -> str:
        """The Annex I category, derived from the CN code."""
        return cn_category(self.cn_code) or ""


class CbamDeclarations(_Strict):
    """Summary report items the pipeline does not measure, as the operator declares them."""

    measurable_heat: str = "none imported or exported"
    zero_rated_fuels: str = "none"
    waste_gases: str = "none"
    co2_capture: str = "none"
    own_electricity_generation: str = "none"
    precursor_period_weighting: str = "not applied (Art. 14(1))"
    multi_source_precursors: str = "not applied (Art. 14(2)-(3))"


class CbamVerification(_Strict):
    """Who verified the installation's own data for the reporting year [IR-2025-2546]."""

    verifier: str = Field(min_length=1, description="the accredited verifier's name")
    accreditation: str | None = Field(default=None, description="accreditation body and number")
    statement_reference: str = Field(min_length=1, description="the verification statement's reference")
    year: Integer = Field(ge=2026, le=2100, description="the reporting year the statement covers")


class CarbonPricePaid(_Strict):
    """A carbon price paid in the country of origin for the embedded emissions [CBAM-REG Art. 9]."""

    year: Integer = Field(ge=2026, le=2100, description="the reporting year it was paid for")
    instrument: str = Field(min_length=1, description="e.g. Korea ETS allowances surrendered, a carbon tax")
    amount: Number = Field(ge=0, description="the amount paid, in currency")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. KRW, VND, EUR")
    goods: list[Identifier] = Field(min_length=1, description="ids in cbam.goods the price covers")
    rebate: str | None = Field(
        default=None, description="any rebate or compensation received, which reduces the price paid"
    )


class Cbam(_Strict):
    """The ``cbam`` section: what the embedded-emissions ledger and its reports need."""

    operator: CbamOperator
    installation: CbamInstallation
    electricity: CbamElectricity = Field(default_factory=CbamElectricity)
    processes: list[CbamProcess] = Field(min_length=1)
    goods: list[CbamGood] = Field(
        min_length=1,
        max_length=500,
        description="an installation makes a handful; the bound keeps chains of own-made precursors short",
    )
    purchased_precursors: list[PurchasedPrecursor] = Field(default_factory=list)
    declarations: CbamDeclarations = Field(default_factory=CbamDeclarations)
    verifications: list[CbamVerification] = Field(
        default_factory=list, description="the verification statement of each verified year"
    )
    carbon_prices_paid: list[CarbonPricePaid] = Field(default_factory=list)
    # Our choice, not a regulatory figure: the verifier's 5 % materiality at goods level (IR 2025/2546,
    # as summarised in [CBAM-NOTE] section 5.1.4, VERIFY) is the order of magnitude a gap must stay under.
    min_data_completeness: Number = Field(
        default=0.95,
        ge=0,
        le=1,
        description="share of each process's operating hours that must have data for a report to be "
        "signed without --allow-partial (docs/cbam.md)",
    )


Precision = Literal["s", "ms", "us", "ns"]


def _default_precision() -> dict[str, Precision]:
    return {"default": "s"}


class OutboxSettings(_Strict):
    """The durable outbox in front of a sink: its bound and what happens when it is full."""

    max_bytes: Integer = Field(default=1_073_741_824, gt=0, description="bytes of waiting lines (1 GiB)")
    when_full: Literal["block", "drop_oldest"] = Field(
        default="block", description="block back-pressures the pipeline; drop_oldest counts what it drops"
    )


class InfluxDbSink(_Strict):
    """InfluxDB through its v2 write API (InfluxDB 2.x and 3.x; 1.8+ accepts the same endpoint)."""

    type: Literal["influxdb"]
    id: Identifier = "influxdb"
    url: str = Field(description="http(s)://host[:port][/path]; ${VAR} allowed")
    org: str = Field(min_length=1)
    bucket: str = Field(min_length=1)
    token_env: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="name of the environment variable holding the token"
    )
    batch_size: Integer = Field(default=5_000, gt=0, le=1_000_000, description="lines per write")
    flush_interval_s: Number = Field(default=1.0, gt=0, description="longest wait before a partial batch")
    gzip: bool = Field(default=True, strict=True, description="compress request bodies")
    precision: dict[str, Precision] = Field(
        default_factory=_default_precision,
        description="time precision per measurement; `default` for the others",
    )
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://(\[[0-9A-Fa-f:.]+\]|[^/:\s\[\]]+)(:\d{1,5})?(/\S*)?", value):
            raise ValueError(f"{value!r} is not http(s)://host[:port][/path]")
        return value

    def precision_of(self, measurement: str) -> Precision:
        """The time precision of ``measurement``'s lines."""
        return self.precision.get(measurement) or self.precision.get("default") or "s"


Sink = Annotated[InfluxDbSink, Field(discriminator="type")]


_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})")


def _topic_name(value: str) -> str:
    if not _TOPIC.fullmatch(value) or value in {".", ".."}:
        raise ValueError(f"{value!r} is not a Kafka topic name (letters, digits, '.', '_', '-'; at most 249)")
    return value


TopicName = Annotated[str, AfterValidator(_topic_name)]


class KafkaTopics(_Strict):
    """The versioned topics of the kafka runtime (docs/kafka.md)."""

    readings: TopicName = Field(default="plantstream.readings.v1", description="Readings, keyed by machine")
    points: TopicName = Field(
        default="plantstream.points.v1", description="Points, keyed by machine (roll-ups: line or site)"
    )
    deadletter: TopicName = Field(
        default="plantstream.deadletter.v1", description="refused input with its reason"
    )
    windows: TopicName = Field(
        default="plantstream.windows.v1",
        description="closed machine windows and watermarks for the roll-ups, keyed by site",
    )

    @model_validator(mode="after")
    def _distinct(self) -> KafkaTopics:
        names = [self.readings, self.points, self.deadletter]
        if len(set(names)) != len(names):
            raise ValueError("readings, points and deadletter must be three different topics")
        if self.windows in names:
            raise ValueError("windows must be a topic of its own, not readings, points or deadletter")
        return self


class Kafka(_Strict):
    """The kafka runtime: where the broker is, the topics, and how they are created."""

    bootstrap: str = Field(
        default="127.0.0.1:9092", description="host:port[,host:port...]; ${KAFKA_BOOTSTRAP} allowed"
    )
    topics: KafkaTopics = Field(default_factory=KafkaTopics)
    partitions: Integer = Field(default=6, ge=1, le=10_000, description="bounds the parallelism of `process`")
    replication: Integer = Field(default=1, ge=1, le=32, description="replication factor of created topics")
    group: str = Field(default="plantstream", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")

    @field_validator("bootstrap")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        servers = [item.strip() for item in value.split(",")]
        for server in servers:
            match = _HOST_PORT.fullmatch(server)
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise ValueError(f"{server!r} is not host:port (a list is comma-separated)")
        return ",".join(servers)

    def servers(self) -> list[str]:
        """The bootstrap servers as a list."""
        return self.bootstrap.split(",")


class Http(_Strict):
    """The embedded runtime's loopback endpoint: ``/healthz``, ``/metrics``, ``/stream``."""

    port: int = Field(
        default=8765, ge=0, le=65535, description="loopback port (0: any free one); --http-port overrides it"
    )


class PlantModel(_Strict):
    """A whole plant file."""

    sites: list[Site] = Field(min_length=1)
    sources: list[Source] = Field(default_factory=list)
    calendars: dict[Identifier, Calendar] = Field(default_factory=dict)
    production: Production = Field(default_factory=Production)
    cbam: Cbam | None = None
    sinks: list[Sink] = Field(default_factory=list)
    kafka: Kafka | None = Field(default=None, description="the kafka runtime (collect, process, sink)")
    http: Http = Field(default_factory=Http)
    reasons: ReasonTree = Field(default_factory=ReasonTree, description="stop reason codes, defined once")

    def machines(self) -> list[tuple[Site, Line, Machine]]:
        """Every machine with the site and line it belongs to, in file order."""
        return [(site, line, m) for site in self.sites for line in site.lines for m in line.machines]


def cross_check(plant: PlantModel) -> list[tuple[tuple[str | int, ...], str]]:
    """Check what one model cannot see alone: unique ids, calendar and CBAM references.

    Returns (key path, message) pairs, so the loader can point at the offending line.
    """
    issues: list[tuple[tuple[str | int, ...], str]] = []
    sink_ids: set[str] = set()
    for i, sink in enumerate(plant.sinks):
        if sink.id in sink_ids:
            issues.append(
                (("sinks", i, "id"), f"sink id {sink.id!r} is used twice (it names the outbox file)")
            )
        sink_ids.add(sink.id)
    known = (
        "defined: " + ", ".join(sorted(plant.calendars)) if plant.calendars else "no calendars are defined"
    )
    owners: dict[str, tuple[str | int, ...]] = {}
    for s, site in enumerate(plant.sites):
        site_path: tuple[str | int, ...] = ("sites", s)
        refs = [((*site_path, "calendar"), site.calendar)]
        for li, line in enumerate(site.lines):
            line_path = (*site_path, "lines", li)
            refs.append(((*line_path, "calendar"), line.calendar))
            for mi, machine in enumerate(line.machines):
                path = (*line_path, "machines", mi)
                refs.append(((*path, "calendar"), machine.calendar))
                if machine.id in owners:
                    issues.append(
                        (
                            (*path, "id"),
                            f"machine id {machine.id!r} is used twice (readings name machines by id)",
                        )
                    )
                owners.setdefault(machine.id, path)
        for ref_path, ref in refs:
            if ref is not None and ref not in plant.calendars:
                issues.append((ref_path, f"unknown calendar {ref!r} ({known})"))
    issues.extend(plant.reasons.problems())
    issues.extend(_event_signal_roles(plant))
    if plant.cbam is not None:
        issues.extend(_cross_check_cbam(plant, plant.cbam))
    return issues


def _event_signal_roles(plant: PlantModel) -> list[tuple[tuple[str | int, ...], str]]:
    """An event's reason goes to a signal with role ``reason`` (existence is mapping.py's check)."""
    machines = {m.id: m for _, _, m in plant.machines()}
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for i, source in enumerate(plant.sources):
        if not isinstance(source, OpcUaSource) or source.events is None:
            continue
        for w, match in enumerate(source.events.where):
            machine = machines.get(match.machine)
            signal = machine.signals.get(match.signal) if machine is not None else None
            if signal is not None and signal.role is not Role.REASON:
                issues.append(
                    (
                        ("sources", i, "events", "where", w, "signal"),
                        f"signal {match.signal!r} of machine {match.machine!r} has role {signal.role.value}; "
                        "events set a signal with role reason",
                    )
                )
    return issues


def _unique(items: list[Any], section: str, what: str) -> list[tuple[tuple[str | int, ...], str]]:
    seen: set[str] = set()
    out: list[tuple[tuple[str | int, ...], str]] = []
    for i, item in enumerate(items):
        if item.id in seen:
            out.append((("cbam", section, i, "id"), f"{what} id {item.id!r} is used twice"))
        seen.add(item.id)
    return out


def _cross_check_cbam(plant: PlantModel, cbam: Cbam) -> list[tuple[tuple[str | int, ...], str]]:
    """References inside the ``cbam`` section and from it to the machines of the plant."""
    issues = [
        *_unique(cbam.processes, "processes", "process"),
        *_unique(cbam.goods, "goods", "good"),
        *_unique(cbam.purchased_precursors, "purchased_precursors", "precursor"),
    ]
    machines = {m.id: (site, m) for site, _, m in plant.machines()}
    sites = [site.id for site in plant.sites]
    site_id = cbam.installation.site
    if site_id is None and len(sites) > 1:
        issues.append((("cbam", "installation"), f"name the site of the installation (site: one of {sites})"))
    elif site_id is not None and site_id not in sites:
        issues.append((("cbam", "installation", "site"), f"unknown site {site_id!r} (sites: {sites})"))
    owner = _process_machines(cbam, machines, site_id, issues)
    processes = {process.id for process in cbam.processes}
    goods = {good.id: good for good in cbam.goods}
    purchased = {item.id for item in cbam.purchased_precursors}
    issues.extend(_route_issues(cbam))
    for g, good in enumerate(cbam.goods):
        path = ("cbam", "goods", g)
        if good.process not in processes:
            issues.append(
                ((*path, "process"), f"unknown process {good.process!r} (known: {sorted(processes)})")
            )
        out_machine = good.output.machine
        if out_machine not in machines:
            issues.append(((*path, "output", "machine"), f"machine {out_machine!r} does not exist"))
        else:
            if owner.get(out_machine) != good.process:
                issues.append(
                    (
                        (*path, "output", "machine"),
                        f"machine {out_machine!r} is not one of process {good.process!r}'s machines",
                    )
                )
            machine = machines[out_machine][1]
            if machine.signal_of(Role.GOOD_COUNT) is None and machine.signal_of(Role.TOTAL_COUNT) is None:
                issues.append(
                    (
                        (*path, "output", "machine"),
                        f"machine {out_machine!r} has no good_count or total_count signal to count output",
                    )
                )
        for i, pre in enumerate(good.precursors):
            ppath = (*path, "precursors", i)
            if pre.metered is not None:
                issues.extend(
                    _counting_machine(pre.metered.machine, machines, (*ppath, "metered", "machine"))
                )
            if pre.purchased is not None and pre.purchased not in purchased:
                issues.append(((*ppath, "purchased"), f"unknown purchased precursor {pre.purchased!r}"))
            if pre.good is not None:
                made = goods.get(pre.good)
                if made is None:
                    issues.append(((*ppath, "good"), f"unknown good {pre.good!r}"))
                elif made.process == good.process:
                    issues.append(
                        (
                            (*ppath, "good"),
                            f"good {pre.good!r} is made in the same process {good.process!r}; a precursor "
                            "produced inside the same production process is not counted "
                            "(2025/2547 Annex III)",
                        )
                    )
    issues.extend(_source_streams(cbam, machines, owner, site_id))
    issues.extend(_stream_gases(cbam))
    for c, price in enumerate(cbam.carbon_prices_paid):
        for i, gid in enumerate(price.goods):
            if gid not in goods:
                issues.append(
                    (
                        ("cbam", "carbon_prices_paid", c, "goods", i),
                        f"unknown good {gid!r} (known: {sorted(goods)})",
                    )
                )
    years = [v.year for v in cbam.verifications]
    for v, verification in enumerate(cbam.verifications):
        if years.count(verification.year) > 1 and years.index(verification.year) < v:
            issues.append(
                (("cbam", "verifications", v, "year"), f"year {verification.year} has a verification already")
            )
    cyclic = _goods_in_cycles(goods)
    for g, good in enumerate(cbam.goods):
        if good.id in cyclic:
            issues.append(
                (("cbam", "goods", g, "precursors"), f"good {good.id!r} is its own precursor (a cycle)")
            )
    return issues


def _route_issues(cbam: Cbam) -> list[tuple[tuple[str | int, ...], str]]:
    """Each process's route is one of the routes of its goods' sector (the template's code list)."""
    issues: list[tuple[tuple[str | int, ...], str]] = []
    routes = {process.id: (p, process.route) for p, process in enumerate(cbam.processes)}
    for good in cbam.goods:
        if good.process not in routes or not good.category:
            continue
        p, route = routes[good.process]
        if route not in routes_of(good.category):
            issues.append(
                (
                    ("cbam", "processes", p, "route"),
                    f"{route!r} is not a route of {good.category} (good {good.id!r}): one of "
                    f"{'; '.join(routes_of(good.category))}",
                )
            )
    return issues


# Annex I of Reg. 2023/956 lists the greenhouse gases of each good: CO2 for all, N2O for nitric
# acid and the fertilisers made from it, PFCs for aluminium [CBAM-REG].
_GAS_OF_METHOD = {"n2o_measured": ("N2O", "fertilisers"), "pfc_slope": ("PFCs", "aluminium")}


def _stream_gases(cbam: Cbam) -> list[tuple[tuple[str | int, ...], str]]:
    """A stream of N2O or PFCs only in a process of the goods Annex I lists that gas for."""
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for p, process in enumerate(cbam.processes):
        categories = {good.category for good in cbam.goods if good.process == process.id}
        for s, stream in enumerate(process.source_streams):
            if stream.method not in _GAS_OF_METHOD:
                continue
            gas, sector = _GAS_OF_METHOD[stream.method]
            others = sorted(categories - {sector})
            if others:
                issues.append(
                    (
                        ("cbam", "processes", p, "source_streams", s, "method"),
                        f"{gas} count only for {sector} goods (Annex I of Reg. 2023/956); process "
                        f"{process.id!r} makes {', '.join(others)} goods",
                    )
                )
    return issues


def _counting_machine(
    mid: str, machines: dict[str, tuple[Site, Machine]], path: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    """A machine whose counter gives a mass: it exists and has a good or total count."""
    if mid not in machines:
        return [(path, f"machine {mid!r} does not exist (known: {', '.join(sorted(machines))})")]
    machine = machines[mid][1]
    if machine.signal_of(Role.GOOD_COUNT) is None and machine.signal_of(Role.TOTAL_COUNT) is None:
        return [(path, f"machine {mid!r} has no good_count or total_count signal (a scale total or pieces)")]
    return []


def _source_streams(
    cbam: Cbam, machines: dict[str, tuple[Site, Machine]], owner: dict[str, str], site_id: str | None
) -> list[tuple[tuple[str | int, ...], str]]:
    """Source streams: unique ids, and an activity machine that exists and counts."""
    issues: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[str, str] = {}
    for p, process in enumerate(cbam.processes):
        for s, stream in enumerate(process.source_streams):
            path: tuple[str | int, ...] = ("cbam", "processes", p, "source_streams", s)
            if stream.id in seen:
                issues.append(
                    ((*path, "id"), f"source stream {stream.id!r} is already in process {seen[stream.id]!r}")
                )
            seen.setdefault(stream.id, process.id)
            mid = stream.activity.machine
            where = (*path, "activity", "machine")
            if mid not in machines:
                issues.append(
                    (where, f"machine {mid!r} does not exist (known: {', '.join(sorted(machines))})")
                )
                continue
            site, machine = machines[mid]
            if site_id is not None and site.id != site_id:
                issues.append((where, f"machine {mid!r} is not on the installation's site {site_id!r}"))
            if machine.signal_of(Role.GOOD_COUNT) is None and machine.signal_of(Role.TOTAL_COUNT) is None:
                issues.append(
                    (
                        where,
                        f"machine {mid!r} has no good_count or total_count signal (a scale total or pieces)",
                    )
                )
            if stream.material == "fuel" and mid in owner and machine.signal_of(Role.FUEL) is not None:
                # Its fuel meter's CO2 already counts in the process: the same fuel would count twice.
                issues.append(
                    (
                        where,
                        f"machine {mid!r} of process {owner[mid]!r} has a fuel meter whose CO2 already "
                        "counts; meter the fuel one way",
                    )
                )
    return issues


def _process_machines(
    cbam: Cbam,
    machines: dict[str, tuple[Site, Machine]],
    site_id: str | None,
    issues: list[tuple[tuple[str | int, ...], str]],
) -> dict[str, str]:
    """Check the machines of the processes (own and shared); return machine id -> owning process."""
    owner: dict[str, str] = {}
    for p, process in enumerate(cbam.processes):
        for i, mid in enumerate(process.machines):
            path: tuple[str | int, ...] = ("cbam", "processes", p, "machines", i)
            if mid not in machines:
                issues.append(
                    (path, f"machine {mid!r} does not exist (known: {', '.join(sorted(machines))})")
                )
            elif site_id is not None and machines[mid][0].id != site_id:
                issues.append((path, f"machine {mid!r} is not on the installation's site {site_id!r}"))
            elif mid in owner:
                issues.append(
                    (
                        path,
                        f"machine {mid!r} already belongs to process {owner[mid]!r} (emissions counted once)",
                    )
                )
            owner.setdefault(mid, process.id)
    shares: dict[str, float] = {}
    for p, process in enumerate(cbam.processes):
        for i, shared in enumerate(process.shared_machines):
            path = ("cbam", "processes", p, "shared_machines", i, "machine")
            mid = shared.machine
            if mid not in machines:
                issues.append((path, f"machine {mid!r} does not exist"))
            elif mid in owner:
                issues.append(
                    (path, f"machine {mid!r} belongs wholly to process {owner[mid]!r}; it cannot be shared")
                )
            else:
                shares[mid] = shares.get(mid, 0.0) + shared.share
                if shares[mid] > 1 + 1e-9:
                    issues.append(
                        (path, f"the shares of machine {mid!r} add up to {shares[mid]:g}, more than 1")
                    )
    return owner


def _goods_in_cycles(goods: dict[str, CbamGood]) -> set[str]:
    """The goods that are, through own-good precursors, their own precursor.

    Tarjan's strongly connected components, with an explicit stack: a good is on a cycle when its
    component has more than one good or it names itself. Linear in goods and precursors, and no
    recursion, so a chain of thousands of goods costs neither quadratic time nor a RecursionError.
    """
    edges = {
        gid: [pre.good for pre in good.precursors if pre.good is not None and pre.good in goods]
        for gid, good in goods.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: set[str] = set()

    def visit(gid: str) -> None:
        index[gid] = low[gid] = len(index)
        stack.append(gid)
        on_stack.add(gid)

    for root, precursors in edges.items():
        if root in index:
            continue
        visit(root)
        work = [(root, iter(precursors))]
        while work:
            gid, children = work[-1]
            for child in children:
                if child not in index:
                    visit(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[gid] = min(low[gid], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[gid])
                if low[gid] == index[gid]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == gid:
                            break
                    if len(component) > 1 or gid in edges[gid]:
                        cyclic.update(component)
    return cyclic
