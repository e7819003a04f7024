"""Start and stop the brokers under test as subprocesses, on loopback only.

* ``emulator``: ``python -m emulator up --mqtt-port 0 --http-port 0``; ports come from the
  ready line (``ready in X.XXs: mqtt://host:PORT ws://host:HTTP/mqtt ...``).
* ``amqtt``: plain amqtt with its default settings (the ``default_broker.yaml`` plugins),
  started by ``python -m benchmarks.harness amqtt TCP WS`` below, TCP and WebSocket listeners.
* ``mosquitto``: when installed; a generated config with a TCP and a WebSocket listener.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
READY = re.compile(r"ready in ([\d.]+)s: mqtt://([^:\s]+):(\d+) ws://([^/\s]+)/mqtt")


class HarnessError(Exception):
    """A broker did not start; the message carries the tail of its output."""


@dataclass
class BrokerProcess:
    """A running broker: where to connect and how to stop it."""

    name: str
    proc: subprocess.Popen[str]
    port: int
    ws_url: str | None
    http_port: int | None = None
    ready_seconds: float | None = None
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = field(default=None, repr=False)  # drains stderr

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kib(self) -> int:
        """Resident set size of the broker process, from /proc."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT if self.name == "emulator" else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        _close_output(self.proc, self.reader)


def _close_output(proc: subprocess.Popen[str], reader: threading.Thread | None) -> None:
    """Once the reader has drained the exited child's pipe to its end, close it (an open
    pipe left to the garbage collector is a ResourceWarning)."""
    if reader is not None:
        reader.join(5)
        if reader.is_alive():
            return  # a grandchild still holds the pipe: leave it to the reader
    if proc.stderr is not None:
        proc.stderr.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _pump(proc: subprocess.Popen[str], sink: list[str], stream: str = "stderr") -> None:
    """Keep reading the child's output so its pipe never fills and blocks it."""
    pipe = getattr(proc, stream)
    for line in pipe:
        sink.append(line.rstrip())
        if len(sink) > 400:
            del sink[:200]


def _wait_port(port: int, proc: subprocess.Popen[str], timeout: float, out: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError("exited early:\n" + "\n".join(out[-20:]))
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.02)
    raise HarnessError(f"port {port} not open after {timeout}s:\n" + "\n".join(out[-20:]))


