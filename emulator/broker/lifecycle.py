"""AWS IoT lifecycle events (reference/aws-iot/life-cycle-events.md), as the messages the
broker publishes (JSON payloads, QoS 0, from the broker itself), or None for a client ID
that gets no events.

Pure: the broker passes the clock and the identifiers in.
"""

from __future__ import annotations

import json
from enum import StrEnum

from emulator.messages import InboundMessage

PRESENCE_PREFIX = "$aws/events/presence/"
SUBSCRIPTIONS_PREFIX = "$aws/events/subscriptions/"


class DisconnectReason(StrEnum):
    """The ``disconnectReason`` values AWS IoT reports."""

    AUTH_ERROR = "AUTH_ERROR"
    CLIENT_INITIATED_DISCONNECT = "CLIENT_INITIATED_DISCONNECT"
    CLIENT_ERROR = "CLIENT_ERROR"
    CONNECTION_LOST = "CONNECTION_LOST"
    DUPLICATE_CLIENTID = "DUPLICATE_CLIENTID"
    FORBIDDEN_ACCESS = "FORBIDDEN_ACCESS"
    MQTT_KEEP_ALIVE_TIMEOUT = "MQTT_KEEP_ALIVE_TIMEOUT"
    SERVER_ERROR = "SERVER_ERROR"
    SERVER_INITIATED_DISCONNECT = "SERVER_INITIATED_DISCONNECT"
    THROTTLED = "THROTTLED"


def emits_events(client_id: str) -> bool:
    """ "Client IDs that contain # or + do not receive lifecycle events"."""
    return "#" not in client_id and "+" not in client_id


def _event(topic: str, timestamp_ms: int, body: dict[str, object]) -> InboundMessage:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return InboundMessage(topic, payload, 0, False, None, None, timestamp_ms)


def connected_event(
    client_id: str,
    timestamp_ms: int,
    session_id: str,
    principal: str,
    ip_address: str,
    version: int,
) -> InboundMessage | None:
    if not emits_events(client_id):
        return None
    return _event(
        PRESENCE_PREFIX + "connected/" + client_id,
        timestamp_ms,
        {
            "clientId": client_id,
            "timestamp": timestamp_ms,
            "eventType": "connected",
            "sessionIdentifier": session_id,
            "principalIdentifier": principal,
            "ipAddress": ip_address,
            "versionNumber": version,
        },
    )


def disconnected_event(
    client_id: str,
    timestamp_ms: int,
    session_id: str,
    principal: str,
    reason: DisconnectReason,
    version: int,
) -> InboundMessage | None:
    if not emits_events(client_id):
        return None
    return _event(
        PRESENCE_PREFIX + "disconnected/" + client_id,
        timestamp_ms,
        {
            "clientId": client_id,
            "timestamp": timestamp_ms,
            "eventType": "disconnected",
            "sessionIdentifier": session_id,
            "principalIdentifier": principal,
            "clientInitiatedDisconnect": reason is DisconnectReason.CLIENT_INITIATED_DISCONNECT,
            "disconnectReason": reason.value,
            "versionNumber": version,
        },
    )


def subscription_event(
    kind: str,
    client_id: str,
    timestamp_ms: int,
    session_id: str,
    principal: str,
    topics: list[str],
) -> InboundMessage | None:
    """``kind`` is ``subscribed`` or ``unsubscribed``."""
    if not emits_events(client_id):
        return None
    return _event(
        SUBSCRIPTIONS_PREFIX + kind + "/" + client_id,
        timestamp_ms,
        {
            "clientId": client_id,
            "timestamp": timestamp_ms,
            "eventType": kind,
            "sessionIdentifier": session_id,
            "principalIdentifier": principal,
            "topics": topics,
        },
    )
