"""AWS IoT lifecycle events (reference/aws-iot/life-cycle-events.md), as topic + JSON bytes.

Pure: the broker passes the clock and the identifiers in.
"""

from __future__ import annotations

import json
from enum import StrEnum

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


def _dump(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def connected_event(
    client_id: str,
    timestamp_ms: int,
    session_id: str,
    principal: str,
    ip_address: str,
    version: int,
) -> tuple[str, bytes]:
    return PRESENCE_PREFIX + "connected/" + client_id, _dump(
        {
            "clientId": client_id,
            "timestamp": timestamp_ms,
            "eventType": "connected",
            "sessionIdentifier": session_id,
            "principalIdentifier": principal,
            "ipAddress": ip_address,
            "versionNumber": version,
        }
    )


def disconnected_event(
    client_id: str,
    timestamp_ms: int,
    session_id: str,
    principal: str,
    reason: DisconnectReason,
    version: int,
) -> tuple[str, bytes]:
    return PRESENCE_PREFIX + "disconnected/" + client_id, _dump(
        {
            "clientId": client_id,
            "timestamp": timestamp_ms,
            "eventType": "disconnected",
            "sessionIdentifier": session_id,
            "principalIdentifier": principal,
            "clientInitiatedDisconnect": reason is DisconnectReason.CLIENT_INITIATED_DISCONNECT,
            "disconnectReason": reason.value,
            "versionNumber": version,
        }
    )


def subscription_event(
    kind: str,
    client_id: str,
    timestamp_ms: int,
    session_id: str,
    principal: str,
    topics: list[str],
) -> tuple[str, bytes]:
    """``kind`` is ``subscribed`` or ``unsubscribed``."""
    return SUBSCRIPTIONS_PREFIX + kind + "/" + client_id, _dump(
        {
            "clientId": client_id,
            "timestamp": timestamp_ms,
            "eventType": kind,
            "sessionIdentifier": session_id,
            "principalIdentifier": principal,
            "topics": topics,
        }
    )
