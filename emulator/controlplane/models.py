"""The AWS IoT registry and policies, free of the wire format (moto's ``models.py``):
certificates, policies with their versions, things, and what is attached to what.

Theory of operation
-------------------
``Registry`` holds plain records keyed by ID or name and raises the AWS errors of
``exceptions.py``. It is what the policy engine asks about a certificate principal
(``certificate_principal``, the ``PrincipalDirectory`` of ``broker/auth.py``) and what the
MQTT-over-TLS listener asks before admitting a certificate (``admit``). Every change bumps
``generation`` (the policy engine drops what it compiled before) and calls ``on_change``
(the store saves the registry; the emulator re-installs its authorizer).

AWS's rules kept here (botocore's ``iot`` model and its documentation): a certificate ID
is the SHA-256 of its DER; only an ACTIVE certificate authenticates; an ACTIVE certificate
cannot be deleted, nor one attached to a thing, nor one with policies unless
``forceDelete``; a policy keeps at most 5 versions and cannot be deleted while attached or
while it has versions besides the default; ``CreateThing`` with the same configuration is
idempotent; ``DeleteThing`` of a missing thing succeeds.

The clock and the thing IDs come in as callables; issuing certificates is the CA's
(``Issuer``). No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature

from emulator.broker.auth import AttachedThing, CertificatePrincipal
from emulator.broker.policy import PolicyError, PolicySet
from emulator.controlplane.exceptions import (
    CertificateState,
    CertificateValidation,
    DeleteConflict,
    InvalidRequest,
    MalformedPolicy,
    ResourceAlreadyExists,
    ResourceNotFound,
    VersionConflict,
    VersionsLimitExceeded,
)
from emulator.identity.x509 import (
    CertificateInvalid,
    IssuedKeys,
    certificate_id,
    der,
    load_certificate,
    policy_variables,
)
from emulator.project.model import PolicySpec

Json = Any
T = TypeVar("T")

STATUSES = (
    "ACTIVE",
    "INACTIVE",
    "REVOKED",
    "PENDING_TRANSFER",
    "REGISTER_INACTIVE",
    "PENDING_ACTIVATION",
)
MAX_POLICY_VERSIONS = 5
MAX_PAGE = 250
THING_PRINCIPAL_TYPES = ("EXCLUSIVE_THING", "NON_EXCLUSIVE_THING")


class Issuer(Protocol):
    """The local CA, as the certificate operations need it."""

    def issue_keys_and_certificate(self) -> IssuedKeys: ...
    def sign_request(self, csr_pem: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Certificate:
    certificate_id: str
    arn: str
    pem: str
    status: str
    created_ms: int
    modified_ms: int
    ca_certificate_id: str | None = None
    not_before_ms: int = 0
    not_after_ms: int = 0


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    version_id: str
    document: str
    created_ms: int


@dataclass(slots=True)
class Policy:
    name: str
    arn: str
    versions: dict[str, PolicyVersion]
    default_version: str
    created_ms: int
    modified_ms: int
    next_version: int = 2

    @property
    def document(self) -> str:
        return self.versions[self.default_version].document


@dataclass(frozen=True, slots=True)
class Thing:
    name: str
    thing_id: str
    arn: str
    type_name: str | None
    attributes: Mapping[str, str]
    version: int = 1
    billing_group: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list operation; ``marker`` None on the last page."""

    items: Sequence[Any]
    marker: str | None


def page_of(
    items: Sequence[T],
    key: Callable[[T], str],
    size: int,
    marker: str | None,
    limit: int = MAX_PAGE,
) -> Page:
    """Items in key order after the key ``marker`` names (base64url of the last key of the
    previous page: a boundary that stays put when items come and go)."""
    if not 1 <= size <= limit:
        raise InvalidRequest(f"page size must be between 1 and {limit}, not {size}")
    ordered = sorted(items, key=key)
    start = 0
    if marker:
        try:
            after = base64.b64decode(marker, altchars=b"-_", validate=True).decode()
        except (binascii.Error, UnicodeError, ValueError) as exc:
            raise InvalidRequest(f"invalid marker {marker!r}") from exc
        start = next((i for i, item in enumerate(ordered) if key(item) > after), len(ordered))
    chunk = ordered[start : start + size]
    more = start + size < len(ordered)
    next_marker = base64.urlsafe_b64encode(key(chunk[-1]).encode()).decode() if more else None
    return Page(chunk, next_marker)


