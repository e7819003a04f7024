"""The broker's lasting state as a value and as JSON (``broker/persistence.py``): what a
restart keeps, what it drops, and how a damaged file is refused. No files, no clock."""

from __future__ import annotations

import json

import pytest

from emulator.broker.persistence import (
    BrokerSnapshot,
    SavedMessage,
    SavedSession,
    SnapshotError,
    from_json,
    restore,
    snapshot,
    to_json,
)
from emulator.broker.sessions import Outgoing, Session
from emulator.broker.state import BrokerState, RetainedMessage
from emulator.messages import PublishProperties
from emulator.services.saved_tables import decode_value, encode_value

NOW = 1_700_000_000_000
HOUR = 3_600_000


def persistent(state: BrokerState, client_id: str, *filters: str) -> Session:
    """An offline persistent session subscribed at QoS 1, as one is after its client left."""
    session = Session(client_id, False)
    state.sessions[client_id] = session
    for topic_filter in filters:
        state.subscribe(session, topic_filter, 1)
    return session


def publish(state: BrokerState, topic: str, payload: bytes, qos: int = 1) -> None:
    state.deliver(topic, payload, qos, state.subscriptions.match(topic), NOW)


def round_trip(state: BrokerState, **kwargs: int) -> tuple[BrokerState, dict[str, int]]:
    saved = snapshot(state, NOW, HOUR, {}, kwargs.get("max_retained", 500_000))
    restored = BrokerState()
    left = restore(restored, from_json(to_json(saved)), kwargs.get("later", NOW))
    return restored, left


def test_retained_messages_survive_with_their_bytes_qos_and_time() -> None:
    state = BrokerState()
    state.retained["lamp/state"] = RetainedMessage("lamp/state", b"\x00\xffon", 1, NOW - 5)
    state.retained["chat/topic"] = RetainedMessage("chat/topic", "héllo".encode(), 0, NOW)
    restored, _ = round_trip(state)
    assert restored.retained == state.retained


def test_an_offline_persistent_session_keeps_its_filters_and_stored_messages() -> None:
    state = BrokerState()
    session = persistent(state, "phone", "chat/in/phone", "chat/pub/#")
    session.inflight[7] = Outgoing("chat/in/phone", b"unacked", False)
    session.next_packet_id = 7
    publish(state, "chat/pub/lobby", b"while away 1")
    publish(state, "chat/pub/lobby", b"while away 2")
    publish(state, "chat/pub/lobby", b"qos 0 is not stored", qos=0)
    restored, left = round_trip(state, later=NOW + 1000)
    again = restored.sessions["phone"]
    assert (again.clean, again.owner, again.link, again.absences) == (False, None, None, 1)
    assert again.subscriptions == {"chat/in/phone": 1, "chat/pub/#": 1}
    assert [o.payload for o in again.queued] == [b"while away 1", b"while away 2"]
    assert again.inflight == {7: Outgoing("chat/in/phone", b"unacked", False)}
    assert again.allocate_packet_id() == 8
    # the trie knows the session again: a message published after the restart is stored
    assert restored.subscriptions.match("chat/pub/lobby") == [("phone", 1)]
    publish(restored, "chat/pub/lobby", b"after the restart")
    assert len(again.queued) == 3
    assert left == {"phone": HOUR - 1000}


def test_clean_sessions_are_not_kept() -> None:
    state = BrokerState()
    state.sessions["tab"] = Session("tab", True)
    restored, left = round_trip(state)
    assert restored.sessions == {} and left == {}


def test_a_session_expires_when_its_timer_says_and_is_dropped_once_expired() -> None:
    state = BrokerState()
    persistent(state, "away", "a")
    persistent(state, "gone", "b")
    deadlines = {"away": NOW + 60_000, "gone": NOW + 10}
    saved = snapshot(state, NOW, HOUR, deadlines, 10)
    assert {s.client_id: s.expires_at_ms for s in saved.sessions} == deadlines
    restored = BrokerState()
    left = restore(restored, saved, NOW + 10)
    assert left == {"away": 59_990}
    assert set(restored.sessions) == {"away"}
    assert restored.subscriptions.match("b") == []


def test_a_session_without_a_running_timer_gets_the_whole_expiry_from_now() -> None:
    state = BrokerState()
    persistent(state, "online", "t")
    (saved,) = snapshot(state, NOW, HOUR, {}, 10).sessions
    assert saved.expires_at_ms == NOW + HOUR


def test_only_the_newest_retained_messages_are_kept_past_the_bound() -> None:
    state = BrokerState()
    for i in range(5):
        state.retained[f"t/{i}"] = RetainedMessage(f"t/{i}", b"x", 0, NOW + (i * 7) % 5)
    restored, _ = round_trip(state, max_retained=2)
    assert sorted(restored.retained) == ["t/2", "t/4"]  # modified at NOW+4 and NOW+3


def test_the_json_names_its_format_and_base64_payloads() -> None:
    saved = BrokerSnapshot(
        (RetainedMessage("t", b"\x00", 1, NOW),),
        (SavedSession("c", (("f", 1),), (), (SavedMessage("f", b"hi"),), 3, NOW),),
    )
    body = json.loads(to_json(saved))
    assert body["format"] == 1
    assert body["retained"][0]["payload"] == "AA=="
    assert body["sessions"][0]["queued"] == [{"topic": "f", "payload": "aGk=", "retain": False}]
    assert from_json(to_json(saved)) == saved


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "not a broker state of format 1"),
        ('{"format": 2, "retained": [], "sessions": []}', "not a broker state of format 1"),
        ("{not json", "unreadable broker state: JSONDecodeError"),
        ('{"format": 1, "sessions": []}', "unreadable broker state: KeyError: 'retained'"),
        (
            '{"format": 1, "sessions": [], "retained": '
            '[{"topic": "t", "payload": "!!", "qos": 0, "lastModifiedTime": 1}]}',
            "unreadable broker state: Error",
        ),
    ],
)
def test_a_damaged_file_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(SnapshotError) as info:
        from_json(text)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "value",
    [
        {"S": "héllo"},
        {"N": "1.5"},
        {"B": b"\x00\xff"},
        {"BS": [b"a", b"\x01"]},
        {"M": {"text": {"S": "x"}, "raw": {"B": b"\x02"}, "deep": {"L": [{"B": b"\x03"}]}}},
        {"NULL": True},
    ],
)
def test_moto_table_items_survive_json_with_their_bytes(value: dict[str, object]) -> None:
    """moto's tables are saved as DynamoDB's wire form; JSON has no bytes: base64."""
    text = json.dumps(encode_value(value))
    assert decode_value(json.loads(text)) == value


def test_mqtt5_sessions_and_message_properties_survive() -> None:
    """An MQTT 5 session stays an MQTT 5 session (AWS: it resumes only under MQTT 5) with
    its own expiry, and stored and retained messages keep their MQTT 5 properties."""
    props = PublishProperties(1, NOW + 60_000, "text/plain", "re/ply", b"\x00c", (("k", "v"),))
    state = BrokerState()
    session = persistent(state, "dev5", "d/#")
    session.protocol = 5
    session.expiry = 120.0
    session.queued.append(Outgoing("d/x", b"stored", False, props))
    state.retained["d/r"] = RetainedMessage("d/r", b"kept", 1, NOW, props)
    restored, left = round_trip(state, later=NOW + 1000)
    again = restored.sessions["dev5"]
    assert (again.protocol, again.expiry) == (5, 120.0)
    assert list(again.queued) == [Outgoing("d/x", b"stored", False, props)]
    assert restored.retained["d/r"].properties == props
