"""The message that crosses from the broker into the rules engine and back.

Pure data: the broker creates one per accepted PUBLISH (and per lifecycle event, will
message, data-plane publish and republish); the rules engine reads it. A publish to a Basic
Ingest topic (``$aws/rules/<rule>/...``) is an ``IngestMessage`` instead: it goes to that
one rule, past the subscribers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

# MQTT 5's payload format indicator values, as AWS spells them (get_mqtt_property,
# the republish action's headers, the data plane's x-amz-mqtt5-payload-format-indicator).
FORMAT_NAMES = ("UNSPECIFIED_BYTES", "UTF8_DATA")


class PublishProperties(NamedTuple):
    """The MQTT 5 properties of a message that travel with it to every subscriber, the
    rules engine and a republish (aws-iot-current.md, sections 1 and 5). None on a message
    without any, which is every MQTT 3.1.1 message: the usual message pays nothing.

    ``expires_at`` is the message expiry as a time (ms since the epoch), so a message that
    waits (queued, retained, a delayed Last Will) is passed on with what is left of it, and
    not delivered once it has passed. ``payload_format`` is 0 (bytes) or 1 (UTF-8).
    ``wire``: the property section as the publisher sent it, when it can be sent on as it
    is (no expiry, no topic alias): one bytes object for every subscriber.

    A named tuple, not a frozen dataclass: one is built per MQTT 5 message with
    properties, and a tuple is several times cheaper to build."""

    payload_format: int = 0
    expires_at: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    wire: bytes | None = None

    def expired(self, now: int) -> bool:
        expires_at = self.expires_at
        return expires_at is not None and expires_at <= now


@dataclass(slots=True)
class InboundMessage:
    """A message accepted by the broker; treated as immutable once created.

    Not ``frozen``: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, three times slower, and one is built per message.

    ``client_id`` is ``None`` when the emulator itself published it (republish action,
    data-plane ``Publish``, lifecycle event); AWS IoT's ``clientid()`` then yields
    ``Undefined`` for rule actions and ``""`` is never invented.
    ``hops`` counts how many republish actions led to this message, so rule loops stop.
    ``origin`` is the client whose PUBLISH a republished message comes from (through any
    number of hops): the rules engine queues its actions under that client's share, so a
    flooding client's republished messages do not use up other clients' (issue 12).
    ``source_ip`` is the publishing client's address (the TCP or WebSocket peer, the
    data-plane HTTP caller): AWS's ``sourceip()``. None for the emulator's own messages, and
    for a republished one (AWS: republish does not pass the original IP on).
    ``properties``: its MQTT 5 properties (``PublishProperties``), None when it has none.

    actions/republish.py builds one per republished message, and broker/protocol.py one per
    client PUBLISH, field by field, without ``__init__`` (cheaper): a new field must be set
    there too.
    """

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    client_id: str | None = None
    principal: str | None = None
    timestamp_ms: int = 0
    hops: int = 0
    trace_id: str | None = None
    origin: str | None = None
    source_ip: str | None = None
    properties: PublishProperties | None = None


@dataclass(slots=True)
class IngestMessage(InboundMessage):
    """A Basic Ingest publish (iot-basic-ingest.md): it triggers the rule named ``rule``
    directly, whatever its FROM, is delivered to no subscriber and never retained. ``topic``
    is what the rule's ``topic()`` sees: the published topic without ``$aws/rules/<rule>/``.
    """

    rule: str = ""

    @property
    def published_topic(self) -> str:
        """The topic as the client published it (for log lines)."""
        return f"$aws/rules/{self.rule}/{self.topic}" if self.topic else f"$aws/rules/{self.rule}"
