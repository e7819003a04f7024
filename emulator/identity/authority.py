"""The emulator's local certificate authority, kept in the data directory.

Made on first start (``tls/ca.pem``, ``tls/ca.key``) and kept, so that a device's
certificate and a client's trust in ``ca.pem`` outlive a restart. The server certificate
(``tls/server.pem``) is made again when the host names it must cover change. With
``--in-memory`` the files go to a temporary directory removed at stop: SDKs need a file to
trust.

``ca.pem`` is what clients trust (``--cafile``, ``ca_filepath``); the path is printed in the
ready line and the file is served at ``/ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from emulator.files import write_atomically
from emulator.identity.x509 import (
    Authority,
    IssuedKeys,
    issue_keys_and_certificate,
    key_pem,
    new_authority,
    pem,
    server_certificate,
    server_hosts,
    sign_request,
)

log = logging.getLogger(__name__)

SUBDIRECTORY = "tls"
ALPN_MQTT = "x-amzn-mqtt-ca"  # AWS: MQTT with X.509 on 443 (protocols.md)
RENEW_BEFORE = dt.timedelta(days=30)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_secret(path: Path, text: str) -> None:
    write_atomically(path, text)
    os.chmod(path, 0o600)


class LocalAuthority:
    """The CA and server certificate in ``directory`` (None: a temporary directory)."""

    def __init__(self, directory: Path | None, hosts: Iterable[str]) -> None:
        self._temporary = directory is None
        base = (
            Path(tempfile.mkdtemp(prefix="iot-emulator-tls-")) if directory is None else directory
        )
        self.directory = base if directory is None else base / SUBDIRECTORY
        self.hosts = tuple(dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]))
        self.ca_path = self.directory / "ca.pem"
        self.server_path = self.directory / "server.pem"
        self.server_key_path = self.directory / "server.key"
        self.authority = self._load_or_create()
        self._ensure_server_certificate()

    def _load_or_create(self) -> Authority:
        key_path = self.directory / "ca.key"
        if self.ca_path.is_file() and key_path.is_file():
            cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                raise ValueError(f"{key_path}: not an EC or RSA private key")
            return Authority(cert, key)
        authority = new_authority(_now())
        _write_secret(key_path, key_pem(authority.key))
        write_atomically(self.ca_path, pem(authority.certificate))
        log.info("made a local certificate authority: %s", self.ca_path)
        return authority

    def _ensure_server_certificate(self) -> None:
        if self.server_path.is_file() and self.server_key_path.is_file():
            current = x509.load_pem_x509_certificate(self.server_path.read_bytes())
            fresh = current.not_valid_after_utc - _now() > RENEW_BEFORE
            issued_by_ca = current.issuer == self.authority.certificate.subject
            if fresh and issued_by_ca and set(self.hosts) <= server_hosts(current):
                return
        cert, key = server_certificate(self.authority, self.hosts, _now())
        _write_secret(self.server_key_path, key_pem(key))
        write_atomically(self.server_path, pem(cert))

    # -- issuing (the control plane's certificate operations) ------------------------
    def issue_keys_and_certificate(self) -> IssuedKeys:
        return issue_keys_and_certificate(self.authority, _now())

    def sign_request(self, csr_pem: str) -> str:
        return sign_request(self.authority, csr_pem, _now())

    @property
    def ca_pem(self) -> str:
        return pem(self.authority.certificate)

    # -- TLS contexts --------------------------------------------------------------------
    def mqtt_context(self, trusted: Iterable[str] = ()) -> ssl.SSLContext:
        """The MQTT port's context: a client certificate is required, issued by this CA or
        registered itself (``trust``: RegisterCertificateWithoutCA's certificates, trusted
        as they are through OpenSSL's partial-chain flag). Whether it is registered and
        ACTIVE is the listener's check after the handshake."""
        context = self._server_context()
        context.verify_mode = ssl.CERT_REQUIRED
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(cafile=str(self.ca_path))
        for certificate in trusted:
            self.trust(context, certificate)
        context.set_alpn_protocols([ALPN_MQTT])
        return context

    @staticmethod
    def trust(context: ssl.SSLContext, certificate_pem: str) -> None:
        """Trust one more certificate on an existing context (new handshakes see it)."""
        context.load_verify_locations(cadata=certificate_pem)

    def https_context(self) -> ssl.SSLContext:
        """The HTTPS port's context (WSS, the APIs): no client certificate."""
        context = self._server_context()
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # AWS: TLS 1.2 and 1.3
        context.load_cert_chain(str(self.server_path), str(self.server_key_path))
        return context

    def close(self) -> None:
        """Remove the temporary directory of an in-memory emulator."""
        if self._temporary:
            shutil.rmtree(self.directory, ignore_errors=True)
