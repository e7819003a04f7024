"""The observer hub (emulator/observe.py), the console's JSON views and trigger names: pure values."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from emulator.console.taps import trigger_of
from emulator.console.views import event_json
from emulator.messages import InboundMessage, PublishProperties
from emulator.observe import (
    NO_OUTPUT,
    PAYLOAD_KEPT,
    MessageSeen,
    ObserverHub,
    TooManyViewers,
    json_default,
    kept,
    properties_json,
    request_fields,
)


def seen(seq: int) -> MessageSeen:
    return MessageSeen(seq, 0, "c", "mqtt", "t", 0, False, b"{}", 2, 0, None)


def test_the_hub_is_active_while_a_viewer_is_attached() -> None:
    hub = ObserverHub()
    calls: list[bool] = []
    hub.on_activity.append(calls.append)
    assert not hub.active
    first = hub.attach(lambda: None)
    second = hub.attach(lambda: None)
    hub.detach(first)
    assert hub.active and calls == [True]
    hub.detach(second)
    assert not hub.active and calls == [True, False]


def test_a_slow_viewer_loses_only_its_own_oldest_events() -> None:
    hub = ObserverHub()
    woken: list[int] = []
    slow = hub.attach(lambda: woken.append(1), limit=3)
    fast = hub.attach(lambda: None, limit=100)
    for seq in range(1, 6):
        hub.emit(seen(seq))
    events, dropped = slow.take()
    assert [e.seq for e in events] == [3, 4, 5] and dropped == 2
    assert [e.seq for e in fast.take()[0]] == [1, 2, 3, 4, 5]
    assert len(woken) == 5
    assert slow.take() == ([], 0)  # the count starts again


def test_viewers_are_bounded() -> None:
    hub = ObserverHub(max_viewers=1)
    hub.attach(lambda: None)
    with pytest.raises(TooManyViewers):
        hub.attach(lambda: None)


def test_messages_keep_their_number_and_a_republished_one_its_parent() -> None:
    hub = ObserverHub()
    hub.attach(lambda: None)
    source, copy, other = (
        InboundMessage("a", b""),
        InboundMessage("b", b""),
        InboundMessage("a", b""),
    )
    assert hub.seq_of(source) == hub.seq_of(source) == 1
    assert hub.seq_of(other) == 2  # equal fields, another message
    hub.republished(source, copy)
    assert hub.parent_of(copy) == 1
    assert hub.parent_of(copy) is None  # told once, when the broker sees it
    assert hub.parent_of(other) is None


def test_a_lambda_event_points_back_at_its_message_and_rule() -> None:
    hub = ObserverHub()
    viewer = hub.attach(lambda: None)
    hub.lambda_payload = lambda output: repr(output).encode()

    class LambdaRequest(NamedTuple):
        function_arn: str
        function_name: str
        payload: Any

    msg = InboundMessage("t", b"{}")
    hub.action(msg, "R", "lambda", "queued", LambdaRequest("arn", "fn", {"a": 1}))
    assert hub.invoked_by(b"{'a': 1}") == (1, "R")
    assert hub.invoked_by(b"{'a': 1}") is None
    (event,), _ = viewer.take()
    assert event.request == {"function_arn": "arn", "function_name": "fn", "payload": {"a": 1}}


def test_an_evaluation_says_whether_where_passed() -> None:
    hub = ObserverHub()
    viewer = hub.attach(lambda: None)
    msg = InboundMessage("t", b"{}")
    hub.evaluated(msg, "Passed", {"x": 1})
    hub.evaluated(msg, "Filtered", NO_OUTPUT)
    hub.evaluated(msg, "Broken", NO_OUTPUT, "division by zero")
    events, _ = viewer.take()
    assert [(e.rule, e.matched, e.output, e.error) for e in events] == [
        ("Passed", True, {"x": 1}, None),
        ("Filtered", False, None, None),
        ("Broken", False, None, "division by zero"),
    ]


def test_a_request_is_shown_with_aws_names_where_it_gives_them() -> None:
    class PutItemRequest(NamedTuple):
        table_name: str
        item: Any

        def describe(self) -> dict[str, Any]:
            return {"tableName": self.table_name}

    shown = request_fields(PutItemRequest("chat", {"id": "1"}))
    assert shown == {"tableName": "chat", "item": {"id": "1"}}


def test_values_json_has_no_type_for() -> None:
    assert json_default(b"text") == "text"
    assert json_default(b"\xff\x00") == {"base64": "/wA="}
    assert json_default(frozenset({1})) == [1]


def test_what_the_page_receives_for_an_event() -> None:
    assert event_json(seen(7)) == {
        "seq": 7,
        "time_ms": 0,
        "client_id": "c",
        "transport": "mqtt",
        "topic": "t",
        "qos": 0,
        "retain": False,
        "payload": "{}",
        "size": 2,
        "hops": 0,
        "parent": None,
        "ingest_rule": None,
        "properties": None,
        "kind": "message",
    }
    binary = MessageSeen(1, 0, None, "http", "t", 0, False, b"\xff\xfe", 2, 0, None)
    assert event_json(binary)["payload"] == {"base64": "//4="}


def test_a_payload_kept_cut_inside_a_character_is_still_text() -> None:
    long = b"a" + "é".encode() * PAYLOAD_KEPT  # its first PAYLOAD_KEPT bytes end mid-character
    assert kept(long) == long[:PAYLOAD_KEPT] and kept(b"{}") == b"{}"
    assert json_default(kept(long)) == "a" + "é" * ((PAYLOAD_KEPT - 1) // 2)


@pytest.mark.parametrize(
    ("source", "rule", "trigger"),
    [
        (("mapping", "chat-stream"), None, "kinesis chat-stream"),
        (("invoke", "AKIDLOCAL"), None, "Invoke API (AKIDLOCAL)"),
        (("invoke-from", "127.0.0.1"), None, "Invoke API (127.0.0.1)"),
        ("web-1", "ChatLambda", "rule ChatLambda"),
        ("web-1", None, "rule (client web-1)"),
        (("rule", "ChatPresence"), None, "rule ChatPresence"),
        (("emulator", ""), None, "emulator"),
    ],
)
def test_an_invocations_trigger_is_named_from_its_source(
    source: Any, rule: str | None, trigger: str
) -> None:
    assert trigger_of(source, rule) == trigger


def test_mqtt5_properties_are_shown_by_name() -> None:
    properties = PublishProperties(1, None, "application/json", "re/ply", b"id", (("k", "v"),))
    assert properties_json(properties) == {
        "payload_format": 1,
        "content_type": "application/json",
        "response_topic": "re/ply",
        "correlation_data": b"id",
        "user_properties": (("k", "v"),),
    }
    assert properties_json(None) is None
