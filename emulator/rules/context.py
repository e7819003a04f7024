"""The ``MessageContext`` a rule's SQL sees, built in one place for the engine and the
``rules`` command, with the sources the pure language is given rather than reaching for:
a UUID source (``newuuid()``, ``traceid()``, a Kinesis action's default partition key)
and a random source (``rand()``)."""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from os import urandom as _urandom
from typing import Any

from emulator.messages import InboundMessage, PublishProperties
from emulator.sql.context import MessageContext

Json = Any
DEFAULT_ACCOUNT = "123456789012"
_new = object.__new__


def new_uuid() -> str:
    """A random (version 4) UUID as text, as AWS's ``newuuid()`` returns: the same 122
    random bits as ``uuid.uuid4()``, written directly from the bytes (``str(uuid4())``
    builds a ``UUID`` and an int on the way, about three times the cost; the chat's
    republish rule makes one per message)."""
    b = bytearray(_urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class MessageContexts:
    """Makes message contexts for one account, with one UUID and one random source."""

    __slots__ = ("account_id", "newuuid", "random")

    def __init__(
        self,
        account_id: str = DEFAULT_ACCOUNT,
        newuuid: Callable[[], str] = new_uuid,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.account_id = account_id
        self.newuuid = newuuid
        self.random = random

    def of_message(self, msg: InboundMessage, document: Json) -> MessageContext:
        """The context of a message the broker accepted, its payload already parsed.

        One per message, so its fields are set by name on a bare instance: calling the
        class with keywords costs 0.2 us more per message (the keywords are matched to
        ``__init__``'s parameters). tests/unit/test_engine.py checks that every field
        is set, against the dataclass built with keywords.
        """
        ctx = _new(MessageContext)
        ctx.topic = msg.topic
        ctx.payload = msg.payload
        ctx.client_id = msg.client_id
        ctx.principal = msg.principal
        ctx.source_ip = msg.source_ip
        ctx.timestamp_ms = msg.timestamp_ms
        ctx.trace_id = msg.trace_id
        ctx.newuuid = self.newuuid
        ctx.random = self.random
        ctx.external = None
        ctx.account_id = self.account_id
        ctx.properties = msg.properties
        ctx._doc = document
        ctx._parsed = True
        return ctx

    def of_payload(
        self,
        topic: str,
        payload: bytes,
        timestamp_ms: int,
        client_id: str | None = None,
        principal: str | None = None,
        source_ip: str | None = None,
        properties: PublishProperties | None = None,
    ) -> MessageContext:
        """The context of a message given by hand (``rules eval`` and ``rules test``)."""
        return MessageContext(
            properties=properties,
            topic=topic,
            payload=payload,
            client_id=client_id,
            principal=principal,
            source_ip=source_ip,
            timestamp_ms=timestamp_ms,
            newuuid=self.newuuid,
            random=self.random,
            account_id=self.account_id,
        )
