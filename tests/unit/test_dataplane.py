"""The IoT data plane's model and request parsing, without a server: publish checks (the
same as MQTT's, from emulator/limits.py), AWS error codes and statuses, paging.

The broker side is a small in-memory store that keeps the ``Broker`` protocol of
dataplane/models.py; the real broker is exercised over HTTP in
tests/integration/test_dataplane.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from emulator.awserrors import AwsError
from emulator.dataplane.exceptions import (
    Forbidden,
    InvalidRequest,
    RequestEntityTooLarge,
    ResourceNotFound,
)
from emulator.dataplane.models import MAX_RESULTS, DataPlane
from emulator.dataplane.responses import (
    parse_paging,
    parse_qos,
    parse_retain,
    retained_message_body,
    retained_page_body,
)
from emulator.limits import MAX_PAYLOAD, PublishCheck
from emulator.messages import InboundMessage, IngestMessage, PublishProperties

NOW = 1_700_000_000_123


@dataclass(frozen=True, slots=True)
class Kept:
    topic: str
    payload: bytes
    qos: int
    last_modified_ms: int
    properties: PublishProperties | None = None


class Store:
    """Records publishes and keeps retained messages by topic, in no particular order."""

    def __init__(self) -> None:
        self.published: list[InboundMessage] = []
        self.ingested: list[IngestMessage] = []
        self.retained: dict[str, Kept] = {}

    def publish(self, message: InboundMessage) -> None:
        self.published.append(message)
        if message.retain:
            kept = Kept(message.topic, message.payload, message.qos, message.timestamp_ms)
            self.retained[message.topic] = kept

    def ingest(self, message: IngestMessage) -> None:
        self.ingested.append(message)

    def get_retained(self, topic: str) -> Kept | None:
        return self.retained.get(topic)

    def list_retained(self) -> list[Kept]:
        return list(reversed(self.retained.values()))


def plane() -> tuple[DataPlane, Store]:
    store = Store()
    return DataPlane(store, PublishCheck(), lambda: NOW), store


def test_publish_reaches_the_broker_stamped_and_without_a_client_id() -> None:
    model, store = plane()
    model.publish("dp/a", b"one", 1, True, "192.0.2.4")
    assert store.published == [
        InboundMessage(
            topic="dp/a",
            payload=b"one",
            qos=1,
            retain=True,
            timestamp_ms=NOW,
            source_ip="192.0.2.4",  # the HTTP caller: sourceip()
        )
    ]


def test_a_basic_ingest_publish_goes_to_its_rule_only_and_is_never_retained() -> None:
    model, store = plane()
    model.publish("$aws/rules/chat/in/room", b"{}", 1, True, "192.0.2.4")
    assert store.ingested == [
        IngestMessage(
            topic="in/room",
            payload=b"{}",
            qos=1,
            timestamp_ms=NOW,
            source_ip="192.0.2.4",
            rule="chat",
        )
    ]
    assert store.published == [] and store.retained == {}


@pytest.mark.parametrize(
    ("topic", "payload", "qos", "error", "code", "status"),
    [
        ("a/+/b", b"", 0, InvalidRequest, "InvalidRequestException", 400),
        ("", b"", 0, InvalidRequest, "InvalidRequestException", 400),
        ("a/" * 8 + "b", b"", 0, InvalidRequest, "InvalidRequestException", 400),
        ("$aws/events/presence/connected/x", b"", 0, Forbidden, "ForbiddenException", 403),
        ("$SYS/broker", b"", 0, Forbidden, "ForbiddenException", 403),
        (
            "big",
            b"x" * (MAX_PAYLOAD + 1),
            0,
            RequestEntityTooLarge,
            "RequestEntityTooLargeException",
            413,
        ),
        ("dp/a", b"", 2, InvalidRequest, "InvalidRequestException", 400),
        ("dp/a", b"", -1, InvalidRequest, "InvalidRequestException", 400),
    ],
)
def test_publish_refusals_carry_the_aws_code_and_status(
    topic: str, payload: bytes, qos: int, error: type[AwsError], code: str, status: int
) -> None:
    model, store = plane()
    with pytest.raises(error) as info:
        model.publish(topic, payload, qos)
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.message and store.published == []


def test_reserved_topics_clients_may_publish_to_are_accepted() -> None:
    model, store = plane()
    model.publish("$aws/things/lamp/shadow/update", b"{}")
    assert [m.topic for m in store.published] == ["$aws/things/lamp/shadow/update"]


def test_the_largest_payload_is_accepted() -> None:
    model, store = plane()
    model.publish("big", b"x" * MAX_PAYLOAD)
    assert len(store.published) == 1


def test_get_retained_message() -> None:
    model, _ = plane()
    model.publish("dp/a", b"\x00\xff", 1, True)
    body = retained_message_body(model.get_retained_message("dp/a"))
    assert body == {"topic": "dp/a", "payload": "AP8=", "qos": 1, "lastModifiedTime": NOW}
    with pytest.raises(ResourceNotFound) as info:
        model.get_retained_message("dp/none")
    assert info.value.status == 404 and info.value.message == "no retained message on dp/none"


def test_list_retained_messages_pages_in_topic_order() -> None:
    model, _ = plane()
    for topic in ("t/c", "t/a", "t/e", "t/b", "t/d"):
        model.publish(topic, topic.encode() * 2, 0, True)
    first = model.list_retained_messages(2)
    assert [m.topic for m in first.messages] == ["t/a", "t/b"] and first.next_token
    second = model.list_retained_messages(2, first.next_token)
    assert [m.topic for m in second.messages] == ["t/c", "t/d"] and second.next_token
    last = model.list_retained_messages(2, second.next_token)
    assert [m.topic for m in last.messages] == ["t/e"] and last.next_token is None
    assert retained_page_body(last) == {
        "retainedTopics": [{"topic": "t/e", "payloadSize": 6, "qos": 0, "lastModifiedTime": NOW}]
    }
    assert retained_page_body(first)["nextToken"] == first.next_token


def test_a_page_boundary_holds_when_topics_come_and_go_between_calls() -> None:
    model, store = plane()
    for topic in ("t/a", "t/b", "t/c", "t/d"):
        model.publish(topic, b"x", 0, True)
    first = model.list_retained_messages(2)
    del store.retained["t/a"]  # an offset would now skip t/c
    model.publish("t/0", b"x", 0, True)
    second = model.list_retained_messages(2, first.next_token)
    assert [m.topic for m in second.messages] == ["t/c", "t/d"] and second.next_token is None


def test_one_page_holds_everything_by_default() -> None:
    model, _ = plane()
    for n in range(MAX_RESULTS):
        model.publish(f"t/{n:03}", b"x", 0, True)
    page = model.list_retained_messages()
    assert len(page.messages) == MAX_RESULTS and page.next_token is None
    assert model.list_retained_messages(5).next_token is not None
    assert model.list_retained_messages().messages[0].topic == "t/000"


@pytest.mark.parametrize(
    ("max_results", "token", "message"),
    [
        (0, None, "maxResults must be between 1 and 200, not 0"),
        (201, None, "maxResults must be between 1 and 200, not 201"),
        (10, "42", "invalid nextToken '42'"),
        (10, "\u00e9", "invalid nextToken '\u00e9'"),
    ],
)
def test_bad_paging_parameters_are_invalid_requests(
    max_results: int, token: str | None, message: str
) -> None:
    model, _ = plane()
    with pytest.raises(InvalidRequest) as info:
        model.list_retained_messages(max_results, token)
    assert info.value.message == message and info.value.status == 400


@pytest.mark.parametrize(
    ("query", "qos", "retain"),
    [
        ({}, 0, False),
        ({"qos": "1", "retain": "true"}, 1, True),
        ({"qos": "0", "retain": "False"}, 0, False),
        ({"qos": "2"}, 2, False),  # a number: the model refuses it with the AWS error
    ],
)
def test_parse_publish_query(query: dict[str, str], qos: int, retain: bool) -> None:
    assert (parse_qos(query), parse_retain(query)) == (qos, retain)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"qos": "one"}, "qos must be 0 or 1, not 'one'"),
        ({"retain": "yes"}, "retain must be true or false, not 'yes'"),
        ({"maxResults": "many"}, "maxResults must be a number, not 'many'"),
    ],
)
def test_unparsable_parameters_are_invalid_requests(query: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_qos(query)
        parse_retain(query)
        parse_paging(query)
    assert info.value.message == message


def test_parse_paging_defaults() -> None:
    assert parse_paging({}) == (MAX_RESULTS, None)
    assert parse_paging({"maxResults": "5", "nextToken": "dC9h"}) == (5, "dC9h")
    assert parse_paging({"nextToken": ""}) == (MAX_RESULTS, None)
