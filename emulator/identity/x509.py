"""X.509 as AWS IoT uses it, with the ``cryptography`` package: the local CA, the server
certificate, the device certificates ``CreateKeysAndCertificate`` and
``CreateCertificateFromCsr`` issue, and what a registered certificate says about itself.

Pure in the h11 sense: no files, no clock (``now`` is an argument). Key generation draws on
the operating system's randomness, as it must.

AWS's facts followed here (aws-iot-current.md §6, x509-client-certs): a certificate's ID is
the SHA-256 of its DER encoding, 64 hex digits; AWS-issued device certificates carry an
RSA 2048 key pair and expire 2049-12-31T23:59:59Z; their subject is
``CN=AWS IoT Certificate``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEVICE_NOT_AFTER = dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
DEVICE_SUBJECT = "AWS IoT Certificate"
CA_SUBJECT = "IoT Chat Emulator Local CA"
SERVER_DAYS = 825  # what browsers and macOS accept for a server certificate
CA_DAYS = 3650

# The certificate policy variables' attribute names (cert-policy-variables.md) -> OIDs.
NAME_ATTRIBUTES: Mapping[str, x509.ObjectIdentifier] = {
    "DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "Country": NameOID.COUNTRY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME,
    "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "State": NameOID.STATE_OR_PROVINCE_NAME,
    "CommonName": NameOID.COMMON_NAME,
    "SerialNumber": NameOID.SERIAL_NUMBER,
    "Title": NameOID.TITLE,
    "Surname": NameOID.SURNAME,
    "GivenName": NameOID.GIVEN_NAME,
    "Initials": NameOID.INITIALS,
    "Pseudonym": NameOID.PSEUDONYM,
    "GenerationQualifier": NameOID.GENERATION_QUALIFIER,
}


class CertificateInvalid(ValueError):
    """Text that is not a usable certificate or CSR (AWS: CertificateValidationException)."""


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA able to issue certificates: its certificate and private key."""

    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes


@dataclass(frozen=True, slots=True)
class IssuedKeys:
    """``CreateKeysAndCertificate``'s result: the certificate and its key pair, as PEM."""

    certificate_pem: str
    public_key_pem: str
    private_key_pem: str


def certificate_id(der: bytes) -> str:
    """AWS's certificate ID: the SHA-256 of the DER encoding, in hex."""
    return hashlib.sha256(der).hexdigest()


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: CertificateIssuerPrivateKeyTypes | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_authority(now: dt.datetime) -> Authority:
    """A self-signed CA with an EC P-256 key (fast to make at every in-memory start)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(CA_SUBJECT)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(cert, key)


def _issue(
    authority: Authority,
    public_key: CertificatePublicKeyTypes,
    subject: x509.Name,
    not_before: dt.datetime,
    not_after: dt.datetime,
    usage: x509.ObjectIdentifier,
    names: Iterable[x509.GeneralName] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                authority.certificate.public_key()  # type: ignore[arg-type]
            ),
            critical=False,
        )
    )
    alternative = list(names)
    if alternative:
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative), critical=False)
    return builder.sign(authority.key, hashes.SHA256())


def server_certificate(
    authority: Authority, hosts: Iterable[str], now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The TLS listeners' certificate, valid for every name and address in ``hosts``."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = _issue(
        authority,
        key.public_key(),
        _name("localhost"),
        now - dt.timedelta(minutes=5),
        now + dt.timedelta(days=SERVER_DAYS),
        ExtendedKeyUsageOID.SERVER_AUTH,
        names,
    )
    return cert, key


def server_hosts(certificate: x509.Certificate) -> set[str]:
    """The names and addresses a server certificate is valid for."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }


def issue_keys_and_certificate(authority: Authority, now: dt.datetime) -> IssuedKeys:
    """``CreateKeysAndCertificate``: a new RSA 2048 key pair and its certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _issue(
        authority,
        key.public_key(),
        _name(DEVICE_SUBJECT),
        now - dt.timedelta(minutes=5),
        DEVICE_NOT_AFTER,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return IssuedKeys(pem(cert), public.decode(), key_pem(key))


def sign_request(authority: Authority, csr_pem: str, now: dt.datetime) -> str:
    """``CreateCertificateFromCsr``: the CSR's key and subject, signed by the local CA."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
    except ValueError as exc:
        raise CertificateInvalid(f"the certificate signing request is not valid: {exc}") from exc
    if not csr.is_signature_valid:
        raise CertificateInvalid("the certificate signing request's signature is not valid")
    cert = _issue(
        authority,
        csr.public_key(),  # type: ignore[arg-type]
        csr.subject,
        now - dt.timedelta(minutes=5),
        DEVICE_NOT_AFTER,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    return pem(cert)


def load_certificate(text: str) -> x509.Certificate:
    """One PEM certificate; ``CertificateInvalid`` for anything else."""
    try:
        return x509.load_pem_x509_certificate(text.encode())
    except ValueError as exc:
        raise CertificateInvalid(f"the certificate is not a valid PEM certificate: {exc}") from exc


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _name_variables(prefix: str, name: x509.Name) -> dict[str, str]:
    """``iot:Certificate.Subject.CommonName`` and the rest, as cert-policy-variables.md names
    them: the first value of an attribute, ``.1`` the second, ``.List`` all of them."""
    out: dict[str, str] = {}
    for label, oid in NAME_ATTRIBUTES.items():
        values = [str(a.value) for a in name.get_attributes_for_oid(oid)]
        if not values:
            continue
        key = f"{prefix}.{label}".lower()
        out[key] = values[0]
        for index, value in enumerate(values[1:], start=1):
            out[f"{key}.{index}"] = value
        out[f"{key}.list"] = ",".join(values)
    return out


def _alternative_names(prefix: str, certificate: x509.Certificate) -> dict[str, str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return {}
    kinds: tuple[tuple[str, type[x509.GeneralName]], ...] = (
        ("RFC822Name", x509.RFC822Name),
        ("DNSName", x509.DNSName),
        ("DirectoryName", x509.DirectoryName),
        ("UniformResourceIdentifier", x509.UniformResourceIdentifier),
        ("IPAddress", x509.IPAddress),
    )
    out: dict[str, str] = {}
    for label, kind in kinds:
        values = [
            v.rfc4514_string() if isinstance(v, x509.Name) else str(v)
            for v in san.get_values_for_type(kind)  # type: ignore[arg-type]
        ]
        if not values:
            continue
        key = f"{prefix}.AlternativeName.{label}".lower()
        out[key] = values[0]
        for index, value in enumerate(values[1:], start=1):
            out[f"{key}.{index}"] = value
        out[f"{key}.list"] = ",".join(values)
    return out


def policy_variables(certificate: x509.Certificate) -> dict[str, str]:
    """Every certificate policy variable this certificate has a value for, by lower-case
    name (policy variable names are case-insensitive, as IAM's context keys)."""
    out = _name_variables("iot:Certificate.Subject", certificate.subject)
    out.update(_name_variables("iot:Certificate.Issuer", certificate.issuer))
    out.update(_alternative_names("iot:Certificate.Subject", certificate))
    out["iot:certificate.serialnumber"] = str(certificate.serial_number)
    # the names of the variables above (lower case: the emulator keeps no other spelling)
    out["iot:certificate.availablekeys"] = ",".join(sorted(out))
    return out
