"""Presigned /mqtt URLs checked against botocore's own SigV4 query signer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from emulator.transport import sigv4

HOST = "localhost:8080"
CREDENTIALS = {"AKIDLOCAL": "local-secret"}


def presign(
    secret: str = "local-secret", token: str | None = None, expires: int = 300
) -> dict[str, str]:
    request = AWSRequest(method="GET", url=f"https://{HOST}/mqtt")
    SigV4QueryAuth(
        Credentials("AKIDLOCAL", secret, token), "iotdevicegateway", "us-east-1", expires
    ).add_auth(request)
    return dict(parse_qsl(urlsplit(request.url).query))


def iot_style_with_token(token: str) -> dict[str, str]:
    """As the AWS IoT samples do: sign without the token, then append it."""
    query = presign()
    query["X-Amz-Security-Token"] = token
    return query


def test_botocore_presigned_urls_verify() -> None:
    assert sigv4.verify(presign(), HOST, "/mqtt", CREDENTIALS) == "AKIDLOCAL"


def test_a_token_signed_with_the_url_or_appended_after_signing() -> None:
    assert sigv4.verify(presign(token="tok"), HOST, "/mqtt", CREDENTIALS) == "AKIDLOCAL"
    assert sigv4.verify(iot_style_with_token("tok/+="), HOST, "/mqtt", CREDENTIALS) == "AKIDLOCAL"


@pytest.mark.parametrize(
    ("query", "host", "message"),
    [
        (presign(secret="wrong"), HOST, "signature mismatch"),
        (presign(), "otherhost:8080", "signature mismatch"),
        (
            {
                **presign(),
                "X-Amz-Credential": "AKIDOTHER/20260101/us-east-1/iotdevicegateway/aws4_request",
            },
            HOST,
            "unknown access key",
        ),
        ({k: v for k, v in presign().items() if k != "X-Amz-Date"}, HOST, "without X-Amz-Date"),
        ({**presign(), "X-Amz-Algorithm": "AWS4-HMAC-SHA1"}, HOST, "unsupported X-Amz-Algorithm"),
        ({**presign(), "X-Amz-Credential": "garbage"}, HOST, "malformed X-Amz-Credential"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(query: dict[str, str], host: str, message: str) -> None:
    with pytest.raises(sigv4.SignatureError, match=message):
        sigv4.verify(query, host, "/mqtt", CREDENTIALS)


def test_expired_urls_are_refused() -> None:
    query = presign(expires=60)
    later = datetime.now(UTC) + timedelta(minutes=5)
    with pytest.raises(sigv4.SignatureError, match="expired"):
        sigv4.verify(query, HOST, "/mqtt", CREDENTIALS, now=later)


def test_without_configured_credentials_any_well_formed_url_names_its_key() -> None:
    assert sigv4.verify(presign(secret="anything"), HOST, "/mqtt", {}) == "AKIDLOCAL"
    assert sigv4.is_presigned(presign()) and not sigv4.is_presigned({"x": "1"})
