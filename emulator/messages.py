"""The message that crosses from the broker into the rules engine and back.

Pure data: the broker creates one per accepted PUBLISH (and per lifecycle event, will
message, data-plane publish and republish); the rules engine reads it.
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

    actions/republish.py builds one per republished message field by field, without
    ``__init__`` (cheaper): a new field must be set there too.
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
