"""SigV4 verification of the emulator's HTTP APIs and presigned ``/mqtt`` URLs. No I/O: the
request and the time come in as arguments.

Theory of operation. A client signs a request in one of two places:

- the query string (a *presigned* URL: ``X-Amz-Algorithm``, ``X-Amz-Credential``,
  ``X-Amz-Date``, ``X-Amz-Expires``, ``X-Amz-SignedHeaders``, ``X-Amz-Signature``), as
  browsers and the AWS IoT Device SDKs sign ``GET /mqtt`` for the service
  ``iotdevicegateway``;
- the ``Authorization`` header (``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
  Signature=...`` with ``X-Amz-Date``), as boto3's ``iot-data`` client (signing name
  ``iotdata``) and ``lambda`` client (``lambda``) sign every call.

Verification rebuilds the request the client signed and lets botocore's own signer
(``botocore.auth.SigV4Auth``: canonical request, string to sign, signature) compute the
signature, so the canonical form is AWS SDKs' own, not a copy of it: the method, the path
as it came on the wire (botocore signs the encoded path encoded once more), the query
without ``X-Amz-Signature``, exactly the headers the client listed in ``SignedHeaders``
(botocore's signer leaves ``connection`` out when it signs, but the Device SDK v2 signs it
on its WebSocket handshake; what the client listed is what counts), the timestamp of
``X-Amz-Date`` and the payload hash (``X-Amz-Content-SHA256`` when signed, else the body's
SHA-256).

AWS IoT's quirk is kept: a session token (``X-Amz-Security-Token``) may be appended to a
presigned URL after signing, so it is tried both in and out of the canonical query.

Failures are ``SignatureError``s carrying the error code AWS's front end answers with
(HTTP 403): ``MissingAuthenticationTokenException`` (no signature at all),
``IncompleteSignatureException`` (malformed), ``UnrecognizedClientException`` (unknown
access key), ``InvalidSignatureException`` (wrong signature, expired, wrong scope).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
CLOCK_SKEW = timedelta(minutes=15)  # AWS: a signature older or newer than 15 min is refused
MAX_EXPIRES = 7 * 24 * 3600  # AWS: X-Amz-Expires is at most 7 days
SIGNATURE = "X-Amz-Signature"
TOKEN = "X-Amz-Security-Token"
UNSIGNED_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-")  # payload hashes that are not hashes

# The error codes AWS's front end answers with (x-amzn-ErrorType), all HTTP 403.
MISSING = "MissingAuthenticationTokenException"
INCOMPLETE = "IncompleteSignatureException"
UNRECOGNIZED = "UnrecognizedClientException"
INVALID = "InvalidSignatureException"


class SignatureError(ValueError):
    """The request is unsigned, malformed, expired, or signed with the wrong key; ``code``
    is AWS's error code for it."""

    def __init__(self, message: str, code: str = INVALID) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What verification needs of an HTTP request, as it came on the wire."""

    method: str
    path: str  # percent-encoded as received, without the query
    query: str  # the raw query string, without the "?"
    headers: tuple[tuple[str, str], ...]  # (name, value) pairs, repeated names kept
    body: bytes = b""

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)


@dataclass(frozen=True, slots=True)
class Signed:
    """The signature parameters of a request, from its query string or Authorization."""

    access_key: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    signed_headers: tuple[str, ...]
    signature: str
    expires: int | None  # presigned URLs only
    presigned: bool


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The decoded (name, value) pairs of a raw query string, in order. ``+`` stays a plus:
    SigV4 encodes a space as ``%20`` (RFC 3986), not as a form would."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def is_presigned(query: Mapping[str, str]) -> bool:
    return SIGNATURE in query or "X-Amz-Algorithm" in query


def is_signed(request: HttpRequest) -> bool:
    """Whether the request carries a SigV4 signature at all (query or header)."""
    authorization = request.header("Authorization") or ""
    return authorization.startswith(ALGORITHM) or is_presigned(dict(query_pairs(request.query)))


def _credential(text: str) -> tuple[str, str, str, str]:
    parts = text.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise SignatureError(f"malformed Credential {text!r}", INCOMPLETE)
    return parts[0], parts[1], parts[2], parts[3]


def parse_query(query: Mapping[str, str]) -> Signed:
    """The parameters of a presigned URL."""
    try:
        algorithm = query["X-Amz-Algorithm"]
        credential = query["X-Amz-Credential"]
        amz_date = query["X-Amz-Date"]
        signature = query[SIGNATURE]
    except KeyError as exc:
        raise SignatureError(f"presigned URL without {exc.args[0]}", INCOMPLETE) from None
    if algorithm != ALGORITHM:
        raise SignatureError(
            f"unsupported X-Amz-Algorithm {algorithm!r} (use {ALGORITHM})", INCOMPLETE
        )
    expires = query.get("X-Amz-Expires")
    try:
        expires_s = int(expires) if expires is not None else None
    except ValueError:
        raise SignatureError(f"malformed X-Amz-Expires {expires!r}", INCOMPLETE) from None
    if expires_s is not None and not 0 <= expires_s <= MAX_EXPIRES:
        raise SignatureError(f"X-Amz-Expires must be 0 to {MAX_EXPIRES}", INCOMPLETE)
    key, date, region, service = _credential(credential)
    headers = tuple(h for h in query.get("X-Amz-SignedHeaders", "host").lower().split(";") if h)
    return Signed(key, date, region, service, amz_date, headers, signature, expires_s, True)


def parse_authorization(request: HttpRequest) -> Signed:
    """The parameters of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""
    authorization = request.header("Authorization") or ""
    algorithm, _, rest = authorization.partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(f"unsupported authorization {algorithm!r} (use {ALGORITHM})", MISSING)
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, value = item.strip().partition("=")
        if eq:
            fields[name] = value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if name not in fields]
    if missing:
        raise SignatureError(f"Authorization header requires '{missing[0]}' parameter", INCOMPLETE)
    amz_date = request.header("X-Amz-Date")
    if amz_date is None:
        date_header = request.header("Date")
        if date_header is None:
            raise SignatureError("Authorization header requires X-Amz-Date or Date", INCOMPLETE)
        try:
            amz_date = parsedate_to_datetime(date_header).astimezone(UTC).strftime(SIGV4_TIMESTAMP)
        except (TypeError, ValueError):
            raise SignatureError(f"malformed Date {date_header!r}", INCOMPLETE) from None
    key, date, region, service = _credential(fields["Credential"])
    headers = tuple(h for h in fields["SignedHeaders"].lower().split(";") if h)
    return Signed(key, date, region, service, amz_date, headers, fields["Signature"], None, False)


