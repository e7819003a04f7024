"""What stands between the HTTP port and its handlers: cross-site checks, SigV4 on the AWS
APIs, a connection budget and header/idle deadlines.

Theory of operation.

- **Cross-site requests** (any mode). A web page on another site can make a browser send
  "simple" POSTs to the emulator (no CORS preflight), and a DNS-rebinding page can make its
  own name resolve to 127.0.0.1. So every request must name an allowed ``Host`` (localhost,
  ``*.localhost``, IP literals, the configured ``host`` if it is a name, ``allowed_hosts``),
  and a state-changing request (POST, PUT, PATCH, DELETE) or a ``/mqtt`` upgrade that
  carries an ``Origin`` must come from one of the emulator's own origins
  (``http://<allowed host>:<http port>``) or from ``allowed_origins``. Requests without
  ``Origin`` (boto3, curl, the AWS CLI, MQTT clients) are not cross-site.
- **SigV4** (only with ``credentials`` configured, as on AWS): the IoT data plane, the
  Lambda Invoke API and ``/mqtt`` need a valid signature (``sigv4.py``), scoped to the
  route's signing name (``iotdata``, ``lambda``, ``iotdevicegateway``) and the emulator's
  region; a refusal is AWS's 403 with its error code. Without credentials, a presigned
  ``/mqtt`` URL is still parsed and its access key names the connection's principal.
- **Connections** (``ConnectionGuard``, a wrapper around aiohttp's protocol factory): a
  connection must deliver its first request's headers within ``http_header_timeout`` of
  opening, and a later request's within that time of its first byte; aiohttp's keep-alive
  timeout (``http_idle_timeout``) closes a connection idle after a response. At most
  ``http_max_connections`` are open: a new connection beyond that evicts the oldest one
  that is not in a request (waiting for headers, or idle), else it is closed at once. So
  slow-header (slowloris) and idle sockets neither pile up nor lock out a bystander.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast
from urllib.parse import urlsplit

from aiohttp import web

from emulator.awserrors import AwsError, error_response
from emulator.transport import sigv4

log = logging.getLogger(__name__)

STATE_CHANGING: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MQTT_PATH: Final = "/mqtt"
# Where the middleware leaves the verified (or, without credentials, declared) access key of
# a signed request: the /mqtt connection's principal.
PRINCIPAL: Final = web.RequestKey("sigv4_principal", str)
LOG_INTERVAL: Final = 10.0  # seconds between two log lines about one peer's refusals
MAX_LOGGED_PEERS: Final = 4096  # peers remembered for that (then forgotten at once)


class MissingAuthenticationToken(AwsError):
    code = sigv4.MISSING
    status = 403


class IncompleteSignature(AwsError):
    code = sigv4.INCOMPLETE
    status = 403


class UnrecognizedClient(AwsError):
    code = sigv4.UNRECOGNIZED
    status = 403


class InvalidSignature(AwsError):
    code = sigv4.INVALID
    status = 403


# AWS's answers to an unsigned or badly signed request, by the signer's error code.
SIGNATURE_ERRORS: Final[Mapping[str, type[AwsError]]] = {
    error.code: error
    for error in (
        MissingAuthenticationToken,
        IncompleteSignature,
        UnrecognizedClient,
        InvalidSignature,
    )
}


class CrossSiteRefused(AwsError):
    """A request from a page on another site, or for a Host the emulator does not serve."""

    code = "ForbiddenException"
    status = 403


@dataclass(frozen=True, slots=True)
class SignedRoute:
    """A path (and everything under it) that needs SigV4 when credentials are configured."""

    prefix: str  # "/topics": "/topics" and "/topics/..."
    service: str  # the signing name in the credential scope
    too_large: Callable[[str], AwsError] | None = None  # the service's 413 error

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


def split_host(host: str) -> tuple[str, int | None]:
    """``name:port`` or ``[v6]:port`` -> (lower-case name without brackets, port)."""
    parts = urlsplit("//" + host)
    try:
        port = parts.port
    except ValueError:
        port = -1  # not a port: matches nothing
    return (parts.hostname or "").rstrip("."), port


class OriginPolicy:
    """Which ``Host`` names and ``Origin``s the emulator answers. Pure: no I/O."""

    __slots__ = ("_hosts", "_origins", "port")

    def __init__(self, host: str, allowed_hosts: Sequence[str], allowed_origins: Sequence[str]):
        hosts = {h.strip().lower().rstrip(".") for h in allowed_hosts if h.strip()}
        if host and not _is_ip(host) and host not in ("0.0.0.0", "::"):
            hosts.add(host.lower())
        self._hosts = frozenset(hosts)
        self._origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins)
        self.port = 0  # the HTTP port, once listening

    def host_allowed(self, host: str) -> bool:
        name, port = split_host(host)
        if port == -1 or not name:
            return False
        return (
            name == "localhost"
            or name.endswith(".localhost")
            or _is_ip(name)
            or name in self._hosts
        )

    def origin_allowed(self, origin: str, host: str | None = None) -> bool:
        """``host``: the request's ``Host``, already allowed. A page served by the emulator
        under that name is same-origin whatever port it was reached on (Docker's published
        port may not be the one the emulator listens on)."""
        if origin.rstrip("/").lower() in self._origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
            return False
        default = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port or default
        except ValueError:
            return False
        if not self.host_allowed(parts.netloc):
            return False
        if port == self.port:
            return True
        if host is None:
            return False
        name, host_port = split_host(host)
        return (name, host_port or default) == ((parts.hostname or "").rstrip("."), port)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def http_request(request: web.Request, body: bytes = b"") -> sigv4.HttpRequest:
    """The request as it came on the wire, for the SigV4 check."""
    path, _, query = request.raw_path.partition("?")
    return sigv4.HttpRequest(request.method, path, query, tuple(request.headers.items()), body)


class HttpGuard:
    """The aiohttp middleware: cross-site checks always, SigV4 with credentials."""

    def __init__(
        self,
        policy: OriginPolicy,
        credentials: Mapping[str, str],
        region: str,
        routes: Sequence[SignedRoute],
        connections: ConnectionGuard | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.credentials = dict(credentials)
        self.region = region
        self.routes = tuple(routes)
        self.connections = connections
        self.clock = clock
        # Refusals logged once per peer and kind per interval: (peer, kind) -> (time, count)
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def _log_refusal(self, request: web.Request, kind: str, reason: str) -> None:
        """One line per peer and kind of refusal per ``LOG_INTERVAL``, with the number
        refused since the last line: a flood of forged requests does not flood the log."""
        now = asyncio.get_running_loop().time()
        key = (request.remote or "", kind)
        last, suppressed = self._logged.get(key, (float("-inf"), 0))
        if now - last < LOG_INTERVAL:
            self._logged[key] = (last, suppressed + 1)
            return
        if len(self._logged) >= MAX_LOGGED_PEERS:
            self._logged.clear()
        self._logged[key] = (now, 0)
        more = f" ({suppressed} more since the last line)" if suppressed else ""
        log.warning(
            "refused %s %r from %s: %s%s", request.method, request.path, key[0], reason, more
        )

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        connections = self.connections
        if connections is not None:
            connections.request_started(request.transport)
        try:
            refused = self._cross_site(request)
            if refused is not None:
                self._log_refusal(request, "cross-site", refused.message)
                return error_response(refused)
            route = next((r for r in self.routes if r.matches(request.path)), None)
            if route is not None:
                answer = await self._authenticate(request, route)
                if answer is not None:
                    return answer
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            if connections is not None:
                connections.request_finished(request.transport)

    def _cross_site(self, request: web.Request) -> CrossSiteRefused | None:
        host = request.headers.get("Host")
        if host is not None and not self.policy.host_allowed(host):
            return CrossSiteRefused(
                f"Host {host!r} is not served here (DNS rebinding?): add it to allowed_hosts"
            )
        origin = request.headers.get("Origin")
        if origin is None or not (request.method in STATE_CHANGING or request.path == MQTT_PATH):
            return None
        if not self.policy.origin_allowed(origin, host):
            return CrossSiteRefused(
                f"cross-site request from Origin {origin!r} refused: add it to allowed_origins"
            )
        return None

    async def _authenticate(
        self, request: web.Request, route: SignedRoute
    ) -> web.StreamResponse | None:
        """None to go on (the principal, if any, left in ``request[PRINCIPAL]``), or the
        refusal to answer."""
        presigned_mqtt = route.service == "iotdevicegateway" and sigv4.is_presigned(request.query)
        if not self.credentials and not presigned_mqtt:
            return None
        body = b""
        if request.can_read_body and not presigned_mqtt:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                if route.too_large is None:
                    raise
                return error_response(
                    route.too_large(
                        f"request body over the limit of {request.client_max_size} bytes"
                    )
                )
        try:
            principal = sigv4.verify(
                http_request(request, body),
                self.credentials,
                self.clock(),
                route.service if self.credentials else None,
                self.region if self.credentials else None,
            )
        except sigv4.SignatureError as exc:
            self._log_refusal(request, "sigv4", f"{exc.code}: {exc}")
            return error_response(SIGNATURE_ERRORS[exc.code](str(exc)))
        if not self.credentials:
            log.info(
                "%r signed by access key %r (signature not checked: no credentials configured)",
                request.path,
                principal,
            )
        request[PRINCIPAL] = principal
        return None


_NOT_ADMITTED: Final = asyncio.Protocol()  # what a refused connection forwards to


class _Guarded(asyncio.Protocol):
    """One connection: forwards everything to aiohttp's handler, and keeps its deadline."""

    __slots__ = ("_guard", "_inner", "_timer", "in_request", "refused", "transport")

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol = _NOT_ADMITTED
        self._timer: asyncio.TimerHandle | None = None
        self.in_request = False
        self.refused = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they are transports
        self.transport = cast(asyncio.Transport, transport)
        if not self._guard.admit(self):
            self.refused = True
            self.transport.abort()
            return
        self._inner = self._guard.make_protocol()
        self._inner.connection_made(transport)
        self.expect_headers()

    def expect_headers(self) -> None:
        """Start the clock: the next request's headers are due within the timeout."""
        if self._timer is None and self._guard.header_timeout > 0:
            self._timer = asyncio.get_running_loop().call_later(
                self._guard.header_timeout, self._headers_late
            )

    def headers_in(self) -> None:
        self.in_request = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self.transport is not None and not self.transport.is_closing():
            self._guard.header_timed_out(self.transport.get_extra_info("peername"))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.in_request:
            self.expect_headers()  # a request begins (or the first bytes of a new one)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.refused:
            return
        self._guard.release(self)
        self._inner.connection_lost(exc)


