"""Which Host names and Origins the HTTP guard allows (OriginPolicy: pure)."""

from __future__ import annotations

import pytest

from emulator.transport.http_guard import OriginPolicy, SignedRoute, split_host

POLICY = OriginPolicy("chat.local", ["Extra.Example"], ["http://dev.example:3000/"])
POLICY.port = 8080


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("localhost:8080", True),
        ("LOCALHOST", True),
        ("app.localhost:8080", True),
        ("127.0.0.1:8080", True),
        ("10.1.2.3", True),
        ("[::1]:8080", True),
        ("chat.local:8080", True),  # the configured host, a name
        ("extra.example", True),  # allowed_hosts, case-insensitive
        ("localhost.:8080", True),
        ("evil.example:8080", False),
        ("localhost.evil.example", False),
        ("evillocalhost", False),
        ("127.0.0.1.evil.example", False),
        ("localhost:notaport", False),
        ("", False),
    ],
)
def test_hosts(host: str, allowed: bool) -> None:
    assert POLICY.host_allowed(host) is allowed


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080", True),
        ("https://localhost:8080", True),
        ("http://chat.local:8080", True),
        ("http://dev.example:3000", True),  # allowed_origins, trailing slash ignored
        ("http://localhost:3000", False),  # another local app
        ("http://localhost", False),  # port 80
        ("http://evil.example:8080", False),
        ("http://dev.example:3001", False),
        ("null", False),
        ("file://", False),
        ("http://localhost:8080/path", False),
    ],
)
def test_origins(origin: str, allowed: bool) -> None:
    assert POLICY.origin_allowed(origin) is allowed


def test_a_wildcard_bind_address_is_not_an_allowed_name() -> None:
    policy = OriginPolicy("0.0.0.0", [], [])
    assert policy.host_allowed("0.0.0.0:8080")  # an IP literal, allowed as such
    assert not policy.host_allowed("anything.example")


def test_split_host_and_routes() -> None:
    assert split_host("[::1]:8080") == ("::1", 8080)
    assert split_host("Example.COM") == ("example.com", None)
    route = SignedRoute("/retainedMessage", "iotdata")
    assert route.matches("/retainedMessage") and route.matches("/retainedMessage/a%2Fb")
    assert not route.matches("/retainedMessages")


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        # Docker publishes 9090 for the emulator's 8080: the page's own origin is allowed.
        ("http://localhost:9090", "localhost:9090", True),
        ("http://localhost", "localhost", True),  # port 80 on both sides
        ("https://localhost", "localhost:443", True),
        ("http://localhost:3000", "localhost:9090", False),  # another local app's page
        ("http://evil.example:9090", "evil.example:9090", False),  # DNS rebinding
        ("http://localhost:9090", None, False),
    ],
)
def test_a_page_served_under_the_requests_host_is_same_origin(
    origin: str, host: str | None, allowed: bool
) -> None:
    assert POLICY.origin_allowed(origin, host) is allowed