def parse(request: HttpRequest) -> Signed:
    """The request's signature parameters; ``MISSING`` when it carries none."""
    if (request.header("Authorization") or "").startswith(ALGORITHM):
        return parse_authorization(request)
    query = dict(query_pairs(request.query))
    if is_presigned(query):
        return parse_query(query)
    raise SignatureError("Missing Authentication Token", MISSING)


class _Signer(SigV4Auth):
    """botocore's SigV4 signer over exactly the headers the client signed (its own
    ``headers_to_sign`` would leave out some, such as ``connection``)."""

    def __init__(
        self, credentials: Credentials, service: str, region: str, signed: HTTPHeaders
    ) -> None:
        super().__init__(credentials, service, region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        return self._signed


def _signed_headers(request: HttpRequest, names: Iterable[str]) -> HTTPHeaders:
    headers = HTTPHeaders()
    for name in names:
        values = [v for k, v in request.headers if k.lower() == name]
        for value in values or [""]:
            headers[name] = value
    return headers


def signature_of(
    request: HttpRequest, signed: Signed, secret: str, query: list[tuple[str, str]]
) -> str:
    """The signature botocore computes for the request, with ``query`` as its query."""
    headers = _signed_headers(request, signed.signed_headers)
    aws_request = AWSRequest(
        method=request.method,
        # http: botocore then hashes the body rather than consulting payload-signing context
        url=f"http://{headers.get('host') or 'localhost'}{request.path or '/'}",
        headers=headers,
        data=request.body,
        params=query,
    )
    aws_request.context["timestamp"] = signed.amz_date
    signer = _Signer(Credentials(signed.access_key, secret), signed.service, signed.region, headers)
    canonical = signer.canonical_request(aws_request)
    return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))


