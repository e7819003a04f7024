"""SigV4 verification (emulator/transport/sigv4.py) against what AWS's own signers make:
botocore's SigV4QueryAuth (presigned /mqtt URLs) and SigV4Auth (boto3's Authorization
header), and awscrt's signer (the Device SDK v2's presigned WebSocket handshake, which
signs ``connection`` too)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from awscrt import auth as crt_auth
from awscrt import websocket as crt_websocket
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from emulator.transport import sigv4

HOST = "localhost:8080"
CREDENTIALS = {"AKIDLOCAL": "local-secret"}


def now() -> datetime:
    """The time of the call: requests are signed at the time of theirs (a module-level
    time went stale when the suite ran for minutes after collecting this module)."""
    return datetime.now(UTC)


def presigned(
    secret: str = "local-secret",
    token: str | None = None,
    expires: int = 300,
    service: str = "iotdevicegateway",
) -> sigv4.HttpRequest:
    """A GET /mqtt presigned by botocore, as the request reaches the emulator."""
    request = AWSRequest(method="GET", url=f"http://{HOST}/mqtt")
    SigV4QueryAuth(Credentials("AKIDLOCAL", secret, token), service, "us-east-1", expires).add_auth(
        request
    )
    return sigv4.HttpRequest("GET", "/mqtt", urlsplit(request.url).query, (("Host", HOST),))


def with_query(request: sigv4.HttpRequest, query: str) -> sigv4.HttpRequest:
    return sigv4.HttpRequest(request.method, request.path, query, request.headers, request.body)


def header_signed(
    secret: str = "local-secret",
    service: str = "iotdata",
    path: str = "/topics/chat%2Fin%2Fweb-1",
    body: bytes = b'{"message": "hi"}',
    query: str = "qos=1",
) -> sigv4.HttpRequest:
    """A POST signed in the Authorization header by botocore, as boto3 sends it."""
    request = AWSRequest(
        method="POST",
        url=f"http://{HOST}{path}?{query}",
        data=body,
        headers={"Content-Type": "application/octet-stream", "User-Agent": "Boto3/1"},
    )
    SigV4Auth(Credentials("AKIDLOCAL", secret), service, "us-east-1").add_auth(request)
    headers = (("Host", HOST), *request.headers.items())
    return sigv4.HttpRequest("POST", path, query, tuple(headers), body)


def crt_presigned(token: str | None = "session-token") -> sigv4.HttpRequest:
    """The Device SDK v2's handshake, signed by awscrt as its websocket builder signs it."""
    handshake = crt_websocket.create_handshake_request(host=HOST, path="/mqtt")
    handshake.headers.add("Sec-WebSocket-Protocol", "mqtt")
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4,
        signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=crt_auth.AwsCredentialsProvider.new_static(
            "AKIDLOCAL", "local-secret", token
        ),
        region="us-east-1",
        service="iotdevicegateway",
        omit_session_token=True,
    )
    signed = crt_auth.aws_sign_request(handshake, config).result(10)
    path, _, query = signed.path.partition("?")
    return sigv4.HttpRequest("GET", path, query, tuple(signed.headers))


def test_botocore_presigned_urls_verify() -> None:
    assert sigv4.verify(presigned(), CREDENTIALS, now(), "iotdevicegateway") == "AKIDLOCAL"


def test_the_device_sdk_v2_signs_the_connection_header_and_verifies() -> None:
    request = crt_presigned()
    assert "connection" in dict(sigv4.query_pairs(request.query))["X-Amz-SignedHeaders"]
    assert sigv4.verify(request, CREDENTIALS, now(), "iotdevicegateway") == "AKIDLOCAL"
    # the signed header's value counts: a different Connection header breaks the signature
    altered = tuple(
        (k, "keep-alive") if k.lower() == "connection" else (k, v) for k, v in request.headers
    )
    forged = sigv4.HttpRequest("GET", request.path, request.query, altered)
    with pytest.raises(sigv4.SignatureError, match="does not match") as refused:
        sigv4.verify(forged, CREDENTIALS, now())
    assert refused.value.code == sigv4.INVALID


