"""AWS IoT Core message broker quotas, and the one check of a publish that every entry
point shares: an MQTT PUBLISH, the data-plane ``Publish`` over HTTP, and a rule's republish.

Pure: no I/O. Quotas from reference/aws-iot/limits-iot.md; reserved topics from
reserved-topics.md. A ``PublishCheck`` remembers the topic names it has found valid (topics
repeat: the chat publishes on a handful), bounded, and owned by whoever checks, not shared
through module state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from emulator.topics import BASIC_INGEST_PREFIX, BasicIngest, basic_ingest, validate_topic_name

MAX_PAYLOAD = 128 * 1024  # AWS IoT: message payload up to 128 KB
MAX_CLIENT_ID = 128  # AWS IoT: client ID up to 128 bytes
KNOWN_TOPICS_KEPT = 4096

# Reserved topics a client may publish to: $aws/things/... (shadows and jobs), through the
# broker, and $aws/rules/... (Basic Ingest, topics.basic_ingest), to a rule; everything else
# under '$' belongs to the broker (lifecycle events, ...).
BROKER_RESERVED = "$aws/things/"


class Refusal(Enum):
    """Why a publish is refused; each entry point maps it to its own wire answer (an MQTT
    disconnect, an HTTP status and AWS error code)."""

    INVALID_TOPIC = "invalid topic"
    RESERVED_TOPIC = "reserved topic"
    TOO_LARGE = "payload too large"


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal
    message: str


class PublishCheck:
    """Checks topic names and payload sizes, remembering the valid names (bounded)."""

    __slots__ = ("_known", "is_known")

    def __init__(self) -> None:
        self._known: set[str] = set()
        # ``is_known(topic)``: a topic already found valid, so the hot path (the engine's
        # republish) skips every other check. The set's own ``__contains__``, bound once,
        # is a C call, not a Python frame per message; the set is only ever cleared in
        # place, never replaced, so the bound method stays valid.
        self.is_known: Callable[[str], bool] = self._known.__contains__

    def topic_problem(self, topic: str) -> str | None:
        """Why ``topic`` is not a valid topic name, or None (any origin, reserved or not)."""
        known = self._known
        if topic in known:
            return None
        problem = validate_topic_name(topic)
        # A Basic Ingest topic is checked each time: remembered, it would take the
        # engine's fast path of a known topic, which republishes through the broker.
        if problem is None and not topic.startswith(BASIC_INGEST_PREFIX):
            if len(known) >= KNOWN_TOPICS_KEPT:
                known.clear()
            known.add(topic)
        return problem

    def client_publish(self, topic: str, payload_size: int) -> Refused | BasicIngest | None:
        """A publish by a client, over MQTT or the data-plane HTTP API: a valid name, not a
        reserved topic the broker owns, and a payload within the quota. A Basic Ingest
        topic is not refused but answered with its ``BasicIngest`` (the rule and the topic
        it sees): the caller hands the message to that rule, not to the broker. A topic
        that does not start with ``$`` costs no more than before Basic Ingest."""
        problem = self.topic_problem(topic)
        if problem is not None:
            return Refused(Refusal.INVALID_TOPIC, problem)
        if topic[:1] == "$":
            return _reserved_publish(topic, payload_size)
        if payload_size > MAX_PAYLOAD:
            return _too_large(payload_size)
        return None


def _reserved_publish(topic: str, payload_size: int) -> Refused | BasicIngest | None:
    ingest = basic_ingest(topic)
    if ingest is None and not topic.startswith(BROKER_RESERVED):
        return Refused(
            Refusal.RESERVED_TOPIC,
            f"{topic} is a reserved topic clients cannot publish to",
        )
    if payload_size > MAX_PAYLOAD:
        return _too_large(payload_size)
    return ingest


def _too_large(payload_size: int) -> Refused:
    return Refused(
        Refusal.TOO_LARGE,
        f"payload of {payload_size} bytes is over the limit of {MAX_PAYLOAD}",
    )
