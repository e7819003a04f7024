"""The control plane as one part of the emulator: the local CA, the registry, the API's
topic rules and their file, and the routes. The emulator (app.py) starts it before the
listeners and asks it for the TLS contexts, the admission of client certificates, the
authorizer and the merged rules.

``on_registry_change`` and ``on_rules_change`` are the emulator's callbacks: a new
certificate may need the certificate-aware authorizer installed, a changed rule a new rule
index (the engine's ``load``, which keeps every connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature

from emulator.awserrors import Handler
from emulator.broker.sessions import Session
from emulator.clock import now_ms
from emulator.controlplane.models import Certificate, Registry
from emulator.controlplane.responses import ControlPlaneResponses, thing_body
from emulator.controlplane.store import ControlPlaneStore
from emulator.controlplane.topic_rules import TopicRules
from emulator.controlplane.urls import add_routes
from emulator.identity.authority import LocalAuthority
from emulator.identity.x509 import IssuedKeys, load_certificate
from emulator.project.model import RuleSpec

log = logging.getLogger(__name__)

AWS_MQTT_TLS_PORT = 8883
Json = Any


class _LazyIssuer:
    """The CA as the registry's ``Issuer``, made at ``start`` (the routes exist before)."""

    def __init__(self) -> None:
        self.authority: LocalAuthority | None = None

    def _ca(self) -> LocalAuthority:
        if self.authority is None:
            raise RuntimeError("the local CA is not made yet")
        return self.authority

    def issue_keys_and_certificate(self) -> IssuedKeys:
        return self._ca().issue_keys_and_certificate()

    def sign_request(self, csr_pem: str) -> str:
        return self._ca().sign_request(csr_pem)


