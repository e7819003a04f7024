"""`python -m emulator up` as a newcomer runs it: a real process, real ports, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import urllib.request

from emulator.config import REPO_ROOT
from tests.integration.raw import TIMEOUT

READY = re.compile(r"ready in [\d.]+s.*mqtt://[\d.]+:(\d+) ws://[\d.]+:(\d+)/mqtt")


async def start_up(
    *args: str,
    env: dict[str, str] | None = None,
    rules: str | None = "tests/fixtures/empty-rules",
) -> asyncio.subprocess.Process:
    """`up` on free ports with ``rules`` (None: `up`'s own default, the chat's) and
    ``args``, its log (stderr) piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "up",
        "--mqtt-port",
        "0",
        "--http-port",
        "0",
        *(("--rules", rules) if rules is not None else ()),
        *args,
        cwd=REPO_ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )


async def wait_ready(proc: asyncio.subprocess.Process) -> re.Match[str]:
    """The ready line's match (the MQTT and HTTP ports)."""
    assert proc.stderr is not None
    async with asyncio.timeout(TIMEOUT * 3):
        while True:
            line = (await proc.stderr.readline()).decode()
            assert line, "emulator exited before it was ready"
            if match := READY.search(line):
                return match


async def test_up_on_free_ports_reports_them_and_stops_cleanly() -> None:
    proc = await start_up()
    assert proc.stderr is not None
    try:
        match = await wait_ready(proc)
        mqtt_port, http_port = int(match[1]), int(match[2])
        body = await asyncio.to_thread(
            lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health"))
        )
        assert body["status"] == "ok"
        assert (body["mqtt"]["tcp"], body["mqtt"]["ws"]) == (mqtt_port, "/mqtt")
        _, writer = await asyncio.open_connection("127.0.0.1", mqtt_port)
        writer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT):
            rest = (await proc.stderr.read()).decode()
            code = await proc.wait()
    assert code == 0, rest
    assert "Traceback" not in rest
