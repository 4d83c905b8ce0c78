"""The `sinks:` section: the agreed keys, their defaults, and errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantstream.plant import PlantError, load_plant, parse_plant

REPO = Path(__file__).resolve().parents[3]
MINIMAL = (REPO / "examples" / "minimal.yaml").read_text()
ENV = {"INFLUX_URL": "http://127.0.0.1:8086", "INFLUX_ORG": "plant", "INFLUX_BUCKET": "b"}
FIRST = MINIMAL.count("\n") + 3  # line number of `- type: influxdb` below

SINK = """
sinks:
  - type: influxdb
    url: http://127.0.0.1:8086
    org: plant
    bucket: plantstream
    token_env: INFLUX_TOKEN
"""


def errors(text: str) -> list[str]:
    with pytest.raises(PlantError) as caught:
        parse_plant(text, environ=ENV)
    return [str(issue) for issue in caught.value.issues]


def test_the_example_has_every_agreed_key() -> None:
    plant = load_plant(REPO / "examples" / "influx.yaml", environ=ENV)
    [sink] = plant.model.sinks
    assert (sink.type, sink.id, sink.url, sink.org, sink.bucket) == (
        "influxdb",
        "influx",
        "http://127.0.0.1:8086",
        "plant",
        "b",
    )
    assert (sink.token_env, sink.batch_size, sink.flush_interval_s, sink.gzip) == (
        "INFLUX_TOKEN",
        5000,
        1.0,
        True,
    )
    assert sink.precision == {"default": "s"}
    assert (sink.outbox.max_bytes, sink.outbox.when_full) == (1_073_741_824, "block")


def test_the_example_is_minimal_plus_the_sink() -> None:
    example = (REPO / "examples" / "influx.yaml").read_text()
    assert example.split("\nsinks:")[0].endswith(MINIMAL.split("sites:", 1)[1])


def test_defaults() -> None:
    [sink] = parse_plant(MINIMAL + SINK).model.sinks
    assert (sink.id, sink.batch_size, sink.flush_interval_s, sink.gzip) == ("influxdb", 5000, 1.0, True)
    assert (sink.outbox.max_bytes, sink.outbox.when_full) == (2**30, "block")
    assert parse_plant(MINIMAL).model.sinks == []


def test_precision_per_measurement_with_a_default() -> None:
    text = MINIMAL + SINK + "    precision: {default: ms, reading: ns}\n"
    [sink] = parse_plant(text).model.sinks
    assert (sink.precision_of("reading"), sink.precision_of("oee")) == ("ns", "ms")
    [plain] = parse_plant(MINIMAL + SINK + "    precision: {oee: s}\n").model.sinks
    assert plain.precision_of("energy") == "s"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    batchsize: 10\n", "sinks[0].batchsize: unknown key (did you mean 'batch_size'?)"),
        (
            "    flush_interval: 2\n",
            "sinks[0].flush_interval: unknown key (did you mean 'flush_interval_s'?)",
        ),
        ("    tokenenv: X\n", "sinks[0].tokenenv: unknown key (did you mean 'token_env'?)"),
        ("    batch_size: 0\n", "sinks[0].batch_size: must be > 0"),
        ("    flush_interval_s: -1\n", "sinks[0].flush_interval_s: must be > 0"),
        ("    precision: {oee: m}\n", "sinks[0].precision.oee: must be 's', 'ms', 'us' or 'ns'"),
        ("    outbox: {max_bytes: 0}\n", "sinks[0].outbox.max_bytes: must be > 0"),
        ("    outbox: {when_full: drop}\n", "sinks[0].outbox.when_full: must be 'block' or 'drop_oldest'"),
        ("    outbox: {max_byte: 5}\n", "sinks[0].outbox.max_byte: unknown key (did you mean 'max_bytes'?)"),
        ("    gzip: yes\n", "sinks[0].gzip: must be a valid boolean"),
    ],
)
def test_errors_name_the_line_and_the_key(extra: str, expected: str) -> None:
    line = FIRST + 5
    assert errors(MINIMAL + SINK + extra) == [f"plant.yaml:{line} {expected}"]


@pytest.mark.parametrize(
    "url",
    ["tcp://127.0.0.1:8086", "127.0.0.1:8086", "http://", "http://host:8086 x", "http://host:port"],
)
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    text = MINIMAL + SINK.replace("http://127.0.0.1:8086", url)
    assert errors(text) == [
        f"plant.yaml:{FIRST + 1} sinks[0].url: {url!r} is not http(s)://host[:port][/path]"
    ]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8086", "https://influx.example:443/", "http://[::1]:8086", "https://eu.cloud/x/y"],
)
def test_http_urls_are_accepted(url: str) -> None:
    [sink] = parse_plant(MINIMAL + SINK.replace("http://127.0.0.1:8086", url)).model.sinks
    assert sink.url == url


def test_an_unknown_type_lists_the_known_ones() -> None:
    text = MINIMAL + SINK.replace("type: influxdb", "type: influx")
    assert errors(text) == [f"plant.yaml:{FIRST} sinks[0]: unknown type 'influx' (types: influxdb)"]


def test_a_sink_without_type() -> None:
    text = MINIMAL + SINK.replace("  - type: influxdb\n    url", "  - url")
    assert errors(text) == [f"plant.yaml:{FIRST} sinks[0]: needs a type"]


def test_a_missing_required_key() -> None:
    text = MINIMAL + SINK.replace("    bucket: plantstream\n", "")
    assert errors(text) == [f"plant.yaml:{FIRST} sinks[0].bucket: required key is missing"]


def test_the_token_env_is_a_variable_name_not_a_token() -> None:
    text = MINIMAL + SINK.replace("INFLUX_TOKEN", "abc-123==")
    [message] = errors(text)
    assert message.startswith(f"plant.yaml:{FIRST + 4} sinks[0].token_env: must match pattern")


def test_sink_ids_are_unique() -> None:
    text = MINIMAL + SINK + SINK.replace("sinks:\n", "")
    assert errors(text) == [
        f"plant.yaml:{FIRST + 6} sinks[1].id: sink id 'influxdb' is used twice (it names the outbox file)"
    ]


def test_url_from_the_environment() -> None:
    text = MINIMAL + SINK.replace("http://127.0.0.1:8086", "${INFLUX_URL}")
    [sink] = parse_plant(text, environ=ENV).model.sinks
    assert sink.url == "http://127.0.0.1:8086"
    assert errors(text.replace("${INFLUX_URL}", "${NOT_SET_ANYWHERE}")) == [
        f"plant.yaml:{FIRST + 1} sinks[0].url: environment variable NOT_SET_ANYWHERE is not set "
        "(write ${NOT_SET_ANYWHERE:-default} for a default)"
    ]