class ControlPlane:
    """The ``iot`` API and device identity of one emulator."""

    def __init__(
        self,
        region: str,
        account_id: str,
        data_dir: Path | None,
        hosts: Sequence[str],
        file_rules: Callable[[], Sequence[RuleSpec]],
    ) -> None:
        self.data_dir = data_dir
        self.hosts = tuple(hosts)
        self._issuer = _LazyIssuer()
        self.registry = Registry(region, account_id, self._issuer, now_ms, _thing_id)
        self.rules = TopicRules(region, account_id, now_ms, file_rules)
        self.store = ControlPlaneStore(self.registry, self.rules, data_dir)
        self.registry.on_change = self._registry_changed
        self.rules.on_change = self._rules_changed
        self.on_registry_change: Callable[[], None] | None = None
        self.on_rules_change: Callable[[], None] | None = None
        self.mqtt_tls_port: int | None = None
        self.https_port: int | None = None
        self.http_port: int | None = None
        self.host = _endpoint_host(hosts[0] if hosts else "")
        self._contexts: list[ssl.SSLContext] = []
        self._trusted: set[str] = set()
        self._admitted: set[str] = set()  # certificate IDs the TLS listener let in

    @property
    def authority(self) -> LocalAuthority:
        return self._issuer._ca()

    @property
    def ca_path(self) -> Path | None:
        authority = self._issuer.authority
        return authority.ca_path if authority is not None else None

    def add_routes(self, app: web.Application, page: Handler | None = None) -> None:
        responses = ControlPlaneResponses(self.registry, self.rules, self.endpoint)
        add_routes(app, responses, self.store.save_if_dirty, page)
        app.router.add_get("/ca.pem", self._ca_file)

    async def _ca_file(self, request: web.Request) -> web.StreamResponse:
        path = self.ca_path
        if path is None:
            raise web.HTTPServiceUnavailable(text="the local CA is not made yet")
        return web.FileResponse(path, headers={"Content-Type": "application/x-pem-file"})

    async def start(self) -> None:
        """Make or load the CA (off the loop: key generation), then the saved state."""
        self._issuer.authority = await asyncio.to_thread(LocalAuthority, self.data_dir, self.hosts)
        await asyncio.to_thread(self.store.load)
        self.rules.started_ms = now_ms()

    def stop_sync(self) -> None:
        if self._issuer.authority is not None:
            self._issuer.authority.close()

    async def stop(self) -> None:
        await self.store.save_if_dirty()
        self.stop_sync()

    # -- TLS --------------------------------------------------------------------------
    def _outside_ca(self) -> list[Certificate]:
        """Registered certificates the local CA did not sign (another emulator's CA has
        the same name): trusted as they are."""
        ca = self.authority.authority.certificate
        out = []
        for cert in self.registry.certificates.values():
            try:
                load_certificate(cert.pem).verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                out.append(cert)
        return out

    def mqtt_context(self) -> ssl.SSLContext:
        outside = self._outside_ca()
        self._trusted = {c.certificate_id for c in outside}
        context = self.authority.mqtt_context(c.pem for c in outside)
        self._contexts.append(context)
        return context

    def https_context(self) -> ssl.SSLContext:
        return self.authority.https_context()

    def admit(self, der: bytes) -> str | None:
        principal = self.registry.admit(der)
        if principal is not None:
            self._admitted.add(principal)
        return principal

    def close_refused(self, sessions: Iterable[Session]) -> int:
        """Close the connections of certificates that are no longer registered and ACTIVE
        (UpdateCertificate, DeleteCertificate): AWS disconnects them "within a few
        minutes", the emulator at once. Returns how many it closed."""
        closed = 0
        for session in list(sessions):
            identity, link = session.identity, session.link
            if identity is None or link is None or identity.principal not in self._admitted:
                continue
            if identity.principal == identity.username:
                continue  # a username on a plain port, not a certificate
            cert = self.registry.certificates.get(identity.principal)
            if cert is None or cert.status != "ACTIVE":
                log.info(
                    "closing client %s: its certificate %s is %s",
                    identity.client_id,
                    identity.principal,
                    "deleted" if cert is None else cert.status,
                )
                link.close()
                closed += 1
        return closed

    # -- changes ----------------------------------------------------------------------
    def _registry_changed(self) -> None:
        self.store.mark()
        if self._contexts and self._issuer.authority is not None:
            for cert in self._outside_ca():
                if cert.certificate_id not in self._trusted:
                    self._trusted.add(cert.certificate_id)
                    for context in self._contexts:
                        LocalAuthority.trust(context, cert.pem)
        if self.on_registry_change is not None:
            self.on_registry_change()

    def _rules_changed(self) -> None:
        self.store.mark()
        if self.on_rules_change is not None:
            self.on_rules_change()

    # -- get_registry_data() in SQL ------------------------------------------------------
    def registry_data(self, api: str, thing_name: str) -> Json:
        """The answer of ``api`` (DescribeThing or ListThingGroupsForThing) for the thing,
        as ``get_registry_data()`` returns it; ValueError otherwise (the rule fails)."""
        thing = self.registry.things.get(thing_name)
        if thing is None:
            raise ValueError(f"thing {thing_name} does not exist")
        if api == "DescribeThing":
            return thing_body(thing)
        if api == "ListThingGroupsForThing":
            return {"thingGroups": []}  # the emulator has no thing groups
        raise ValueError(f"registryAPI must be DescribeThing or ListThingGroupsForThing, not {api}")

    # -- DescribeEndpoint ---------------------------------------------------------------
    def endpoint(self, kind: str) -> str:
        """Where each endpoint type is here. The data endpoint is the MQTT-over-TLS port,
        named without a port when it is AWS's own (8883), so device code that appends
        8883 works; otherwise ``host:port``. The credential provider is the HTTPS port."""
        if kind == "iot:CredentialProvider":
            return f"{self.host}:{self.https_port or self.http_port}"
        port = self.mqtt_tls_port
        if port is None or port == AWS_MQTT_TLS_PORT:
            return self.host
        return f"{self.host}:{port}"


def _endpoint_host(host: str) -> str:
    """The name DescribeEndpoint answers: the configured host when it is a name (the
    server certificate covers it), else ``localhost``."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host or "localhost"
    return "localhost"


def _thing_id() -> str:
    return str(uuid.uuid4())