def test_a_token_signed_with_the_url_or_appended_after_signing() -> None:
    assert sigv4.verify(presigned(token="tok"), CREDENTIALS, now()) == "AKIDLOCAL"
    request = presigned()
    appended = with_query(request, request.query + "&X-Amz-Security-Token=tok%2F%2B%3D")
    assert sigv4.verify(appended, CREDENTIALS, now()) == "AKIDLOCAL"


def test_boto3_authorization_headers_verify_with_their_payload() -> None:
    assert sigv4.verify(header_signed(), CREDENTIALS, now(), "iotdata", "us-east-1") == "AKIDLOCAL"
    lambda_call = header_signed(service="lambda", path="/2015-03-31/functions/chat/invocations")
    assert sigv4.verify(lambda_call, CREDENTIALS, now(), "lambda") == "AKIDLOCAL"
    request = header_signed()
    tampered = sigv4.HttpRequest(
        request.method, request.path, request.query, request.headers, b'{"message": "bye"}'
    )
    with pytest.raises(sigv4.SignatureError, match="does not match"):
        sigv4.verify(tampered, CREDENTIALS, now())
    with pytest.raises(sigv4.SignatureError, match="does not match"):
        sigv4.verify(with_query(request, "qos=0"), CREDENTIALS, now())


# Each request is made when its test runs (a lambda per case): made at collection, a
# presigned URL had expired by the time a slow run reached the test ("Signature expired").
@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda: presigned(secret="wrong"), sigv4.INVALID, "does not match"),
        (lambda: header_signed(secret="wrong"), sigv4.INVALID, "does not match"),
        (
            lambda: header_signed(service="lambda"),
            sigv4.INVALID,
            "scoped to correct service: 'iotdata'",
        ),
        (
            lambda: with_query(
                presigned(),
                presigned().query.replace("AKIDLOCAL", "AKIDOTHER"),
            ),
            sigv4.UNRECOGNIZED,
            "security token included in the request is invalid",
        ),
        (
            lambda: sigv4.HttpRequest("POST", "/topics/x", "", (("Host", HOST),)),
            sigv4.MISSING,
            "Missing Authentication Token",
        ),
        (
            lambda: sigv4.HttpRequest(
                "POST", "/topics/x", "", (("Host", HOST), ("Authorization", "AWS4-HMAC-SHA256 x"))
            ),
            sigv4.INCOMPLETE,
            "requires 'Credential'",
        ),
        (
            lambda: with_query(presigned(), "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00"),
            sigv4.INCOMPLETE,
            "without X-Amz-Credential",
        ),
        (
            lambda: with_query(presigned(), presigned().query.replace("HMAC-SHA256", "HMAC-SHA1")),
            sigv4.INCOMPLETE,
            "unsupported X-Amz-Algorithm",
        ),
    ],
    ids=[
        "wrong-secret-presigned",
        "wrong-secret-header",
        "wrong-service",
        "unknown-key",
        "no-auth",
        "no-credential",
        "query-without-credential",
        "sha1",
    ],
)
def test_bad_requests_are_refused_with_aws_codes(
    make: Callable[[], sigv4.HttpRequest], code: str, message: str
) -> None:
    request = make()
    with pytest.raises(sigv4.SignatureError, match=message) as refused:
        sigv4.verify(request, CREDENTIALS, now(), "iotdata" if request.method == "POST" else None)
    assert refused.value.code == code


def test_expired_and_stale_signatures_are_refused() -> None:
    with pytest.raises(sigv4.SignatureError, match="Signature expired"):
        sigv4.verify(presigned(expires=60), CREDENTIALS, now() + timedelta(minutes=5))
    with pytest.raises(sigv4.SignatureError, match="Signature expired"):
        sigv4.verify(header_signed(), CREDENTIALS, now() + timedelta(minutes=16))
    with pytest.raises(sigv4.SignatureError, match="not yet current"):
        sigv4.verify(header_signed(), CREDENTIALS, now() - timedelta(minutes=16))


def test_without_configured_credentials_any_well_formed_signature_names_its_key() -> None:
    assert sigv4.verify(presigned(secret="anything"), {}, now()) == "AKIDLOCAL"
    assert sigv4.is_signed(presigned()) and sigv4.is_signed(header_signed())
    assert not sigv4.is_signed(sigv4.HttpRequest("GET", "/mqtt", "x=1", ()))
