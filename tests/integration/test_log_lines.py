"""The emulator's log as `up` writes it: a client cannot forge a line of it."""

from __future__ import annotations

import asyncio
import re
import signal

from emulator.broker.codec import encode_length
from tests.integration.raw import TIMEOUT
from tests.integration.test_cli_up import start_up, wait_ready

FORGED = "INFO    emulator.broker.protocol: connected client 'admin'"
CONNECTED = re.compile(r"^\S+ \S+ INFO +emulator\.broker\.protocol: connected client")


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def connect(client_id: str) -> bytes:
    body = _string("MQTT") + bytes([4, 0x02, 0, 60]) + _string(client_id)
    return b"\x10" + encode_length(len(body)) + body


def publish_qos2(topic: str) -> bytes:
    body = _string(topic) + b"\x00\x01" + b"x"
    return b"\x34" + encode_length(len(body)) + body


async def test_a_newline_in_a_client_id_does_not_start_a_log_line() -> None:
    proc = await start_up()
    assert proc.stderr is not None
    lines: list[str] = []
    writer: asyncio.StreamWriter | None = None
    try:
        match = await wait_ready(proc)
        reader, writer = await asyncio.open_connection("127.0.0.1", int(match[1]))
        # AWS IoT ignores QoS 2, and the broker logs the topic as the client wrote it.
        writer.write(connect(f"web-1\n{FORGED}\r\x1b[2J") + publish_qos2(f"t\n{FORGED}"))
        async with asyncio.timeout(TIMEOUT):  # until the broker logged both
            while not any("QoS 2" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "emulator exited"
                lines.append(line)
    finally:
        if writer is not None:
            writer.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            lines += (await proc.stderr.read()).decode().splitlines(keepends=True)
            await proc.wait()
    connected = [line for line in lines if CONNECTED.match(line)]
    assert len(connected) == 1, lines
    assert "web-1\\n" + FORGED in connected[0] and "\\x1b[2J" in connected[0]
    assert any("QoS 2" in line and "t\\n" + FORGED in line for line in lines), lines
    assert not any(line.startswith(FORGED) or "\x1b" in line for line in lines)
