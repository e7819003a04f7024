"""The HTTP port under attack (issue 12), over real sockets: cross-site requests and DNS
rebinding, SigV4 as AWS requires it when credentials are configured (boto3 clients,
presigned WebSocket URLs from botocore and from awscrt as the Device SDK v2 signs them),
oversized WebSocket messages, slow-header and idle sockets, and bad query parameters."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import boto3
import pytest
from awscrt import auth as crt_auth
from awscrt import websocket as crt_websocket
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from emulator.app import Emulator
from emulator.broker import codec
from emulator.config import REPO_ROOT
from emulator.testing import TestClient, connect_packet
from emulator.transport.websocket import MAX_WS_MESSAGE
from tests.integration.conftest import EmulatorStarter

KEY, SECRET = "AKIDLOCAL", "local-secret"
CREDENTIALS = {KEY: SECRET}
EVIL = "http://evil.example"
TIMEOUT = 10


def base_url(em: Emulator) -> str:
    return f"http://127.0.0.1:{em.http_port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def aws() -> Any:
    """boto3 clients made by the test (closed at teardown): ``aws(em, service, key, secret)``."""
    made: list[Any] = []

    def make(em: Emulator, service: str, key: str = KEY, secret: str = SECRET) -> Any:
        client = boto3.client(
            service,
            endpoint_url=base_url(em),
            region_name=em.config.region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=BotoConfig(retries={"max_attempts": 1}),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


async def call(client: Any, operation: str, **params: Any) -> Any:
    return await asyncio.to_thread(getattr(client, operation), **params)


async def refused(client: Any, operation: str, **params: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        await call(client, operation, **params)
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


async def subscriber(em: Emulator, topic_filter: str) -> TestClient:
    """An MQTT client over TCP (no SigV4 on the TCP port) subscribed to ``topic_filter``."""
    assert em.mqtt_port is not None
    client = TestClient("127.0.0.1", em.mqtt_port, f"watch-{uuid.uuid4().hex[:8]}")
    await client.connect()
    await client.subscribe(topic_filter, 1)
    return client


def botocore_presigned_path(em: Emulator, secret: str = SECRET) -> str:
    """``/mqtt?...`` presigned by botocore's query signer, as browsers' SDKs make it."""
    request = AWSRequest(method="GET", url=f"{base_url(em)}/mqtt")
    SigV4QueryAuth(Credentials(KEY, secret), "iotdevicegateway", em.config.region, 300).add_auth(
        request
    )
    return f"/mqtt?{urlsplit(request.url).query}"


def crt_presigned_path(em: Emulator) -> str:
    """``/mqtt?...`` signed by awscrt as the Device SDK v2 signs its handshake: it signs the
    ``connection`` header too, which botocore's own signer never does."""
    handshake = crt_websocket.create_handshake_request(
        host=f"127.0.0.1:{em.http_port}", path="/mqtt"
    )
    config = crt_auth.AwsSigningConfig(
        algorithm=crt_auth.AwsSigningAlgorithm.V4,
        signature_type=crt_auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
        credentials_provider=crt_auth.AwsCredentialsProvider.new_static(KEY, SECRET, "tok"),
        region=em.config.region,
        service="iotdevicegateway",
        omit_session_token=True,
    )
    signed = crt_auth.aws_sign_request(handshake, config).result(TIMEOUT)
    assert "connection" in signed.path  # X-Amz-SignedHeaders=connection%3Bhost
    return str(signed.path)


async def ws_client(em: Emulator, path: str, client_id: str) -> TestClient:
    """paho over WebSocket with the given /mqtt path (and query)."""
    assert em.http_port is not None
    client = TestClient("127.0.0.1", em.http_port, client_id, "websockets", ws_path=path)
    await client.connect()
    return client


# -- cross-site requests (any mode) ---------------------------------------------------------