class ConnectionGuard:
    """The HTTP port's protocol factory: aiohttp's, wrapped with the budget and deadlines."""

    def __init__(
        self, factory: Callable[[], asyncio.Protocol], header_timeout: float, max_connections: int
    ) -> None:
        self._factory = factory
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self._open: dict[asyncio.BaseTransport, _Guarded] = {}
        # Connections not in a request (waiting for headers, or idle), oldest first.
        self._evictable: OrderedDict[_Guarded, None] = OrderedDict()
        self.refused = 0
        self.evicted = 0
        self.header_timeouts = 0

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self)

    def make_protocol(self) -> asyncio.Protocol:
        return self._factory()

    @property
    def count(self) -> int:
        return len(self._open)

    def admit(self, conn: _Guarded) -> bool:
        if self.max_connections and len(self._open) >= self.max_connections:
            if not self._evictable:
                self.refused += 1
                if self.refused == 1 or self.refused % 1000 == 0:
                    log.warning(
                        "HTTP port at its budget of %d connections, all in requests: "
                        "refused a connection (%d so far)",
                        self.max_connections,
                        self.refused,
                    )
                return False
            oldest, _ = self._evictable.popitem(last=False)
            self.evicted += 1
            if self.evicted == 1 or self.evicted % 1000 == 0:
                log.warning(
                    "HTTP port at its budget of %d connections: closed the oldest idle "
                    "one (%d so far)",
                    self.max_connections,
                    self.evicted,
                )
            if oldest.transport is not None:
                self._open.pop(oldest.transport, None)
                oldest.transport.abort()
        assert conn.transport is not None
        self._open[conn.transport] = conn
        self._evictable[conn] = None
        return True

    def header_timed_out(self, peer: object) -> None:
        """Counted; logged at the first and every 1,000th (a slowloris makes thousands)."""
        self.header_timeouts += 1
        log.debug("closing HTTP connection from %s: no request headers in time", peer)
        if self.header_timeouts == 1 or self.header_timeouts % 1000 == 0:
            log.warning(
                "closed an HTTP connection that sent no request headers within %.1f s "
                "(from %s; %d so far)",
                self.header_timeout,
                peer,
                self.header_timeouts,
            )

    def release(self, conn: _Guarded) -> None:
        if conn.transport is not None:
            self._open.pop(conn.transport, None)
        self._evictable.pop(conn, None)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self._open.get(transport) if transport is not None else None
        if conn is not None:
            conn.headers_in()
            self._evictable.pop(conn, None)

    def request_finished(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self._open.get(transport) if transport is not None else None
        if conn is not None:
            conn.in_request = False
            self._evictable[conn] = None  # idle now: aiohttp's keep-alive timeout applies

    def health(self) -> dict[str, int]:
        return {
            "connections": self.count,
            "max_connections": self.max_connections,
            "evicted": self.evicted,
            "refused": self.refused,
            "header_timeouts": self.header_timeouts,
        }
