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

from emulator.topics import validate_topic_name

MAX_PAYLOAD = 128 * 1024  # AWS IoT: message payload up to 128 KB
MAX_CLIENT_ID = 128  # AWS IoT: client ID up to 128 bytes
KNOWN_TOPICS_KEPT = 4096

# Reserved topics a client may publish to ($aws/things/... shadows and jobs, $aws/rules/...
# Basic Ingest); everything else under '$' belongs to the broker (lifecycle events, ...).
PUBLISHABLE_RESERVED = ("$aws/things/", "$aws/rules/")


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
        if problem is None:
            if len(known) >= KNOWN_TOPICS_KEPT:
                known.clear()
            known.add(topic)
        return problem

    def client_publish(self, topic: str, payload_size: int) -> Refused | None:
        """A publish by a client, over MQTT or the data-plane HTTP API: a valid name, not a
        reserved topic the broker owns, and a payload within the quota."""
        problem = self.topic_problem(topic)
        if problem is not None:
            return Refused(Refusal.INVALID_TOPIC, problem)
        if topic[:1] == "$" and not topic.startswith(PUBLISHABLE_RESERVED):
            return Refused(
                Refusal.RESERVED_TOPIC,
                f"{topic} is a reserved topic clients cannot publish to",
            )
        if payload_size > MAX_PAYLOAD:
            return Refused(
                Refusal.TOO_LARGE,
                f"payload of {payload_size} bytes is over the limit of {MAX_PAYLOAD}",
            )
        return None