async def test_a_cross_origin_post_is_refused_and_nothing_is_published(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    em = await start_emulator()
    watcher = await subscriber(em, "chat/in/#")
    url = f"{base_url(em)}/topics/chat%2Fin%2Fvictim"
    # what a page on another site can make a browser send: a "simple" text/plain POST
    forged = {"Origin": EVIL, "Content-Type": "text/plain"}
    async with http.post(url, data=b'{"message": "forged"}', headers=forged) as response:
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"] == "ForbiddenException"
        assert "Origin 'http://evil.example'" in (await response.json())["message"]
    # the emulator's own page may post (same origin), and that is the first message seen
    own = {"Origin": base_url(em), "Content-Type": "text/plain"}
    async with http.post(url, data=b'{"message": "own"}', headers=own) as response:
        assert response.status == 200
    got = await watcher.next_message(TIMEOUT)
    assert got.payload == b'{"message": "own"}'
    await watcher.close()


async def test_a_flood_of_forged_requests_is_logged_once(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    em = await start_emulator()
    caplog.set_level(logging.WARNING, logger="emulator.transport.http_guard")
    url = f"{base_url(em)}/topics/chat%2Fin%2Fvictim"
    for _ in range(200):
        async with http.post(url, data=b"x", headers={"Origin": EVIL}) as response:
            assert response.status == 403
    lines = [r for r in caplog.records if r.name == "emulator.transport.http_guard"]
    assert len(lines) == 1
    assert "cross-site request from Origin 'http://evil.example'" in lines[0].getMessage()


async def test_a_foreign_host_header_is_refused(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    """DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own Host."""
    em = await start_emulator(allowed_hosts=["chat.example"])
    watcher = await subscriber(em, "dp/#")
    port = em.http_port
    for method, path in (("POST", "/topics/dp%2Fx"), ("GET", "/retainedMessage")):
        headers = {"Host": f"evil.example:{port}"}
        async with http.request(method, f"{base_url(em)}{path}", headers=headers) as response:
            assert response.status == 403, path
            assert "Host 'evil.example" in (await response.json())["message"]
    for host in (f"localhost:{port}", f"app.localhost:{port}", f"chat.example:{port}"):
        url = f"{base_url(em)}/topics/dp%2Fok"
        async with http.post(url, data=host.encode(), headers={"Host": host}) as response:
            assert response.status == 200, host
        assert (await watcher.next_message(TIMEOUT)).payload == host.encode()
    await watcher.close()


async def test_configured_origins_may_post(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    em = await start_emulator(allowed_origins=["http://app.example:3000"])
    url = f"{base_url(em)}/topics/dp%2Fx"
    async with http.post(url, headers={"Origin": "http://app.example:3000"}) as response:
        assert response.status == 200
    async with http.post(url, headers={"Origin": "http://app.example:3001"}) as response:
        assert response.status == 403
    # another port of the emulator's own host is another origin (another local app)
    async with http.post(url, headers={"Origin": "http://127.0.0.1:1"}) as response:
        assert response.status == 403


async def test_a_websocket_upgrade_from_a_foreign_origin_is_refused(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    em = await start_emulator()
    url = f"{base_url(em)}/mqtt"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
        await http.ws_connect(url, protocols=("mqtt",), origin=EVIL)
    assert refusal.value.status == 403
    async with http.ws_connect(url, protocols=("mqtt",), origin=base_url(em)) as ws:
        await ws.send_bytes(connect_packet("own-page"))
        connack = await ws.receive_bytes(timeout=TIMEOUT)
        assert connack[0] >> 4 == codec.CONNACK and connack[3] == 0


# -- SigV4 with credentials configured ------------------------------------------------------


async def test_with_credentials_the_data_plane_needs_a_valid_signature(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession, aws: Any
) -> None:
    em = await start_emulator(credentials=CREDENTIALS)
    watcher = await subscriber(em, "dp/#")
    async with http.get(f"{base_url(em)}/health") as response:  # not an AWS API: unsigned
        assert (await response.json())["sigv4"] == "required"
    async with http.post(f"{base_url(em)}/topics/dp%2Funsigned", data=b"x") as response:
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    wrong = aws(em, "iot-data", secret="not-the-secret")
    assert await refused(wrong, "publish", topic="dp/wrong", payload=b"x") == (
        "InvalidSignatureException",
        403,
    )
    unknown = aws(em, "iot-data", key="AKIDOTHER")
    assert await refused(unknown, "publish", topic="dp/unknown", payload=b"x") == (
        "UnrecognizedClientException",
        403,
    )
    assert await refused(wrong, "list_retained_messages") == ("InvalidSignatureException", 403)
    signed = aws(em, "iot-data")
    await call(signed, "publish", topic="dp/signed", qos=1, retain=True, payload=b"ok")
    got = await watcher.next_message(TIMEOUT)
    assert (got.topic, got.payload) == ("dp/signed", b"ok")  # none of the refused went out
    kept = await call(signed, "list_retained_messages")
    assert [t["topic"] for t in kept["retainedTopics"]] == ["dp/signed"]
    # botocore signs the percent-encoded path encoded once more: odd topics verify too
    for topic in ("dp/ü x=y", "dp/a%41", "dp/~!*'()", "dp/..", "dp//x"):
        await call(signed, "publish", topic=topic, retain=True, payload=b"odd")
        assert (await call(signed, "get_retained_message", topic=topic))["topic"] == topic
    await watcher.close()


async def test_with_credentials_the_invoke_api_needs_a_valid_signature(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession, aws: Any
) -> None:
    em = await start_emulator(credentials=CREDENTIALS)
    url = f"{base_url(em)}/2015-03-31/functions/chat/invocations"
    async with http.post(url, data=b"{}") as response:
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    wrong = aws(em, "lambda", secret="not-the-secret")
    assert await refused(wrong, "invoke", FunctionName="nope") == (
        "InvalidSignatureException",
        403,
    )
    # signed right, the call reaches Lambda, which knows no such function
    signed = aws(em, "lambda")
    assert await refused(signed, "invoke", FunctionName="nope") == (
        "ResourceNotFoundException",
        404,
    )


async def test_with_credentials_unsigned_websockets_are_refused_and_presigned_accepted(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    em = await start_emulator(credentials=CREDENTIALS)
    watcher = await subscriber(em, "$aws/events/presence/connected/+")
    for path in ("/mqtt", botocore_presigned_path(em, secret="not-the-secret")):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
            await http.ws_connect(f"{base_url(em)}{path}", protocols=("mqtt",))
        assert refusal.value.status == 403, path
    for client_id, path in (
        ("botocore-signed", botocore_presigned_path(em)),
        ("device-sdk-signed", crt_presigned_path(em)),
    ):
        client = await ws_client(em, path, client_id)
        event = await watcher.message_on(f"$aws/events/presence/connected/{client_id}")
        assert event.json()["principalIdentifier"] == KEY
        await client.close()
    await watcher.close()


async def test_with_credentials_the_lambda_workers_still_reach_the_data_plane(
    start_emulator: EmulatorStarter,
) -> None:
    """The chat's function answers through the data plane, signed with the workers' key."""
    em = await start_emulator(rules=[str(REPO_ROOT / "rules")], credentials=CREDENTIALS)
    page = await ws_client(em, botocore_presigned_path(em), f"page-{uuid.uuid4().hex[:8]}")
    await page.subscribe(f"chat/in/{page.client_id}", 1)
    hello = {"connected": True, "path": "/lobby", "name": "ann"}
    await page.publish("chat/out", json.dumps(hello), qos=1)
    while True:
        body = (await page.message_on(f"chat/in/{page.client_id}", timeout=30)).json()
        if body.get("type") == "welcome":
            break
    assert "ann" in body["message"]
    await page.close()


# -- WebSocket message size -----------------------------------------------------------------


async def raw_websocket(em: Emulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket to /mqtt by hand, so a frame can claim any length."""
    reader, writer = await asyncio.open_connection("127.0.0.1", em.http_port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{em.http_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
        ).encode()
    )
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_a_websocket_message_over_the_mqtt_maximum_closes_that_connection(
    start_emulator: EmulatorStarter,
) -> None:
    em = await start_emulator()
    bystander = await ws_client(em, "/mqtt", "ws-bystander")  # on the same endpoint
    await bystander.subscribe("dp/#", 1)
    reader, writer = await raw_websocket(em)
    # a binary frame that declares 1 GiB, masked as a client's must be, with 1 KiB sent:
    # the emulator answers at once (it would otherwise wait to buffer the whole message)
    mask = os.urandom(4)
    writer.write(bytes((0x82, 0x80 | 127)) + struct.pack("!Q", 1 << 30) + mask + bytes(1024))
    async with asyncio.timeout(TIMEOUT):
        first, length = await reader.readexactly(2)
        assert first == 0x88  # FIN + close
        code = struct.unpack("!H", (await reader.readexactly(length))[:2])[0]
        assert code == 1009  # message too big
        assert await reader.read() == b""  # and the connection ends
    writer.close()
    # the largest MQTT packet still passes in one message; the bystander is unaffected
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{base_url(em)}/mqtt", protocols=("mqtt",)) as ws:
            await ws.send_bytes(connect_packet("big-but-legal"))
            await ws.receive_bytes(timeout=TIMEOUT)
            await ws.send_bytes(bytes(MAX_WS_MESSAGE + 1))
            closing = await ws.receive(timeout=TIMEOUT)
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1009
    await bystander.publish("dp/still", b"here", qos=1)
    assert (await bystander.next_message(TIMEOUT)).payload == b"here"
    await bystander.close()


# -- connections: budget, header and idle deadlines -----------------------------------------


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the socket (EOF or reset) before anything else arrives."""
    try:
        return await reader.read(1024) == b""
    except ConnectionError:
        return True


async def test_slow_header_sockets_do_not_lock_out_a_bystander(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    budget = 50
    em = await start_emulator(http_max_connections=budget, http_header_timeout=60)
    attackers = []
    for _ in range(1000):
        reader, writer = await asyncio.open_connection("127.0.0.1", em.http_port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never ends
        attackers.append((reader, writer))
    async with asyncio.timeout(TIMEOUT):
        async with http.get(f"{base_url(em)}/health") as response:
            health = await response.json()
    assert response.status == 200
    assert health["http_connections"]["connections"] <= budget
    # all but the newest attackers were closed to stay within the budget
    async with asyncio.timeout(TIMEOUT):
        closed = await asyncio.gather(*(closed_by_server(r) for r, _ in attackers[:-budget]))
    assert all(closed)
    for _, writer in attackers:
        writer.close()


async def test_silent_and_slow_header_sockets_are_closed_after_the_header_timeout(
    start_emulator: EmulatorStarter,
) -> None:
    em = await start_emulator(http_header_timeout=0.5, http_idle_timeout=60)
    silent = await asyncio.open_connection("127.0.0.1", em.http_port)
    slow = await asyncio.open_connection("127.0.0.1", em.http_port)
    slow[1].write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
    async with asyncio.timeout(TIMEOUT):
        assert await closed_by_server(silent[0])
        assert await closed_by_server(slow[0])
    for _, writer in (silent, slow):
        writer.close()


async def test_a_kept_alive_socket_is_closed_after_the_idle_timeout(
    start_emulator: EmulatorStarter,
) -> None:
    em = await start_emulator(http_header_timeout=60, http_idle_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", em.http_port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # keep-alive (HTTP/1.1)
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        assert await closed_by_server(reader)
    writer.close()


async def test_at_the_budget_with_every_connection_busy_a_new_one_is_closed(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    """WebSockets are in their request for their whole life: they are never evicted."""
    em = await start_emulator(http_max_connections=2)
    url = f"{base_url(em)}/mqtt"
    first = await http.ws_connect(url, protocols=("mqtt",))
    second = await http.ws_connect(url, protocols=("mqtt",))
    reader, writer = await asyncio.open_connection("127.0.0.1", em.http_port)
    async with asyncio.timeout(TIMEOUT):
        assert await closed_by_server(reader)
    writer.close()
    await first.send_bytes(connect_packet("still-served"))
    connack = await first.receive_bytes(timeout=TIMEOUT)
    assert connack[0] >> 4 == codec.CONNACK
    await first.close()
    await second.close()


# -- bad query parameters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nextToken": "abc"}, "invalid nextToken 'abc'"),
        ({"maxResults": 0}, None),  # botocore refuses it before sending (min 1)
    ],
)
async def test_bad_paging_parameters_answer_aws_400(
    start_emulator: EmulatorStarter, aws: Any, params: dict[str, Any], message: str | None
) -> None:
    em = await start_emulator()
    client = aws(em, "iot-data")
    if message is None:
        with pytest.raises(Exception, match="maxResults"):
            await call(client, "list_retained_messages", **params)
        return
    with pytest.raises(ClientError) as info:
        await call(client, "list_retained_messages", **params)
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InvalidRequestException",
        400,
    )
    assert error["Error"]["Message"] == message


async def test_bad_query_parameters_on_the_wire_answer_aws_400(
    start_emulator: EmulatorStarter, http: aiohttp.ClientSession
) -> None:
    """What botocore would not send, a hand-made request may: still AWS's 400, not a 500."""
    em = await start_emulator()
    for query in ("maxResults=abc", "maxResults=0", "maxResults=201", "nextToken=%FF%FE"):
        async with http.get(f"{base_url(em)}/retainedMessage?{query}") as response:
            assert response.status == 400, query
            assert response.headers["x-amzn-ErrorType"] == "InvalidRequestException"
    for query in ("qos=2", "qos=x", "retain=maybe"):
        async with http.post(f"{base_url(em)}/topics/dp%2Fx?{query}") as response:
            assert response.status == 400, query
            assert response.headers["x-amzn-ErrorType"] == "InvalidRequestException"
