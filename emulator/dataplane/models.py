"""The AWS IoT data plane's logic, free of the wire format (moto's ``models.py``): publish
through the broker, look up and page through its retained messages.

A publish goes through the same ``PublishCheck`` as an MQTT PUBLISH (emulator/limits.py),
so HTTP and MQTT agree on topic names, reserved topics and the payload quota; a publish to
``$aws/rules/<rule>/...`` goes to that rule only (Basic Ingest), as over MQTT. Errors are
raised as the AWS errors of dataplane/exceptions.py; dataplane/responses.py parses the
requests and serializes the answers.

Paging: ``ListRetainedMessages`` lists topics in name order; ``nextToken`` is the last topic
of the page (base64url, opaque to clients), so a page boundary stays put when retained
messages are added or removed between calls (an offset would skip or repeat topics).
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from emulator.dataplane.exceptions import (
    Forbidden,
    InvalidRequest,
    RequestEntityTooLarge,
    ResourceNotFound,
)
from emulator.limits import PublishCheck, Refusal, Refused
from emulator.messages import FORMAT_NAMES, InboundMessage, IngestMessage, PublishProperties

# AWS: ListRetainedMessages takes maxResults from 1 to 200 (botocore's MaxResults shape).
MAX_RESULTS = 200

_REFUSALS = {
    Refusal.INVALID_TOPIC: InvalidRequest,
    Refusal.RESERVED_TOPIC: Forbidden,
    Refusal.TOO_LARGE: RequestEntityTooLarge,
}


class Retained(Protocol):
    """A retained message as the broker keeps it."""

    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def qos(self) -> int: ...
    @property
    def last_modified_ms(self) -> int: ...
    @property
    def properties(self) -> PublishProperties | None: ...


class Broker(Protocol):
    """What the data plane needs of the broker."""

    def publish(self, message: InboundMessage) -> None: ...
    def ingest(self, message: IngestMessage) -> None: ...
    def get_retained(self, topic: str) -> Retained | None: ...
    def list_retained(self) -> Sequence[Retained]: ...


MAX_MESSAGE_EXPIRY = 604_800  # seconds (AWS's "Max message expiry interval")


@dataclass(frozen=True, slots=True)
class Mqtt5Headers:
    """The MQTT 5 properties a ``Publish`` request gives, as parsed from its headers and
    query (API_iotdata_Publish): user properties in order, the payload format indicator as
    AWS names it, correlation data decoded from base64, the expiry in seconds."""

    user_properties: tuple[tuple[str, str], ...] = ()
    payload_format: str | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    message_expiry: int | None = None

    def properties(self, now_ms: int) -> PublishProperties | None:
        if self == NO_HEADERS:
            return None
        fmt = self.payload_format
        if fmt is not None and fmt not in FORMAT_NAMES:
            raise InvalidRequest(
                f"payloadFormatIndicator must be {' or '.join(FORMAT_NAMES)}, not {fmt!r}"
            )
        expires_at = None
        if self.message_expiry is not None:
            if self.message_expiry < 0:
                raise InvalidRequest("messageExpiry must not be negative")
            expires_at = now_ms + 1000 * min(max(self.message_expiry, 1), MAX_MESSAGE_EXPIRY)
        response = self.response_topic
        if response is not None and ("+" in response or "#" in response):
            raise InvalidRequest("responseTopic may not contain wildcards")
        return PublishProperties(
            FORMAT_NAMES.index(fmt) if fmt is not None else 0,
            expires_at,
            self.content_type,
            response,
            self.correlation_data,
            self.user_properties,
        )


NO_HEADERS = Mqtt5Headers()


@dataclass(frozen=True, slots=True)
class RetainedPage:
    """One page of ``ListRetainedMessages``; ``next_token`` is None on the last page."""

    messages: Sequence[Retained]
    next_token: str | None


class DataPlane:
    """The data-plane operations on one broker."""

    __slots__ = ("_broker", "_check", "_now_ms")

    def __init__(self, broker: Broker, check: PublishCheck, now_ms: Callable[[], int]) -> None:
        self._broker = broker
        self._check = check
        self._now_ms = now_ms

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        source_ip: str | None = None,
        headers: Mqtt5Headers = NO_HEADERS,
    ) -> None:
        """``Publish``: the message reaches subscribers and the rules like an MQTT PUBLISH
        without a client ID. AWS IoT supports QoS 0 and 1 only. ``source_ip`` is the HTTP
        caller's address (``sourceip()``). A Basic Ingest topic goes to its rule only, its
        ``retain`` ignored as over MQTT."""
        if qos not in (0, 1):
            raise InvalidRequest(f"qos must be 0 or 1, not {qos}")
        checked = self._check.client_publish(topic, len(payload))
        if isinstance(checked, Refused):
            raise _REFUSALS[checked.reason](checked.message)
        now = self._now_ms()
        properties = headers.properties(now)
        if checked is not None:
            self._broker.ingest(
                IngestMessage(
                    topic=checked.topic,
                    payload=payload,
                    qos=qos,
                    timestamp_ms=now,
                    source_ip=source_ip,
                    properties=properties,
                    rule=checked.rule,
                )
            )
            return
        self._broker.publish(
            InboundMessage(
                topic=topic,
                payload=payload,
                qos=qos,
                retain=retain,
                timestamp_ms=now,
                source_ip=source_ip,
                properties=properties,
            )
        )

    def get_retained_message(self, topic: str) -> Retained:
        """``GetRetainedMessage``: the message retained on exactly ``topic``."""
        retained = self._broker.get_retained(topic)
        if retained is None:
            raise ResourceNotFound(f"no retained message on {topic}")
        return retained

    def list_retained_messages(
        self, max_results: int = MAX_RESULTS, next_token: str | None = None
    ) -> RetainedPage:
        """``ListRetainedMessages``: up to ``max_results`` retained messages in topic order,
        after the topic that ``next_token`` names."""
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidRequest(
                f"maxResults must be between 1 and {MAX_RESULTS}, not {max_results}"
            )
        messages = sorted(self._broker.list_retained(), key=_topic)
        start = 0
        if next_token is not None:
            start = bisect.bisect_right(messages, _decode_token(next_token), key=_topic)
        page = messages[start : start + max_results]
        more = start + max_results < len(messages)
        return RetainedPage(page, _encode_token(page[-1].topic) if more else None)


def _topic(message: Retained) -> str:
    return message.topic


def _encode_token(topic: str) -> str:
    return base64.urlsafe_b64encode(topic.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.b64decode(token, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidRequest(f"invalid nextToken {token!r}") from exc
