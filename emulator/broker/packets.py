"""The decoded shapes of the rare packets (CONNECT, SUBSCRIBE, UNSUBSCRIBE), whichever
protocol version and decoder made them: ``amqtt_codec.py`` for MQTT 3.1.1, ``codec5.py``
for MQTT 5. The protocol reads only these (pure data)."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.messages import PublishProperties


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    # MQTT 5: the will's message properties (its expiry as an interval in seconds in
    # ``expiry``, applied when it is published) and its delay (seconds).
    properties: PublishProperties | None = None
    expiry: int | None = None
    delay: int = 0


@dataclass(frozen=True, slots=True)
class Connect:
    protocol_name: str
    protocol_level: int
    client_id: str  # "" when the client sent none
    clean_session: bool  # MQTT 5: Clean Start
    keep_alive: int
    username: str | None
    will: Will | None
    # MQTT 5 properties (their defaults are MQTT 5's for an absent property).
    session_expiry: int = 0
    receive_maximum: int = 65535
    maximum_packet_size: int | None = None
    topic_alias_maximum: int = 0
    request_problem_info: bool = True
    auth_method: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    # (topic filter, subscription options): MQTT 3.1.1's byte is the requested QoS;
    # MQTT 5's adds No Local (0x04), Retain As Published (0x08), Retain Handling (0x30).
    filters: list[tuple[str, int]]
    subscription_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: list[str]


# Subscription option bits (MQTT 5.0, 3.8.3.1).
QOS_MASK = 0x03
NO_LOCAL = 0x04
RETAIN_AS_PUBLISHED = 0x08
RETAIN_HANDLING = 0x30
# Not an option on the wire (a reserved bit there, refused): set on an MQTT 5 session's
# subscriptions in the broker's trie, so that delivery tells MQTT 5 subscribers apart by
# one comparison of the value it already has (over 3: look closer).
MQTT5 = 0x40
