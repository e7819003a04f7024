"""The seam between the broker and IoT policy evaluation.

The broker asks an ``Authorizer`` before each connect, subscribe, publish, retained publish
and delivery; the policy engine implements it. With no authorizer everything is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who is asking: what the policy variables (``${iot:ClientId}``, ...) are made of."""

    client_id: str
    principal: str
    source_ip: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


ALLOW = Decision(True, "no policy enforcement")


class Authorizer(Protocol):
    def check(self, identity: ClientIdentity, action: str, resource: str) -> Decision:
        """``action`` is ``iot:Connect``, ``iot:Publish``, ``iot:Subscribe``, ``iot:Receive``
        or ``iot:RetainPublish``; ``resource`` the bare client ID, topic or topic filter."""
        ...
