"""SigV4-presigned WebSocket URLs (``/mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&...``). Pure.

Browsers (the original chat page, the AWS IoT Device SDKs) sign a GET of ``/mqtt`` for the
service ``iotdevicegateway`` and put the signature in the query string. AWS IoT's own
quirk is followed: a session token (``X-Amz-Security-Token``) is appended after signing,
so it is left out of the canonical request; URLs that signed it too are accepted as well.

With configured credentials (``credentials: {access key: secret}``) the signature is
verified; without, any well-formed presigned URL is accepted and its access key named.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "iotdevicegateway"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CLOCK_SKEW = timedelta(minutes=15)


class SignatureError(ValueError):
    """The presigned URL is malformed, expired, or signed with the wrong key."""


@dataclass(frozen=True, slots=True)
class Presigned:
    access_key: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    signed_headers: str
    signature: str
    expires: int | None


def is_presigned(query: Mapping[str, str]) -> bool:
    return "X-Amz-Signature" in query or "X-Amz-Algorithm" in query


def parse(query: Mapping[str, str]) -> Presigned:
    try:
        algorithm = query["X-Amz-Algorithm"]
        credential = query["X-Amz-Credential"]
        amz_date = query["X-Amz-Date"]
        signed_headers = query.get("X-Amz-SignedHeaders", "host")
        signature = query["X-Amz-Signature"]
    except KeyError as exc:
        raise SignatureError(f"presigned URL without {exc.args[0]}") from None
    if algorithm != ALGORITHM:
        raise SignatureError(f"unsupported X-Amz-Algorithm {algorithm!r} (use {ALGORITHM})")
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError(f"malformed X-Amz-Credential {credential!r}")
    expires = query.get("X-Amz-Expires")
    try:
        expires_s = int(expires) if expires is not None else None
    except ValueError:
        raise SignatureError(f"malformed X-Amz-Expires {expires!r}") from None
    return Presigned(
        parts[0], parts[1], parts[2], parts[3], amz_date, signed_headers, signature, expires_s
    )


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(query: Mapping[str, str], include_token: bool) -> str:
    items = [
        (k, v)
        for k, v in query.items()
        if k != "X-Amz-Signature" and (include_token or k != "X-Amz-Security-Token")
    ]
    return "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(items))


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature_for(
    secret: str, p: Presigned, host: str, path: str, query: Mapping[str, str], include_token: bool
) -> str:
    headers = {"host": host}
    names = [h for h in p.signed_headers.split(";") if h]
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in names)
    canonical_request = "\n".join(
        [
            "GET",
            quote(path, safe="/-_.~"),
            canonical_query(query, include_token),
            canonical_headers,
            ";".join(names),
            EMPTY_SHA256,
        ]
    )
    scope = f"{p.date}/{p.region}/{p.service}/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, p.amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = signing_key(secret, p.date, p.region, p.service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    query: Mapping[str, str],
    host: str,
    path: str,
    credentials: Mapping[str, str],
    now: datetime | None = None,
) -> str:
    """The access key of a valid presigned URL; raises ``SignatureError`` otherwise."""
    p = parse(query)
    try:
        signed_at = datetime.strptime(p.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"malformed X-Amz-Date {p.amz_date!r}") from None
    now = now or datetime.now(UTC)
    if p.expires is not None and now > signed_at + timedelta(seconds=p.expires):
        raise SignatureError(f"presigned URL expired at {signed_at + timedelta(seconds=p.expires)}")
    if signed_at - now > CLOCK_SKEW:
        raise SignatureError("presigned URL signed in the future (clock skew over 15 minutes)")
    if not credentials:
        return p.access_key
    secret = credentials.get(p.access_key)
    if secret is None:
        raise SignatureError(f"unknown access key {p.access_key!r}")
    for include_token in (False, True):
        expected = signature_for(secret, p, host, path, query, include_token)
        if hmac.compare_digest(expected, p.signature):
            return p.access_key
        if "X-Amz-Security-Token" not in query:
            break
    raise SignatureError(f"signature mismatch for access key {p.access_key!r}")
