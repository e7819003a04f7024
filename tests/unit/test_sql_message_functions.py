"""The message functions the table-driven cases cannot show: those that need a UUID source
(newuuid(), traceid()) and the MQTT 5 property readers on a message that has properties
(the broker does not take MQTT 5 yet, so the cases only see messages without them)."""

from __future__ import annotations

import itertools
import re

from emulator.messages import PublishProperties
from emulator.sql.context import MessageContext
from emulator.sql.functions.aws import mqtt_property, user_properties
from emulator.sql.statement import compile_statement
from emulator.sql.values import UNDEFINED

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


def _uuids() -> MessageContext:
    counter = itertools.count()
    return MessageContext(
        topic="t",
        payload=b"{}",
        client_id="device-1",
        newuuid=lambda: f"00000000-0000-4000-8000-{next(counter):012x}",
    )


def test_newuuid_is_new_on_every_call() -> None:
    """iot-sql-functions.md, newuuid(): a random 16-byte UUID, one per call."""
    out = compile_statement("SELECT newuuid() AS a, newuuid() AS b FROM 't'").evaluate(_uuids())
    assert isinstance(out, dict)
    assert UUID.match(out["a"]) and UUID.match(out["b"])
    assert out["a"] != out["b"]


def test_traceid_of_an_mqtt_message_is_one_id_for_every_call_and_rule() -> None:
    """iot-sql-functions.md, traceid(): the trace ID of the MQTT message: the same in
    every call and every rule that sees the message."""
    ctx = _uuids()
    first = compile_statement("SELECT traceid() AS a, traceid() AS b FROM 't'").evaluate(ctx)
    second = compile_statement("SELECT VALUE traceid() FROM 't'").evaluate(ctx)
    assert isinstance(first, dict)
    assert first["a"] == first["b"] == second
    assert UUID.match(first["a"])


def test_traceid_keeps_the_messages_own() -> None:
    ctx = _uuids()
    ctx.trace_id = "12345678-1234-1234-1234-123456789012"
    out = compile_statement("SELECT traceid() AS t FROM 't'").evaluate(ctx)
    assert out == {"t": "12345678-1234-1234-1234-123456789012"}


PROPS = PublishProperties(
    payload_format=1,
    content_type="application/json",
    response_topic="reply/to",
    correlation_data=b"corr",
    user_properties=(
        ("some key", "some value"),
        ("other", "x"),
        ("some key", "value with duplicate key"),
    ),
)


def test_mqtt_property_present_and_absent() -> None:
    """aws-iot-current.md 4, get_mqtt_property(): each property when present."""
    assert mqtt_property(PROPS, "format_indicator") == "UTF8_DATA"
    assert mqtt_property(PROPS, "content_type") == "application/json"
    assert mqtt_property(PROPS, "response_topic") == "reply/to"
    assert mqtt_property(PROPS, "correlation_data") == "Y29ycg=="
    assert mqtt_property(PROPS, "user_properties") is UNDEFINED
    assert mqtt_property(PublishProperties(), "format_indicator") == "UNSPECIFIED_BYTES"


def test_user_properties_by_key_in_order_and_all_as_pairs() -> None:
    """aws-iot-current.md 4, get_user_properties(): every value of a key in order; all
    pairs as one-pair objects."""
    assert user_properties(PROPS, "some key") == ["some value", "value with duplicate key"]
    assert user_properties(PROPS, "missing") is UNDEFINED
    assert user_properties(PROPS) == [
        {"some key": "some value"},
        {"other": "x"},
        {"some key": "value with duplicate key"},
    ]
    assert user_properties(PublishProperties()) is UNDEFINED


def test_the_sql_reads_the_messages_own_properties() -> None:
    """get_mqtt_property() and get_user_properties() in a statement read the properties the
    message arrived with (the broker's MQTT 5 PUBLISH); without any, the defaults."""
    statement = compile_statement(
        "SELECT get_mqtt_property('content_type') AS ct, get_user_properties('some key') AS k, "
        "get_mqtt_property('format_indicator') AS f FROM 't'"
    )
    ctx = _uuids()
    ctx.properties = PROPS
    assert statement.evaluate(ctx) == {
        "ct": "application/json",
        "k": ["some value", "value with duplicate key"],
        "f": "UTF8_DATA",
    }
    assert statement.evaluate(_uuids()) == {"f": "UNSPECIFIED_BYTES"}
