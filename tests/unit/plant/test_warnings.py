"""Security warnings: transport without security off this machine, secrets written literally."""

from __future__ import annotations

import pytest
from support import one_line_plant

from plantstream.plant import parse_plant
from plantstream.plant.warnings import is_loopback, security_warnings

PLANT = one_line_plant("- id: m1\n  signals: {kw: power_kw}\n", site="s1", line="l1")


def opcua(endpoint: str, security: str) -> str:
    return (
        "sources:\n"
        "  - type: opcua\n"
        "    id: plc\n"
        f"    endpoint: {endpoint}\n"
        f"    security: {security}\n"
        "    groups: [{tags: [{node: 'ns=2;s=kw', machine: m1, signal: kw}]}]\n"
    )


# 10 sources:  13 endpoint  14 security


def mqtt(url: str, extra: str = "") -> str:
    return (
        "sources:\n"
        "  - type: mqtt\n"
        "    id: broker\n"
        f"    url: {url}\n"
        f"{extra}"
        "    subscriptions: [{topic: 'p/{machine}/kw', payload: number, signal: kw}]\n"
    )


# 10 sources:  13 url


def warnings_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    return [str(w) for w in security_warnings(parse_plant(text, environ=environ or {}))]


def test_opcua_security_none_off_loopback_is_a_warning() -> None:
    text = PLANT + opcua("opc.tcp://10.0.0.5:4840/", "{mode: None, allow_insecure: true}")
    assert warnings_of(text) == [
        "plant.yaml:14 sources[0].security.mode: source plc: OPC UA security None to 10.0.0.5, which is "
        "not this machine: readings and passwords cross the network in clear (use SignAndEncrypt)"
    ]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost"])
def test_opcua_security_none_on_loopback_is_quiet(host: str) -> None:
    text = PLANT + opcua(f"opc.tcp://{host}:4840/", "{mode: None, allow_insecure: true}")
    assert warnings_of(text) == []


def test_opcua_sign_and_encrypt_off_loopback_is_quiet() -> None:
    assert warnings_of(PLANT + opcua("opc.tcp://plc7.plant:4840/", "{mode: SignAndEncrypt}")) == []


def test_the_endpoint_from_the_environment_is_judged_after_substitution() -> None:
    text = PLANT + opcua("${ENDPOINT}", "{mode: None, allow_insecure: true}")
    assert warnings_of(text, {"ENDPOINT": "opc.tcp://127.0.0.1:4840/"}) == []
    assert len(warnings_of(text, {"ENDPOINT": "opc.tcp://plc7.plant:4840/"})) == 1


def test_mqtt_without_tls_off_loopback_is_a_warning() -> None:
    [warning] = warnings_of(PLANT + mqtt("mqtt://broker.plant:1883"))
    assert warning == (
        "plant.yaml:13 sources[0].url: source broker: MQTT without TLS to broker.plant, which is not this "
        "machine: readings and passwords cross the network in clear (use mqtts://)"
    )


def test_a_tls_block_without_mqtts_is_named_in_the_warning() -> None:
    [warning] = warnings_of(PLANT + mqtt("mqtt://broker.plant:1883", "    tls: {ca_file: ca.pem}\n"))
    assert warning.endswith("(the tls: block is used only with mqtts://)")


def test_mqtts_and_loopback_mqtt_are_quiet() -> None:
    assert warnings_of(PLANT + mqtt("mqtts://broker.plant:8883")) == []
    assert warnings_of(PLANT + mqtt("mqtt://127.0.0.1:1883")) == []


def test_a_literal_password_is_a_warning_at_its_line() -> None:
    text = PLANT + mqtt("mqtt://127.0.0.1:1883", "    username: op\n    password: hunter2\n")
    assert warnings_of(text) == [
        "plant.yaml:15 sources[0].password: password is written literally in the plant file: "
        "write ${VARIABLE} and set the variable in the environment"
    ]


def test_a_literal_opcua_password_is_a_warning_too() -> None:
    security = "{mode: SignAndEncrypt, username: op, password: 's3cret'}"
    [warning] = warnings_of(PLANT + opcua("opc.tcp://127.0.0.1:4840/", security))
    assert warning.startswith("plant.yaml:14 sources[0].security.password: password is written literally")


@pytest.mark.parametrize("reference", ["${MQTT_PASSWORD}", "${MQTT_PASSWORD:-}", "pre-${MQTT_PASSWORD}"])
def test_a_password_from_the_environment_is_quiet(reference: str) -> None:
    text = PLANT + mqtt("mqtt://127.0.0.1:1883", f"    password: '{reference}'\n")
    assert warnings_of(text, {"MQTT_PASSWORD": "hunter2"}) == []


def test_an_influx_token_is_named_by_variable_but_plain_http_off_loopback_warns() -> None:
    sink = (
        "sinks:\n"
        "  - {type: influxdb, url: 'http://tsdb.plant:8086', org: o, bucket: b, token_env: INFLUX_TOKEN}\n"
    )
    [warning] = warnings_of(PLANT + sink)
    assert warning.startswith("plant.yaml:11 sinks[0].url: sink influxdb: InfluxDB over http to tsdb.plant")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("plc", False),
        ("", False),
    ],
)
def test_loopback_is_decided_without_name_lookups(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
