"""Raw-socket fuzzing of the MQTT port: thousands of generated and mutated byte streams.

Each case is one TCP connection that sends its bytes and half-closes; the broker must
answer or drop that connection (never hang on it, never crash), end its connection task,
and keep serving a client that stays connected throughout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.app import Emulator
from emulator.config import REPO_ROOT
from emulator.testing import TestClient, connect_packet, mqtt_string, publish_packet
from tests.integration.conftest import EmulatorStarter

VALID = [
    connect_packet("fuzz-a"),
    connect_packet("fuzz-b", clean=False, will=("will/t", b"bye")),
    publish_packet("a/b", b'{"x": 1}'),
    publish_packet("a/b", b"\xff\xfe", qos=1, packet_id=7),
    publish_packet("$aws/events/presence/connected/x", b"{}"),
    b"\x82" + bytes((8,)) + struct.pack("!H", 1) + mqtt_string("a/#") + b"\x01",  # SUBSCRIBE
    b"\xa2" + bytes((7,)) + struct.pack("!H", 2) + mqtt_string("a/#"),  # UNSUBSCRIBE
    b"\x40\x02\x00\x07",  # PUBACK
    b"\xc0\x00",  # PINGREQ
    b"\x62\x02\x00\x01",  # PUBREL (QoS 2 flow AWS does not have)
    b"\xe0\x00",  # DISCONNECT
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=5))))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


streams = st.one_of(
    st.binary(max_size=200),  # noise
    st.binary(max_size=200).map(lambda b: connect_packet("fuzz-c") + b),  # noise after CONNECT
    mutated(),  # real packets, bit-flipped, cut and spliced
    st.tuples(st.integers(0, 255), st.binary(min_size=1, max_size=5)).map(  # huge lengths
        lambda t: bytes((t[0], 0xFF, 0xFF, 0xFF, 0x7F)) + t[1]
    ),
)


@pytest.fixture
async def broker(start_emulator: EmulatorStarter) -> Emulator:
    return await start_emulator(rules=[])


async def send_and_drain(port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        writer.write_eof()
        async with asyncio.timeout(10):  # the broker must close its side after our EOF
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass  # a reset is a fine way to refuse garbage
    finally:
        writer.close()


async def test_the_broker_survives_thousands_of_malformed_streams(
    broker: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    watcher = TestClient("127.0.0.1", broker.mqtt_port or 0, "fuzz-watcher")
    await watcher.connect()
    await watcher.subscribe("still/alive", 1)
    cases = 0

    @settings(
        max_examples=3000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(streams)
    def run(data: bytes) -> None:
        nonlocal cases
        cases += 1
        future = asyncio.run_coroutine_threadsafe(send_and_drain(broker.mqtt_port or 0, data), loop)
        future.result(30)

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(run)  # hypothesis drives from a thread; sockets stay on the loop
    assert cases >= 3000
    async with asyncio.timeout(10):
        await broker.broker.wait_connections(at_most=1)  # the watcher
    await watcher.publish("still/alive", b"yes", qos=1)
    assert (await watcher.message_on("still/alive")).payload == b"yes"
    crashes = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashes, [r.getMessage() for r in crashes[:5]]
    await watcher.close()


HOSTILE = {
    "text": b"this is not JSON {",
    "huge": b'{"deep": {"x": 1}, "pad": "' + b"x" * (120 * 1024) + b'"}',
    "nested": b"[" * 10_000 + b"]" * 10_000,
    "badutf8": b'{"deep": {"x": 1}, "s": "\xff\xfe\xc0"}',
    "binary": bytes(range(256)),
}


async def test_hostile_payloads_reach_the_rules_without_crashing_them(
    start_emulator: EmulatorStarter,
) -> None:
    """Not JSON, 120 KiB, nested 10,000 deep, invalid UTF-8, binary: the rules see the
    bytes (``encode(*, 'base64')``), JSON-only rules skip what is not JSON, and the engine
    goes on with the next message."""
    em = await start_emulator(rules=[str(REPO_ROOT / "tests" / "fixtures" / "hostile-rules")])
    client = TestClient("127.0.0.1", em.mqtt_port or 0, "hostile")
    await client.connect()
    await client.subscribe("seen/+", 1)
    fields_client = TestClient("127.0.0.1", em.mqtt_port or 0, "hostile-fields")
    await fields_client.connect()
    await fields_client.subscribe("fields/+", 1)
    for kind, payload in HOSTILE.items():
        await client.publish(f"hostile/{kind}", payload, qos=1)
        seen = json.loads((await client.message_on(f"seen/{kind}")).payload)
        assert seen["kind"] == kind
        encoded = base64.b64decode(seen["b"])
        if kind == "huge":  # JSON: the document is encoded (re-serialized)
            assert json.loads(encoded) == json.loads(payload)
        else:  # not JSON: the bytes as they came
            assert encoded == payload
    await client.publish("hostile/json", b'{"deep": {"x": 1}}', qos=1)
    fields = await fields_client.next_message()
    # Only JSON payloads have fields; of the hostile ones only "huge" is JSON (invalid
    # UTF-8 makes "badutf8" not JSON), and messages arrive in publish order.
    assert fields.topic == "fields/huge"
    assert json.loads(fields.payload)["deep"] == {"x": 1}
    last = await fields_client.next_message()
    assert last.topic == "fields/json"
    await client.close()
    await fields_client.close()
