"""``TestAuthorization``: the broker's decision for a principal, without connecting.

The principal's policies (those attached to its certificate, plus ``policyNamesToAdd``,
minus ``policyNamesToSkip``) are compiled into the same ``PolicySet`` the broker asks, with
the certificate's and its things' policy variables, and each ``authInfo`` (an action type
and resource ARNs) is decided as the broker would decide it. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from emulator.broker.auth import CertificatePrincipal, ClientIdentity
from emulator.broker.policy import PolicySet, certificate_resolver
from emulator.controlplane.exceptions import InvalidRequest, ResourceNotFound
from emulator.controlplane.models import Registry
from emulator.project.model import PolicySpec

AUTH_ACTIONS = {
    "PUBLISH": "iot:Publish",
    "SUBSCRIBE": "iot:Subscribe",
    "RECEIVE": "iot:Receive",
    "CONNECT": "iot:Connect",
}


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``authInfo`` of ``TestAuthorization``, decided."""

    action_type: str
    resources: tuple[str, ...]
    decision: str  # ALLOWED | EXPLICIT_DENY | IMPLICIT_DENY
    allowed: tuple[str, ...] = ()
    explicit_deny: tuple[str, ...] = ()


def test_authorization(
    registry: Registry,
    principal: str | None,
    client_id: str | None,
    auth_infos: Sequence[tuple[str, tuple[str, ...]]],
    add: Sequence[str],
    skip: Sequence[str],
) -> list[AuthResult]:
    """Each (action type, resource ARNs) decided with the principal's policies (plus
    ``add``, minus ``skip``), as the broker would decide them."""
    if not 1 <= len(auth_infos) <= 10:
        raise InvalidRequest("authInfos must hold 1 to 10 entries")
    record: CertificatePrincipal | None = None
    principal_id = principal or ""
    if principal:
        cert = registry.certificate_of_arn(principal) or registry.certificates.get(principal)
        if cert is None:
            raise ResourceNotFound(f"The principal {principal} does not exist")
        record = registry.certificate_principal(cert.certificate_id)
        principal_id = cert.certificate_id
    specs = [p for p in (record.policies if record else ()) if p.name not in skip]
    for name in add:
        specs.append(PolicySpec(name, json.loads(registry.policy(name).document)))
    policies = PolicySet(
        specs,
        registry.region,
        registry.account_id,
        variables=certificate_resolver(record) if record else None,
    )
    identity = ClientIdentity(client_id or "", principal_id, "127.0.0.1")
    results = []
    for action_type, resources in auth_infos:
        action = AUTH_ACTIONS.get(action_type)
        if action is None:
            raise InvalidRequest(f"actionType must be one of {', '.join(AUTH_ACTIONS)}")
        decisions = [policies.explain_arn(identity, action, arn) for arn in resources]
        denied = [s.policy for d, s in decisions if not d.allowed and s is not None]
        allowed = [s.policy for d, s in decisions if d.allowed and s is not None]
        if denied:
            decision = "EXPLICIT_DENY"
        elif decisions and all(d.allowed for d, _ in decisions):
            decision = "ALLOWED"
        else:
            decision = "IMPLICIT_DENY"
        results.append(
            AuthResult(
                action_type,
                resources,
                decision,
                tuple(dict.fromkeys(allowed)) if decision == "ALLOWED" else (),
                tuple(dict.fromkeys(denied)),
            )
        )
    return results
