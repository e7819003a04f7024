"""Certificate principals in the policy engine, certificate policy variables, and the API's
rule compiler and paging: pure code, no sockets (tests/integration/test_device_identity.py
drives the same through real clients)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from emulator.broker.auth import AttachedThing, CertificatePrincipal, ClientIdentity
from emulator.broker.policy import IdentityAuthorizer, PolicySet, certificate_resolver
from emulator.controlplane.exceptions import InvalidRequest, SqlParse
from emulator.controlplane.models import page_of
from emulator.controlplane.topic_rules import compile_rule
from emulator.identity.x509 import (
    certificate_id,
    der,
    issue_keys_and_certificate,
    load_certificate,
    new_authority,
    policy_variables,
    sign_request,
)
from emulator.project.model import PolicySpec

ARN = "arn:aws:iot:us-east-1:123456789012"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def allow(action: str, resource: str) -> PolicySpec:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    return PolicySpec("p", {"Version": "2012-10-17", "Statement": [statement]})


def csr(*attributes: tuple[x509.ObjectIdentifier, str]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_certificate_variables_give_first_values_indexes_and_lists() -> None:
    authority = new_authority(NOW)
    pem = sign_request(
        authority,
        csr(
            (NameOID.COMMON_NAME, "sensor-9"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "plant-a"),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, "line-2"),
        ),
        NOW,
    )
    variables = policy_variables(load_certificate(pem))
    assert variables["iot:certificate.subject.commonname"] == "sensor-9"
    assert variables["iot:certificate.subject.organizationalunit"] == "plant-a"
    assert variables["iot:certificate.subject.organizationalunit.1"] == "line-2"
    assert variables["iot:certificate.subject.organizationalunit.list"] == "plant-a,line-2"
    assert variables["iot:certificate.issuer.commonname"] == "IoT Chat Emulator Local CA"
    assert "iot:certificate.subject.organizationalunit.2" not in variables


def test_keys_and_certificate_are_rsa_2048_and_expire_when_aws_says() -> None:
    issued = issue_keys_and_certificate(new_authority(NOW), NOW)
    cert = load_certificate(issued.certificate_pem)
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    assert cert.not_valid_after_utc == dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert len(certificate_id(der(cert))) == 64
    assert "BEGIN RSA PRIVATE KEY" in issued.private_key_pem


def principal(things: tuple[AttachedThing, ...] = (), cn: str = "dev") -> CertificatePrincipal:
    return CertificatePrincipal("c" * 64, (), {"iot:certificate.subject.commonname": cn}, things)


@pytest.mark.parametrize(
    ("resource", "client_id", "things", "allowed"),
    [
        # the certificate's common name
        (f"{ARN}:client/${{iot:Certificate.Subject.CommonName}}", "dev", (), True),
        (f"{ARN}:client/${{iot:Certificate.Subject.CommonName}}", "other", (), False),
        # the thing is the attached thing named as the client ID...
        (
            f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
            "t1",
            (AttachedThing("t1", None, {}),),
            True,
        ),
        # ...not a thing of another name, and no thing: no value, no match
        (
            f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
            "t2",
            (AttachedThing("t1", None, {}),),
            False,
        ),
        (f"{ARN}:client/${{iot:Connection.Thing.ThingName}}", "t1", (), False),
        # an exclusive attachment makes the thing whatever the client ID
        (
            f"{ARN}:client/x-${{iot:Connection.Thing.ThingName}}",
            "x-t1",
            (AttachedThing("t1", None, {}, exclusive=True),),
            True,
        ),
        (
            f"{ARN}:client/${{iot:Connection.Thing.Attributes[floor]}}-*",
            "3-a",
            (AttachedThing("3-a", "lamp", {"Floor": "3"}),),
            True,
        ),
        (
            f"{ARN}:client/${{iot:Connection.Thing.ThingTypeName}}-*",
            "lamp-1",
            (AttachedThing("lamp-1", "lamp", {}),),
            True,
        ),
        (f"{ARN}:client/${{iot:Connection.Thing.IsAttached}}*", "true-1", (), False),
        (f"{ARN}:client/${{iot:Connection.Thing.IsAttached}}*", "false-1", (), True),
    ],
)
def test_certificate_and_thing_variables_in_resources(
    resource: str, client_id: str, things: tuple[AttachedThing, ...], allowed: bool
) -> None:
    record = principal(things)
    policies = PolicySet([allow("iot:Connect", resource)], variables=certificate_resolver(record))
    identity = ClientIdentity(client_id, record.certificate_id, "127.0.0.1")
    assert policies.check(identity, "iot:Connect", client_id).allowed is allowed


@dataclass
class Directory:
    """A registry with one certificate, whose policies the test changes."""

    policies: tuple[PolicySpec, ...]
    generation: int = 0
    asked: list[str] = field(default_factory=list)

    def certificate_principal(self, name: str) -> CertificatePrincipal | None:
        self.asked.append(name)
        if name != "c" * 64:
            return None
        return CertificatePrincipal(name, self.policies, {})


def test_a_certificate_gets_its_policies_and_a_username_naming_it_does_not() -> None:
    directory = Directory((allow("iot:Connect", f"{ARN}:client/dev"),))
    files = PolicySet([allow("iot:Connect", f"{ARN}:client/web-*")])
    authorizer = IdentityAuthorizer(directory, files)
    cert = "c" * 64
    assert authorizer.check(ClientIdentity("dev", cert, "1.2.3.4"), "iot:Connect", "dev").allowed
    # the certificate's policies, not the files'
    assert not authorizer.check(
        ClientIdentity("web-1", cert, "::1"), "iot:Connect", "web-1"
    ).allowed
    # a plain client naming the certificate ID as its username gets the files' policies
    spoof = ClientIdentity("dev", cert, "::1", username=cert)
    assert not authorizer.check(spoof, "iot:Connect", "dev").allowed
    web = ClientIdentity("web-1", cert, "::1", username=cert)
    assert authorizer.check(web, "iot:Connect", "web-1").allowed
    # a new registry generation: the certificate's policies are read again
    directory.policies = ()
    directory.generation += 1
    assert not authorizer.check(ClientIdentity("dev", cert, "::1"), "iot:Connect", "dev").allowed


@pytest.mark.parametrize(
    ("name", "payload", "error", "message"),
    [
        ("r", {"sql": "SELECT * FORM 'a'", "actions": []}, SqlParse, "line 1"),
        ("r", {"sql": "SELECT nosuch(1) FROM 'a'", "actions": []}, SqlParse, "nosuch"),
        ("bad-name", {"sql": "SELECT * FROM 'a'", "actions": []}, InvalidRequest, "ruleName"),
        ("r", {"sql": "SELECT * FROM 'a'"}, InvalidRequest, "actions is required"),
        (
            "r",
            {"sql": "SELECT * FROM 'a'", "actions": [{"sns": {"targetArn": "x"}}]},
            InvalidRequest,
            "unknown action type 'sns'",
        ),
    ],
)
def test_the_api_compiles_rules_as_the_files_do(
    name: str, payload: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        compile_rule(name, payload)


def test_a_compiled_api_rule_has_its_topic_filter() -> None:
    spec = compile_rule(
        "r",
        {
            "sql": "SELECT * FROM 'a/+'",
            "actions": [{"republish": {"topic": "b", "roleArn": "arn:aws:iam::1:role/r"}}],
            "ruleDisabled": True,
        },
    )
    assert spec.compiled is not None and spec.compiled.statement.topic_filter == "a/+"
    assert spec.rule_disabled


def test_pages_resume_after_the_last_key_even_when_items_change() -> None:
    first = page_of(["a", "b", "c", "d"], str, 2, None)
    assert list(first.items) == ["a", "b"] and first.marker is not None
    # "b" deleted and "bb" added before the next call: the page starts after "b"
    second = page_of(["a", "bb", "c", "d"], str, 2, first.marker)
    assert list(second.items) == ["bb", "c"]
    with pytest.raises(InvalidRequest):
        page_of(["a"], str, 0, None)
