"""The broker's lasting state as a value, and that value as JSON: no file, no clock.

Theory of operation
-------------------
What outlives a restart on AWS IoT outlives one here: retained messages, and the
persistent sessions (clean session 0) with their subscriptions and the QoS 1 messages
stored for them, until the session expires. ``snapshot`` reads them out of a
``BrokerState`` into a ``BrokerSnapshot``; ``restore`` puts one back into an empty state,
every session offline, and says how long each has left before it expires; ``to_json`` and
``from_json`` are the file format. Reading and writing the file, and the timers, are the
caller's (``store.py``).

Bounds: at most ``max_retained`` retained messages are kept (the newest; AWS: 500,000 per
account); a session holds at most ``max_queued`` stored messages already (``state.py``),
so what is saved is bounded by the same quotas as what is held in memory. Clean sessions
and the connections themselves are never saved: a client reconnects after a restart.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.broker.sessions import Outgoing, Session
from emulator.broker.state import BrokerState, RetainedMessage
from emulator.messages import PublishProperties

FORMAT = 1
Json = Any


class SnapshotError(Exception):
    """A saved state that cannot be read; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class SavedMessage:
    topic: str
    payload: bytes
    retain: bool = False
    properties: PublishProperties | None = None  # MQTT 5, its expiry a time


@dataclass(frozen=True, slots=True)
class SavedSession:
    """A persistent session: its filters, its unacknowledged messages (by packet id) and
    those stored for it, and when it expires (ms since the epoch)."""

    client_id: str
    subscriptions: tuple[tuple[str, int], ...]
    inflight: tuple[tuple[int, SavedMessage], ...]
    queued: tuple[SavedMessage, ...]
    next_packet_id: int
    expires_at_ms: int
    protocol: int = 4  # MQTT 5 sessions resume only under MQTT 5 (AWS)
    expiry: float | None = None  # MQTT 5: its Session Expiry Interval (s)


@dataclass(frozen=True, slots=True)
class BrokerSnapshot:
    retained: tuple[RetainedMessage, ...] = ()
    sessions: tuple[SavedSession, ...] = ()


def snapshot(
    state: BrokerState,
    now_ms: int,
    expiry_ms: int,
    expires_at_ms: Mapping[str, int],
    max_retained: int,
) -> BrokerSnapshot:
    """The lasting part of ``state``. A session offline with a running timer expires when
    ``expires_at_ms`` says; any other (connected, or its timer not started) ``expiry_ms``
    after ``now_ms``, as if it disconnected now."""
    retained = sorted(state.retained.values(), key=lambda r: r.last_modified_ms)
    if len(retained) > max_retained:
        retained = retained[len(retained) - max_retained :]
    sessions = []
    for session in state.sessions.values():
        if session.clean:
            continue
        expires = expires_at_ms.get(session.client_id) if session.owner is None else None
        if expires is None and session.expiry is not None:
            expires = now_ms + int(session.expiry * 1000)
        sessions.append(
            SavedSession(
                session.client_id,
                tuple(session.subscriptions.items()),
                tuple((pid, _saved(o)) for pid, o in session.inflight.items()),
                tuple(_saved(o) for o in session.queued),
                session.next_packet_id,
                now_ms + expiry_ms if expires is None else expires,
                session.protocol,
                session.expiry,
            )
        )
    return BrokerSnapshot(tuple(retained), tuple(sessions))


def _saved(o: Outgoing) -> SavedMessage:
    return SavedMessage(o.topic, o.payload, o.retain, o.properties)


def restore(state: BrokerState, saved: BrokerSnapshot, now_ms: int) -> dict[str, int]:
    """Put ``saved`` into ``state``: the retained messages, and every session not yet
    expired, offline (its stored messages go out when its client reconnects). Returns the
    ms each restored session has left, by client ID, for the caller's expiry timers; the
    sessions' ``absences`` is 1, the number those timers check."""
    for retained in saved.retained:
        state.retained[retained.topic] = retained
    left: dict[str, int] = {}
    for s in saved.sessions:
        if s.expires_at_ms <= now_ms:
            continue
        session = Session(s.client_id, False)
        session.inflight = {pid: _outgoing(m) for pid, m in s.inflight}
        session.queued = deque(_outgoing(m) for m in s.queued)
        session.next_packet_id = s.next_packet_id
        session.protocol = s.protocol
        session.expiry = s.expiry
        session.absences = 1
        state.sessions[s.client_id] = session
        for topic_filter, qos in s.subscriptions:
            state.subscribe(session, topic_filter, qos)
        left[s.client_id] = s.expires_at_ms - now_ms
    return left