def _check_time(signed: Signed, now: datetime) -> None:
    try:
        signed_at = datetime.strptime(signed.amz_date, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError(f"malformed X-Amz-Date {signed.amz_date!r}", INCOMPLETE) from None
    if signed.date != signed.amz_date[:8]:
        raise SignatureError(
            f"Credential date {signed.date!r} does not match X-Amz-Date {signed.amz_date}"
        )
    stamp = now.strftime(SIGV4_TIMESTAMP)
    if signed.presigned:
        expires_at = signed_at + timedelta(seconds=signed.expires or 0)
        if signed.expires is not None and now > expires_at:
            raise SignatureError(
                f"Signature expired: {signed.amz_date} is now earlier than {stamp}"
            )
    elif now - signed_at > CLOCK_SKEW:
        raise SignatureError(
            f"Signature expired: {signed.amz_date} is now earlier than "
            f"{(now - CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} ({stamp} - 15 min.)"
        )
    if signed_at - now > CLOCK_SKEW:
        raise SignatureError(
            f"Signature not yet current: {signed.amz_date} is still later than "
            f"{(now + CLOCK_SKEW).strftime(SIGV4_TIMESTAMP)} ({stamp} + 15 min.)"
        )


def _check_payload(request: HttpRequest) -> None:
    declared = request.header("X-Amz-Content-SHA256")
    if declared is None or declared.startswith(UNSIGNED_PAYLOADS):
        return
    if not hmac.compare_digest(declared, hashlib.sha256(request.body).hexdigest()):
        raise SignatureError("The provided x-amz-content-sha256 header does not match the body")


def verify(
    request: HttpRequest,
    credentials: Mapping[str, str],
    now: datetime,
    service: str | None = None,
    region: str | None = None,
) -> str:
    """The access key of a validly signed request; raises ``SignatureError`` otherwise.

    With no ``credentials``, any well-formed signature is accepted unchecked and its access
    key named (the default mode: the key becomes the connection's principal). ``service``
    and ``region``, when given, must be those of the credential scope, as AWS requires.
    """
    signed = parse(request)
    _check_time(signed, now)
    if not credentials:
        return signed.access_key
    secret = credentials.get(signed.access_key)
    if secret is None:
        raise SignatureError("The security token included in the request is invalid.", UNRECOGNIZED)
    if service is not None and signed.service != service:
        raise SignatureError(
            f"Credential should be scoped to correct service: '{service}', not {signed.service!r}"
        )
    if region is not None and signed.region != region:
        raise SignatureError(
            f"Credential should be scoped to a valid region: '{region}', not {signed.region!r}"
        )
    query = [(k, v) for k, v in query_pairs(request.query) if k != SIGNATURE]
    # A presigned URL's token may have been appended after signing (AWS IoT's samples do).
    candidates = [query]
    if signed.presigned and any(k == TOKEN for k, _ in query):
        candidates.append([(k, v) for k, v in query if k != TOKEN])
    for candidate in candidates:
        expected = signature_of(request, signed, secret, candidate)
        if hmac.compare_digest(expected, signed.signature):
            if not signed.presigned:
                _check_payload(request)
            return signed.access_key
    raise SignatureError(
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method."
    )