@dataclass
class Registry:
    """Certificates, policies, things and attachments of one account and region."""

    region: str
    account_id: str
    issuer: Issuer
    now_ms: Callable[[], int]
    new_id: Callable[[], str]
    certificates: dict[str, Certificate] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    things: dict[str, Thing] = field(default_factory=dict)
    # policy name -> targets (certificate ARNs, thing group ARNs, Cognito identity IDs)
    targets: dict[str, set[str]] = field(default_factory=dict)
    # thing name -> principal ARN -> thingPrincipalType
    thing_principals: dict[str, dict[str, str]] = field(default_factory=dict)
    generation: int = 0
    on_change: Callable[[], None] | None = None
    # certificate ID -> its policy variables (parsed once per certificate)
    _variables: dict[str, dict[str, str]] = field(default_factory=dict)

    # -- helpers -------------------------------------------------------------------
    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:{kind}/{name}"

    def reloaded(self) -> None:
        """After the store replaced the records: nothing parsed or compiled before holds."""
        self._variables.clear()
        self.generation += 1

    def changed(self) -> None:
        self.generation += 1
        if self.on_change is not None:
            self.on_change()

    def certificate(self, certificate_id: str) -> Certificate:
        found = self.certificates.get(certificate_id)
        if found is None:
            raise ResourceNotFound(f"The certificate {certificate_id} does not exist")
        return found

    def policy(self, name: str) -> Policy:
        found = self.policies.get(name)
        if found is None:
            raise ResourceNotFound(f"Policy {name} does not exist")
        return found

    def thing(self, name: str) -> Thing:
        found = self.things.get(name)
        if found is None:
            raise ResourceNotFound(f"Thing {name} cannot be found.")
        return found

    def certificate_of_arn(self, arn: str) -> Certificate | None:
        prefix = self.arn("cert", "")
        if arn.startswith(prefix):
            return self.certificates.get(arn[len(prefix) :])
        return None

    # -- certificates ----------------------------------------------------------------
    def _add_certificate(
        self, pem: str, status: str, ca_certificate_id: str | None = None
    ) -> Certificate:
        try:
            cert = load_certificate(pem)
        except CertificateInvalid as exc:
            raise CertificateValidation(str(exc)) from exc
        cid = certificate_id(der(cert))
        arn = self.arn("cert", cid)
        if cid in self.certificates:
            raise ResourceAlreadyExists(
                "The certificate is already provisioned or registered", cid, arn
            )
        now = self.now_ms()
        record = Certificate(
            cid,
            arn,
            pem,
            status,
            now,
            now,
            ca_certificate_id,
            int(cert.not_valid_before_utc.timestamp() * 1000),
            int(cert.not_valid_after_utc.timestamp() * 1000),
        )
        self.certificates[cid] = record
        self.changed()
        return record

    def create_keys_and_certificate(self, set_as_active: bool) -> tuple[Certificate, IssuedKeys]:
        keys = self.issuer.issue_keys_and_certificate()
        status = "ACTIVE" if set_as_active else "INACTIVE"
        return self._add_certificate(keys.certificate_pem, status), keys

    def create_certificate_from_csr(self, csr: str, set_as_active: bool) -> Certificate:
        if not csr or len(csr) > 4096:
            raise InvalidRequest("certificateSigningRequest must be 1 to 4096 characters")
        try:
            pem = self.issuer.sign_request(csr)
        except CertificateInvalid as exc:
            raise InvalidRequest(str(exc)) from exc
        return self._add_certificate(pem, "ACTIVE" if set_as_active else "INACTIVE")

    def register_certificate(
        self, pem: str, status: str | None, ca_pem: str | None = None
    ) -> Certificate:
        """``RegisterCertificate`` (``ca_pem`` given) and ``RegisterCertificateWithoutCA``."""
        status = status or "INACTIVE"
        if status not in ("ACTIVE", "INACTIVE", "REVOKED", "PENDING_ACTIVATION"):
            raise InvalidRequest(f"status {status} is not valid for a registered certificate")
        ca_id = None
        if ca_pem:
            try:
                ca = load_certificate(ca_pem)
                cert = load_certificate(pem)
                cert.verify_directly_issued_by(ca)
            except CertificateInvalid as exc:
                raise CertificateValidation(str(exc)) from exc
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise CertificateValidation(
                    f"the certificate is not issued by the CA certificate: {exc}"
                ) from exc
            ca_id = certificate_id(der(ca))
        return self._add_certificate(pem, status, ca_id)

    def update_certificate(self, certificate_id: str, new_status: str) -> None:
        cert = self.certificate(certificate_id)
        if new_status not in STATUSES:
            raise InvalidRequest(f"newStatus must be one of {', '.join(STATUSES)}")
        if new_status in ("PENDING_TRANSFER", "PENDING_ACTIVATION"):
            raise CertificateState(f"a certificate cannot be set to {new_status}")
        if cert.status == "REVOKED" and new_status != "REVOKED":
            raise CertificateState("a revoked certificate cannot be activated")
        self.certificates[certificate_id] = replace(
            cert, status=new_status, modified_ms=self.now_ms()
        )
        self.changed()

    def delete_certificate(self, certificate_id: str, force: bool) -> None:
        cert = self.certificate(certificate_id)
        if cert.status == "ACTIVE":
            raise CertificateState("Certificate must be deactivated (not ACTIVE) before deletion.")
        if any(cert.arn in principals for principals in self.thing_principals.values()):
            raise DeleteConflict("Certificate is attached to a thing; detach it first.")
        attached = [name for name, targets in self.targets.items() if cert.arn in targets]
        if attached and not force:
            raise DeleteConflict(
                f"Certificate policies must be detached before deletion "
                f"(attached: {', '.join(sorted(attached))})"
            )
        for name in attached:
            self.targets[name].discard(cert.arn)
        del self.certificates[certificate_id]
        self._variables.pop(certificate_id, None)
        self.changed()

    def list_certificates(self, size: int, marker: str | None, ascending: bool) -> Page:
        certs = sorted(self.certificates.values(), key=lambda c: (c.created_ms, c.certificate_id))
        if not ascending:
            certs.reverse()
        rank = {c.certificate_id: f"{i:012d}" for i, c in enumerate(certs)}
        return page_of(certs, lambda c: rank[c.certificate_id], size, marker)

    def admit(self, der_bytes: bytes) -> str | None:
        """The principal of a TLS client's certificate if it is registered and ACTIVE."""
        cert = self.certificates.get(certificate_id(der_bytes))
        if cert is None or cert.status != "ACTIVE":
            return None
        return cert.certificate_id

    # -- policies -------------------------------------------------------------------
    def _check_document(self, name: str, document: str) -> None:
        if not isinstance(document, str) or not document:
            raise MalformedPolicy("policyDocument is required")
        try:
            parsed = json.loads(document)
        except ValueError as exc:
            raise MalformedPolicy(f"Policy document is not valid JSON: {exc}") from exc
        try:
            PolicySet([PolicySpec(name, parsed)], self.region, self.account_id)
        except PolicyError as exc:
            raise MalformedPolicy("; ".join(exc.errors)) from exc

    def create_policy(self, name: str, document: str) -> Policy:
        if name in self.policies:
            raise ResourceAlreadyExists(
                f"Policy cannot be created - name already exists (name={name})",
                name,
                self.arn("policy", name),
            )
        self._check_document(name, document)
        now = self.now_ms()
        policy = Policy(
            name, self.arn("policy", name), {"1": PolicyVersion("1", document, now)}, "1", now, now
        )
        self.policies[name] = policy
        self.changed()
        return policy

    def create_policy_version(
        self, name: str, document: str, set_as_default: bool
    ) -> PolicyVersion:
        policy = self.policy(name)
        self._check_document(name, document)
        if len(policy.versions) >= MAX_POLICY_VERSIONS:
            raise VersionsLimitExceeded(
                f"The policy {name} already has the maximum number of versions "
                f"({MAX_POLICY_VERSIONS})"
            )
        now = self.now_ms()
        version = PolicyVersion(str(policy.next_version), document, now)
        policy.next_version += 1
        policy.versions[version.version_id] = version
        policy.modified_ms = now
        if set_as_default:
            policy.default_version = version.version_id
        self.changed()
        return version

    def delete_policy(self, name: str) -> None:
        policy = self.policy(name)
        if self.targets.get(name):
            raise DeleteConflict(f"The policy {name} is attached to one or more principals")
        if len(policy.versions) > 1:
            raise DeleteConflict(
                f"Cannot delete the policy {name} because it has one or more policy "
                "versions attached to it (delete the non-default versions first)"
            )
        del self.policies[name]
        self.targets.pop(name, None)
        self.changed()

    def list_policies(self, size: int, marker: str | None, ascending: bool) -> Page:
        policies = list(self.policies.values())
        if ascending:
            return page_of(policies, lambda p: p.name, size, marker)
        # descending: page over names negated by their rank
        ordered = sorted(policies, key=lambda p: p.name, reverse=True)
        rank = {p.name: f"{i:08d}" for i, p in enumerate(ordered)}
        return page_of(ordered, lambda p: rank[p.name], size, marker)

    def _check_target(self, target: str) -> None:
        if not target:
            raise InvalidRequest("target is required")
        prefix = self.arn("cert", "")
        if target.startswith(prefix) and self.certificate_of_arn(target) is None:
            raise ResourceNotFound(f"The certificate {target[len(prefix) :]} does not exist")

    def attach_policy(self, name: str, target: str) -> None:
        self.policy(name)
        self._check_target(target)
        self.targets.setdefault(name, set()).add(target)
        self.changed()

    def detach_policy(self, name: str, target: str) -> None:
        self.policy(name)
        self._check_target(target)
        self.targets.get(name, set()).discard(target)
        self.changed()

    def attached_policies(self, target: str) -> list[Policy]:
        self._check_target(target)
        return [self.policies[n] for n, t in self.targets.items() if target in t]

    def policy_targets(self, name: str) -> list[str]:
        self.policy(name)
        return sorted(self.targets.get(name, ()))

    # -- things -----------------------------------------------------------------------
    def create_thing(
        self,
        name: str,
        type_name: str | None,
        attributes: Mapping[str, str],
        billing_group: str | None,
    ) -> Thing:
        existing = self.things.get(name)
        if existing is not None:
            same = (existing.type_name, dict(existing.attributes), existing.billing_group) == (
                type_name,
                dict(attributes),
                billing_group,
            )
            if same:
                return existing
            raise ResourceAlreadyExists(
                f"Thing {name} already exists in account with different attributes",
                existing.thing_id,
                existing.arn,
            )
        thing = Thing(
            name,
            self.new_id(),
            self.arn("thing", name),
            type_name,
            dict(attributes),
            1,
            billing_group,
        )
        self.things[name] = thing
        self.changed()
        return thing

    def delete_thing(self, name: str, expected_version: int | None) -> None:
        thing = self.things.get(name)
        if thing is None:
            return  # AWS: deleting a thing that does not exist succeeds
        if expected_version is not None and expected_version != thing.version:
            raise VersionConflict(
                f"expectedVersion {expected_version} is not the thing's version {thing.version}"
            )
        del self.things[name]
        self.thing_principals.pop(name, None)
        self.changed()

    def list_things(
        self,
        size: int,
        token: str | None,
        attribute: tuple[str, str] | None,
        type_name: str | None,
        prefix: bool,
    ) -> Page:
        things: Iterable[Thing] = self.things.values()
        if type_name:
            things = [t for t in things if t.type_name == type_name]
        if attribute is not None:
            key, value = attribute
            things = [
                t
                for t in things
                if key in t.attributes
                and (t.attributes[key].startswith(value) if prefix else t.attributes[key] == value)
            ]
        return page_of(list(things), lambda t: t.name, size, token)

    def _principal(self, principal: str) -> str:
        if not principal:
            raise InvalidRequest("the x-amzn-principal header is required")
        prefix = self.arn("cert", "")
        if principal.startswith(prefix) and self.certificate_of_arn(principal) is None:
            raise ResourceNotFound(f"The certificate {principal[len(prefix) :]} does not exist")
        return principal

    def attach_thing_principal(self, name: str, principal: str, kind: str | None) -> None:
        self.thing(name)
        principal = self._principal(principal)
        kind = kind or "NON_EXCLUSIVE_THING"
        if kind not in THING_PRINCIPAL_TYPES:
            raise InvalidRequest(f"thingPrincipalType must be one of {THING_PRINCIPAL_TYPES}")
        if kind == "EXCLUSIVE_THING":
            others = [
                thing
                for thing, principals in self.thing_principals.items()
                if principal in principals and thing != name
            ]
            if others:
                raise InvalidRequest(
                    f"the principal is attached to {others[0]}: an exclusive attachment "
                    "needs a principal attached to no other thing"
                )
        self.thing_principals.setdefault(name, {})[principal] = kind
        self.changed()

    def detach_thing_principal(self, name: str, principal: str) -> None:
        self.thing(name)
        principal = self._principal(principal)
        self.thing_principals.get(name, {}).pop(principal, None)
        self.changed()

    def list_thing_principals(self, name: str) -> list[tuple[str, str]]:
        self.thing(name)
        return sorted(self.thing_principals.get(name, {}).items())

    # -- the policy engine's view (broker/auth.py's PrincipalDirectory) ----------------
    def certificate_principal(self, principal: str) -> CertificatePrincipal | None:
        cert = self.certificates.get(principal)
        if cert is None:
            return None
        variables = self._variables.get(principal)
        if variables is None:
            variables = policy_variables(load_certificate(cert.pem))
            self._variables[principal] = variables
        policies = tuple(
            PolicySpec(name, json.loads(self.policies[name].document))
            for name, targets in sorted(self.targets.items())
            if cert.arn in targets and name in self.policies
        )
        things = tuple(
            AttachedThing(
                thing,
                self.things[thing].type_name,
                self.things[thing].attributes,
                principals[cert.arn] == "EXCLUSIVE_THING",
            )
            for thing, principals in sorted(self.thing_principals.items())
            if cert.arn in principals and thing in self.things
        )
        return CertificatePrincipal(cert.certificate_id, policies, variables, things)
