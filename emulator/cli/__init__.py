"""Command line: ``up`` runs the emulator; ``rules`` and ``policy`` are debugging tools.

Each sub-command lives beside the code it drives and registers itself here through an
``add_parser(subparsers)`` function, so this module only dispatches.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from emulator.config import Config, ConfigError, load_config
from emulator.logformat import SafeFormatter

log = logging.getLogger("emulator")

Handler = Callable[[argparse.Namespace], int]


def _add_up(sub: Any) -> None:
    p = sub.add_parser("up", help="run the emulator in the foreground (Ctrl-C stops it)")
    p.add_argument("--config", help="YAML config file (keys: the flag names)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--mqtt-port", type=int, help="MQTT over TCP port (default 1883, 0 = any free)")
    p.add_argument(
        "--http-port", type=int, help="HTTP port: /mqtt, /health, page, APIs (default 8080)"
    )
    p.add_argument(
        "--mqtt-tls-port",
        type=int,
        help="MQTT over TLS with client certificates (default 8883, any free one if taken)",
    )
    p.add_argument("--https-port", type=int, help="HTTPS port: wss /mqtt, the APIs (default 8443)")
    p.add_argument(
        "--rules",
        action="append",
        help="rule file, CloudFormation/SAM template or folder (repeatable; default rules/)",
    )
    p.add_argument(
        "--parameter-overrides",
        nargs="+",
        action="extend",
        metavar="NAME=VALUE",
        help="template parameters, as sam takes them (Name=Value, space-separated)",
    )
    p.add_argument("--backend", choices=["auto", "moto", "local", "external"])
    p.add_argument(
        "--policy", dest="policies", action="append", help="IoT policy document (repeatable)"
    )
    p.add_argument(
        "--no-auth", action="store_true", default=None, help="do not enforce IoT policies"
    )
    p.add_argument(
        "--session-expiry", type=float, help="persistent session expiry in seconds (3600)"
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
    p.add_argument("--data-dir", help="where data lasts across restarts (default .emulator-data/)")
    p.add_argument(
        "--in-memory", action="store_true", default=None, help="keep nothing across restarts"
    )
    p.add_argument(
        "--dynamodb-port", type=int, help="DynamoDB Local's port when data is kept (8000)"
    )
    p.set_defaults(handler=_run_up)


def _run_up(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k not in {"handler", "command"}}
    try:
        config = load_config(flags)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    _configure_logging(config.log_level)
    if busy := busy_port(config):
        log.error("cannot start: %s", busy)
        return 1
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is optional off Linux
        runner = asyncio.run
    try:
        return int(runner(_serve(config)))
    except KeyboardInterrupt:
        return 0


def busy_port(config: Config) -> str | None:
    """Why the MQTT or HTTP port cannot be bound, or None. Checked before any backend
    starts, so a second ``make run`` beside a running one fails at once, in one line."""
    for name, flag, port in (
        ("MQTT", "--mqtt-port", config.mqtt_port),
        ("HTTP", "--http-port", config.http_port),
    ):
        if port == 0:
            continue
        try:
            addresses = socket.getaddrinfo(
                config.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            for family, kind, proto, _, address in addresses:
                with socket.socket(family, kind, proto) as probe:
                    # as asyncio's create_server binds: TIME_WAIT leftovers do not count
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"{name} port {port} on {config.host}: address already in use "
                    f"(is another emulator running? choose another port with {flag}, 0 for any free one)"
                )
            return f"{name} port {port} on {config.host}: {exc.strerror or exc}"
    return None


async def _serve(config: Config) -> int:
    from emulator.services.backends import BackendError, Backends

    # Backend processes first: moto (or DynamoDB Local) boots while the rest is imported.
    backends = Backends(config)
    try:
        await backends.spawn()
    except BackendError as exc:
        log.error("cannot start: %s", exc)
        await backends.stop()
        return 1
    from emulator.app import Emulator, StartupError

    emulator = Emulator(config, backends)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await emulator.start()
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        await emulator.stop()
        return 1
    log.info("%s", emulator.ready_line())
    from emulator import tuning

    tuning.apply()
    await stop.wait()
    log.info("shutting down")
    await emulator.stop()
    log.info("stopped")
    return 0


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # Client IDs and topics in messages are escaped: a client cannot forge a log line.
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    # amqtt logs every connection at INFO; our broker logs the lines that matter.
    logging.getLogger("amqtt").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    logging.getLogger("transitions").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-emulator",
        description="Local emulator of an AWS IoT serverless chat (MQTT broker, rules, Lambda).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_up(sub)
    from emulator.cli import rules as rules_cli

    rules_cli.add_parser(sub)
    from emulator.cli import policy as policy_cli

    policy_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "up":
        _configure_logging("WARNING")
    handler: Handler = args.handler
    return handler(args)