def _outgoing(m: SavedMessage) -> Outgoing:
    return Outgoing(m.topic, m.payload, m.retain, m.properties)


# -- the file format ---------------------------------------------------------------------
def to_json(saved: BrokerSnapshot) -> str:
    body = {
        "format": FORMAT,
        "retained": [
            {
                "topic": r.topic,
                "payload": _b64(r.payload),
                "qos": r.qos,
                "lastModifiedTime": r.last_modified_ms,
                **_properties(r.properties),
            }
            for r in saved.retained
        ],
        "sessions": [
            {
                "clientId": s.client_id,
                "subscriptions": [{"filter": f, "qos": q} for f, q in s.subscriptions],
                "inflight": [{"packetId": pid, **_message(m)} for pid, m in s.inflight],
                "queued": [_message(m) for m in s.queued],
                "nextPacketId": s.next_packet_id,
                "expiresAt": s.expires_at_ms,
                **({"mqtt": 5, "sessionExpiry": s.expiry} if s.protocol == 5 else {}),
            }
            for s in saved.sessions
        ],
    }
    return json.dumps(body, separators=(",", ":"))


def from_json(text: str) -> BrokerSnapshot:
    try:
        body = json.loads(text)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise SnapshotError(f"not a broker state of format {FORMAT}")
        retained = tuple(
            RetainedMessage(
                str(r["topic"]),
                _unb64(r["payload"]),
                int(r["qos"]),
                int(r["lastModifiedTime"]),
                _unproperties(r),
            )
            for r in body["retained"]
        )
        sessions = tuple(
            SavedSession(
                str(s["clientId"]),
                tuple((str(f["filter"]), int(f["qos"])) for f in s["subscriptions"]),
                tuple((int(m["packetId"]), _unmessage(m)) for m in s["inflight"]),
                tuple(_unmessage(m) for m in s["queued"]),
                int(s["nextPacketId"]),
                int(s["expiresAt"]),
                int(s.get("mqtt", 4)),
                None if s.get("sessionExpiry") is None else float(s["sessionExpiry"]),
            )
            for s in body["sessions"]
        )
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"unreadable broker state: {type(exc).__name__}: {exc}") from exc
    return BrokerSnapshot(retained, sessions)


def _message(m: SavedMessage) -> Json:
    return {
        "topic": m.topic,
        "payload": _b64(m.payload),
        "retain": m.retain,
        **_properties(m.properties),
    }


def _unmessage(m: Json) -> SavedMessage:
    return SavedMessage(str(m["topic"]), _unb64(m["payload"]), bool(m["retain"]), _unproperties(m))


def _properties(props: PublishProperties | None) -> Json:
    """A message's MQTT 5 properties as a ``properties`` member (none: no member)."""
    if props is None:
        return {}
    body: Json = {"payloadFormat": props.payload_format}
    if props.expires_at is not None:
        body["expiresAt"] = props.expires_at
    if props.content_type is not None:
        body["contentType"] = props.content_type
    if props.response_topic is not None:
        body["responseTopic"] = props.response_topic
    if props.correlation_data is not None:
        body["correlationData"] = _b64(props.correlation_data)
    if props.user_properties:
        body["userProperties"] = [list(pair) for pair in props.user_properties]
    return {"properties": body}


def _unproperties(m: Json) -> PublishProperties | None:
    body = m.get("properties")
    if body is None:
        return None
    correlation = body.get("correlationData")
    return PublishProperties(
        int(body.get("payloadFormat", 0)),
        None if body.get("expiresAt") is None else int(body["expiresAt"]),
        body.get("contentType"),
        body.get("responseTopic"),
        None if correlation is None else _unb64(correlation),
        tuple((str(k), str(v)) for k, v in body.get("userProperties", ())),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Json) -> bytes:
    return base64.b64decode(str(text), validate=True)
