"""The plant model: what a plant file may say, validated by pydantic before any socket opens.

Every model forbids unknown keys, so a typo is an error that names its line, never a silently
ignored setting. The schema holds structure and units; reference data (grid factors, fuels, GWP
sets) belongs to the calculators and is resolved by the runtime, with errors mapped back to the
line of the plant file that asked for it.

The models live in modules by topic: :mod:`~plantstream.plant.sites` (sites, lines, machines),
:mod:`~plantstream.plant.signals`, :mod:`~plantstream.plant.calendars`,
:mod:`~plantstream.plant.carbon`, :mod:`~plantstream.plant.production`,
:mod:`~plantstream.plant.sources`, :mod:`~plantstream.plant.sinks_config`,
:mod:`~plantstream.plant.runtimes_config`, :mod:`~plantstream.plant.cbam_installation`,
:mod:`~plantstream.plant.cbam_goods` and :mod:`~plantstream.plant.plant_model`, on the shared base
of :mod:`~plantstream.plant.base`; the checks across them in :mod:`~plantstream.plant.checks` and
:mod:`~plantstream.plant.cbam_checks`. This module names them all in one place: code imports the
plant model from here (and the loader's suggestions for a mistyped key come from every model here).
"""

from __future__ import annotations

from plantstream.plant.base import Identifier
from plantstream.plant.calendars import Break, Calendar, Overtime, Shift, Weekday
from plantstream.plant.carbon import Carbon, GridRef, Market
from plantstream.plant.cbam_goods import (
    CarbonPricePaid,
    Cbam,
    CbamDeclarations,
    CbamGood,
    CbamVerification,
    DefaultValue,
    GoodOutput,
    GoodPrecursor,
    PurchasedPrecursor,
)
from plantstream.plant.cbam_installation import (
    CbamElectricity,
    CbamInstallation,
    CbamOperator,
    CbamProcess,
    Coordinates,
    SharedMachine,
    SourceStream,
    StreamActivity,
    StreamFactors,
)
from plantstream.plant.checks import cross_check
from plantstream.plant.plant_model import PlantModel
from plantstream.plant.production import (
    CORRECTION_HISTORY_BYTES,
    CORRECTION_HISTORY_BYTES_MAX,
    OeeMethod,
    Production,
)
from plantstream.plant.reasons import ReasonTree
from plantstream.plant.runtimes_config import Files, Http, Kafka, KafkaTopics, TopicName
from plantstream.plant.signals import (
    CounterSignal,
    EnergySignal,
    FuelSignal,
    PowerSignal,
    ProductSignal,
    ReasonSignal,
    Role,
    Signal,
    StateCategory,
    StateSignal,
)
from plantstream.plant.sinks_config import InfluxDbSink, OutboxSettings, Precision, Sink
from plantstream.plant.sites import Line, Machine, Site
from plantstream.plant.sources import (
    Deadband,
    JsonField,
    JsonTimestamp,
    MqttSource,
    MqttSubscription,
    OpcUaEvents,
    OpcUaEventSource,
    OpcUaGroup,
    OpcUaHistory,
    OpcUaSecurity,
    OpcUaSource,
    OpcUaTag,
    QueueSettings,
    Source,
    TlsSettings,
)

__all__ = [
    "CORRECTION_HISTORY_BYTES",
    "CORRECTION_HISTORY_BYTES_MAX",
    "Break",
    "Calendar",
    "Carbon",
    "CarbonPricePaid",
    "Cbam",
    "CbamDeclarations",
    "CbamElectricity",
    "CbamGood",
    "CbamInstallation",
    "CbamOperator",
    "CbamProcess",
    "CbamVerification",
    "Coordinates",
    "CounterSignal",
    "Deadband",
    "DefaultValue",
    "EnergySignal",
    "Files",
    "FuelSignal",
    "GoodOutput",
    "GoodPrecursor",
    "GridRef",
    "Http",
    "Identifier",
    "InfluxDbSink",
    "JsonField",
    "JsonTimestamp",
    "Kafka",
    "KafkaTopics",
    "Line",
    "Machine",
    "Market",
    "MqttSource",
    "MqttSubscription",
    "OeeMethod",
    "OpcUaEventSource",
    "OpcUaEvents",
    "OpcUaGroup",
    "OpcUaHistory",
    "OpcUaSecurity",
    "OpcUaSource",
    "OpcUaTag",
    "OutboxSettings",
    "Overtime",
    "PlantModel",
    "PowerSignal",
    "Precision",
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
    "SourceStream",
    "StateCategory",
    "StateSignal",
    "StreamActivity",
    "StreamFactors",
    "TlsSettings",
    "TopicName",
    "Weekday",
    "cross_check",
]
