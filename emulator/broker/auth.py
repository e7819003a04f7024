"""The seam between the broker and IoT policy evaluation.

The broker asks an ``Authorizer`` before each connect, subscribe, publish, retained publish
and delivery; the policy engine implements it. With no authorizer everything is allowed.
A client that connected with a certificate (MQTT over TLS) has the certificate ID as its
principal; the registry (``PrincipalDirectory``, the control plane's) says which policies
are attached to it and what its policy variables are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from emulator.project.model import PolicySpec


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


# -- certificate principals (the control plane's registry answers these) ---------------
@dataclass(frozen=True, slots=True)
class AttachedThing:
    """A thing attached to a certificate (AttachThingPrincipal), as the thing policy
    variables see it (thing-policy-variables.md)."""

    name: str
    type_name: str | None
    attributes: Mapping[str, str]
    exclusive: bool = False


@dataclass(frozen=True, slots=True)
class CertificatePrincipal:
    """What the registry knows of one certificate: the policies attached to it, its
    certificate policy variables (lower-case names) and its things."""

    certificate_id: str
    policies: tuple[PolicySpec, ...]
    variables: Mapping[str, str]
    things: tuple[AttachedThing, ...] = ()

    def thing_for(self, client_id: str) -> AttachedThing | None:
        """The thing a connection is: the one attached exclusively, else the attached thing
        whose name is the client ID (AWS: with a non-exclusive attachment the client ID
        must equal the thing name)."""
        for thing in self.things:
            if thing.exclusive:
                return thing
        for thing in self.things:
            if thing.name == client_id:
                return thing
        return None


class PrincipalDirectory(Protocol):
    """The certificate registry as the policy engine needs it. ``generation`` changes with
    every change of the registry, so that decisions cached before it are dropped."""

    @property
    def generation(self) -> int: ...

    def certificate_principal(self, principal: str) -> CertificatePrincipal | None:
        """None: ``principal`` is not a registered certificate."""
        ...