def start_emulator(
    rules: Sequence[Path] = (),
    backend: str | None = None,
    timeout: float = 60.0,
    extra: Sequence[str] = (),
) -> BrokerProcess:
    """``python -m emulator up`` on free ports; returns once the ready line appeared."""
    cmd = [sys.executable, "-m", "emulator", "up", "--host", HOST]
    cmd += ["--mqtt-port", "0", "--http-port", "0", "--in-memory"]  # nothing kept on disk
    # An empty rules folder keeps the chat's own rules out of pass-through runs.
    rule_paths = list(rules) or [REPO / "benchmarks" / "rules" / "empty"]
    for path in rule_paths:
        cmd += ["--rules", str(path)]
    if backend:
        cmd += ["--backend", backend]
    cmd += list(extra)
    # The load generators publish far past AWS's per-connection quotas (100 PUBLISH/s,
    # 512 KiB/s), the scaling run holds 10,000 filters on one connection, 200 per
    # SUBSCRIBE (AWS: 50 and 8), and the service runs queue one client's 2,000 actions or
    # invocations at once (the emulator's per-client share: 1,000): raised, as mosquitto
    # has none; the checks still run, and the totals (10,000) still bound the queues.
    quotas = {
        "EMULATOR_PUBLISH_RATE": "1000000000",
        "EMULATOR_THROUGHPUT_KIB": "1000000000",
        "EMULATOR_MAX_SUBSCRIPTIONS": "1000000",
        "EMULATOR_MAX_FILTERS_PER_SUBSCRIBE": "1000",
        "EMULATOR_ACTION_QUEUE_PER_CLIENT": "1000000",
        "EMULATOR_EVENT_QUEUE_PER_CLIENT": "1000000",
    }
    env = {**quotas, **os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    out: list[str] = []
    found: list[re.Match[str]] = []
    seen = threading.Event()

    def watch() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if not found:
                m = READY.search(line)
                if m:
                    found.append(m)
                    seen.set()
            out.append(line.rstrip())
            if len(out) > 400:
                del out[:200]
        seen.set()

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    seen.wait(timeout)
    if found:
        m = found[0]
        http_port = int(m.group(4).rsplit(":", 1)[1])
        return BrokerProcess(
            "emulator",
            proc,
            int(m.group(3)),
            f"http://{HOST}:{http_port}/mqtt",
            http_port,
            float(m.group(1)),
            out,
            reader,
        )
    proc.kill()
    proc.wait(5)
    _close_output(proc, reader)
    raise HarnessError("emulator gave no ready line:\n" + "\n".join(out[-30:]))


def start_amqtt(timeout: float = 30.0) -> BrokerProcess:
    """Plain amqtt, default plugins, TCP + WebSocket listeners, asyncio's default loop."""
    tcp, ws = free_port(), free_port()
    cmd = [sys.executable, "-m", "benchmarks.harness", "amqtt", str(tcp), str(ws)]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    out: list[str] = []
    reader = threading.Thread(target=_pump, args=(proc, out), daemon=True)
    reader.start()
    _wait_port(tcp, proc, timeout, out)
    _wait_port(ws, proc, timeout, out)
    return BrokerProcess("amqtt", proc, tcp, f"http://{HOST}:{ws}/mqtt", output=out, reader=reader)


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )


def start_mosquitto(timeout: float = 15.0) -> BrokerProcess | None:
    """mosquitto with a TCP and a WebSocket listener, or None when it is not installed."""
    exe = mosquitto_path()
    if exe is None:
        return None
    tcp, ws = free_port(), free_port()
    conf = Path(tempfile.mkdtemp(prefix="bench-mosq-")) / "mosquitto.conf"
    conf.write_text(
        f"listener {tcp} {HOST}\nallow_anonymous true\n"
        f"listener {ws} {HOST}\nprotocol websockets\n"
        "persistence false\nlog_dest stderr\nlog_type error\nmax_queued_messages 1000000\n"
        "max_inflight_messages 64\n"
    )
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    out: list[str] = []
    reader = threading.Thread(target=_pump, args=(proc, out), daemon=True)
    reader.start()
    _wait_port(tcp, proc, timeout, out)
    return BrokerProcess(
        "mosquitto", proc, tcp, f"http://{HOST}:{ws}/mqtt", output=out, reader=reader
    )


@contextlib.contextmanager
def running(broker: BrokerProcess) -> Iterator[BrokerProcess]:
    try:
        yield broker
    finally:
        broker.stop()


def _amqtt_main(tcp: int, ws: int) -> None:
    """Plain amqtt as its console script would run it with default_broker.yaml."""
    import asyncio
    import logging

    from amqtt.broker import Broker

    logging.basicConfig(level=logging.WARNING)
    config = {
        "listeners": {
            "default": {"type": "tcp", "bind": f"{HOST}:{tcp}"},
            "ws": {"type": "ws", "bind": f"{HOST}:{ws}"},
        },
        "plugins": {
            "amqtt.plugins.logging_amqtt.EventLoggerPlugin": {},
            "amqtt.plugins.logging_amqtt.PacketLoggerPlugin": {},
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            "amqtt.plugins.sys.broker.BrokerSysPlugin": {"sys_interval": 20},
        },
    }

    async def serve() -> None:
        broker = Broker(config)
        await broker.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await broker.shutdown()

    asyncio.run(serve())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "amqtt":
        _amqtt_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: python -m benchmarks.harness amqtt TCP_PORT WS_PORT")
