"""IoT policies enforced by the broker, over real connections (TCP and WebSocket).

The chat's own policy (rules/chat.yaml) is what a browser gets; denials behave as AWS's
broker does: a refused CONNACK, a SUBACK failure code, a disconnect on an unauthorized
publish, no delivery without iot:Receive. ``--no-auth`` turns it all off.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emulator.app import Emulator
from emulator.broker import codec
from emulator.config import REPO_ROOT
from emulator.testing import TestClient, connect_packet
from tests.integration.conftest import EmulatorStarter
from tests.integration.raw import RawConnection

ARN = "arn:aws:iot:us-east-1:123456789012"
FAILURE = 0x80


def chat_policy_only(tmp_path: Path) -> Path:
    """The chat's policies without its functions and tables (no backends needed)."""
    data = yaml.safe_load((REPO_ROOT / "rules" / "chat.yaml").read_text())
    path = tmp_path / "policies.yaml"
    path.write_text(yaml.safe_dump({"policies": data["policies"]}))
    return path


@pytest.fixture(params=["tcp", "websockets"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def chat(tmp_path: Path, start_emulator: EmulatorStarter) -> Emulator:
    return await start_emulator(rules=[str(chat_policy_only(tmp_path))])


def client(em: Emulator, client_id: str, transport: str = "tcp") -> TestClient:
    port = em.http_port if transport == "websockets" else em.mqtt_port
    return TestClient("127.0.0.1", port or 0, client_id, transport=transport)


async def test_a_browser_may_do_what_the_chat_needs_and_nothing_else(
    chat: Emulator, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert chat.auth_state == "enforced (chat-browser)"
    page = client(chat, "web-1", transport)
    await page.connect()
    assert await page.subscribe("chat/in/web-1", 1) == [1]
    assert await page.subscribe("chat/pub/lobby", 1) == [1]
    assert await page.subscribe("chat/in/web-2", 1) == [FAILURE]
    assert await page.subscribe("$aws/events/presence/connected/+", 1) == [FAILURE]
    await page.publish("chat/out", b'{"message": "hi"}', qos=1)
    other = client(chat, "web-2", transport)
    await other.connect()
    await other.publish("chat/pub/lobby", b"forged", qos=0)  # not the browser's to publish
    await other.wait_disconnected()
    denial = [r.getMessage() for r in caplog.records if "denied iot:Publish" in r.getMessage()]
    assert denial and "chat/pub/lobby" in denial[0] and "implicit deny" in denial[0]
    await page.close()


async def test_receive_is_checked_per_message(
    tmp_path: Path, start_emulator: EmulatorStarter
) -> None:
    rules = tmp_path / "p.yaml"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect", "iot:Publish"], "Resource": "*"},
            {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": f"{ARN}:topicfilter/a/*"},
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "NotResource": f"{ARN}:topic/a/restricted/*",
            },
        ],
    }
    rules.write_text(yaml.safe_dump({"policies": [{"policyName": "r", "document": document}]}))
    em = await start_emulator(rules=[str(rules)])
    sub = client(em, "sub")
    await sub.connect()
    assert await sub.subscribe("a/#", 1) == [1]  # '#' is literal: a/* allows it
    pub = client(em, "pub")
    await pub.connect()
    await pub.publish("a/restricted/x", b"secret", qos=1)
    await pub.publish("a/open", b"fine", qos=1)
    received = await sub.next_message()
    assert (received.topic, received.payload) == ("a/open", b"fine")
    await sub.close()
    await pub.close()


async def test_connect_is_refused_with_aws_return_code(
    tmp_path: Path, start_emulator: EmulatorStarter
) -> None:
    rules = tmp_path / "p.yaml"
    document = {
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/web-*"}
        ]
    }
    rules.write_text(yaml.safe_dump({"policies": [{"policyName": "c", "document": document}]}))
    em = await start_emulator(rules=[str(rules)])
    assert (await client(em, "web-ok").connect())[0] == 0
    conn = await RawConnection.open(em, "tcp")  # paho cannot show a return code of 7
    await conn.send(connect_packet("intruder"))
    connack = await conn.next_frame()
    # AWS IoT answers 7 where MQTT 3.1.1 would say 5 (mqtt.md), then closes
    assert connack.type == codec.CONNACK and connack.body[1] == 7
    await conn.wait_closed_by_broker()
    await conn.close()


async def test_retained_publish_needs_retain_publish(chat: Emulator) -> None:
    page = client(chat, "web-3")
    await page.connect()
    page.publish_nowait("chat/out", b"{}", qos=0, retain=True)
    await page.wait_disconnected()


async def test_no_auth_turns_enforcement_off_and_says_so(
    tmp_path: Path, start_emulator: EmulatorStarter
) -> None:
    em = await start_emulator(rules=[str(chat_policy_only(tmp_path))], no_auth=True)
    assert "NOT enforced" in em.ready_line()
    page = client(em, "web-4")
    await page.connect()
    assert await page.subscribe("chat/in/web-5", 1) == [1]
    await page.publish("chat/pub/lobby", b"anything", qos=1)
    await page.close()


async def test_without_policies_clients_are_not_restricted_and_the_ready_line_says_so(
    start_emulator: EmulatorStarter,
) -> None:
    em = await start_emulator(rules=[])
    assert "auth=open (no IoT policies loaded)" in em.ready_line()
    assert em.health()["auth"] == "open (no IoT policies loaded)"


async def test_policy_files_given_on_the_command_line_are_enforced(
    tmp_path: Path, start_emulator: EmulatorStarter
) -> None:
    doc = tmp_path / "only-a.json"
    doc.write_text(
        json.dumps(
            {"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": f"{ARN}:*/a*"}]}
        )
    )
    em = await start_emulator(rules=[], policies=[str(doc)])
    assert em.auth_state == "enforced (only-a)"
    c = client(em, "a1")
    await c.connect()
    assert await c.subscribe("b/x", 1) == [FAILURE]
    assert await c.subscribe("a/x", 1) == [1]
    await c.close()


def presigned_query(port: int, secret: str) -> str:
    from urllib.parse import urlsplit

    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=f"http://127.0.0.1:{port}/mqtt")
    auth = SigV4QueryAuth(Credentials("AKIDLOCAL", secret), "iotdevicegateway", "us-east-1", 300)
    auth.add_auth(request)
    return urlsplit(request.url).query


async def test_sigv4_presigned_websocket_urls_are_verified(start_emulator: EmulatorStarter) -> None:
    import aiohttp

    em = await start_emulator(rules=[], credentials={"AKIDLOCAL": "local-secret"})
    watcher = client(em, "watcher")
    try:
        await watcher.connect()
        await watcher.subscribe("$aws/events/presence/connected/signed", 1)
        port = em.http_port or 0
        async with aiohttp.ClientSession() as session:
            good = f"http://127.0.0.1:{port}/mqtt?{presigned_query(port, 'local-secret')}"
            async with session.ws_connect(good, protocols=("mqtt",)) as ws:
                await ws.send_bytes(connect_packet("signed"))
                connack = await ws.receive_bytes(timeout=10)
                assert connack[0] >> 4 == codec.CONNACK and connack[3] == 0
                event = (await watcher.message_on("$aws/events/presence/connected/signed")).json()
                assert event["principalIdentifier"] == "AKIDLOCAL"
            bad = f"http://127.0.0.1:{port}/mqtt?{presigned_query(port, 'wrong-secret')}"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(bad, protocols=("mqtt",))
            assert refused.value.status == 403
    finally:
        await watcher.close()
