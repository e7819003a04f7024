"""The message that crosses from the broker into the rules engine and back.

Pure data: the broker creates one per accepted PUBLISH (and per lifecycle event, will
message, data-plane publish and republish); the rules engine reads it. A publish to a Basic
Ingest topic (``$aws/rules/<rule>/...``) is an ``IngestMessage`` instead: it goes to that
one rule, past the subscribers.
"""

from __future__ import annotations

from dataclasses import dataclass


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
