"""Configuration: command-line flags, ``EMULATOR_*`` environment variables and a YAML file.

Precedence, highest first: flag, environment variable, config file key, default.
Every setting has the same name in all three places: ``--mqtt-port``,
``EMULATOR_MQTT_PORT``, ``mqtt_port:`` (``mqtt-port:`` is accepted too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout the emulator runs from; ``up`` with no arguments serves the chat found here."""

STATIC_DIR = (Path(__file__).parent / "chat_static").resolve()
"""The chat page's files: in a checkout ``emulator/chat_static`` links to ``static/``; a wheel
holds a copy there (package data), so an installed emulator serves the page too."""

ENV_PREFIX = "EMULATOR_"
MQTT_TLS_PORT = 8883  # AWS IoT's MQTT over TLS with client certificates
HTTPS_PORT = 8443


def default_data_dir() -> Path:
    """``.emulator-data`` at the repo root in a checkout; for an installed emulator (no
    checkout around it: its site-packages) in the directory it is started from."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT / ".emulator-data"
    return Path.cwd() / ".emulator-data"


class ConfigError(Exception):
    """A setting has a value we cannot use; the message names the setting and its source."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``up`` needs. Paths are absolute once loaded."""

    host: str = "127.0.0.1"
    mqtt_port: int = 1883
    http_port: int = 8080
    # MQTT over TLS with client certificates (AWS's 8883) and HTTPS/WSS beside the HTTP
    # port; at their defaults, any free port when the default is taken
    mqtt_tls_port: int = MQTT_TLS_PORT
    https_port: int = HTTPS_PORT
    rules: tuple[Path, ...] = (REPO_ROOT / "rules",)
    # Template parameters, as `sam --parameter-overrides` takes them: "Name=Value" tokens
    parameter_overrides: tuple[str, ...] = ()
    static_dir: Path = STATIC_DIR
    node_modules: Path = REPO_ROOT / "node_modules"
    backend: str = "auto"  # auto | moto | local | external
    dynamodb_endpoint: str | None = None  # for backend=external
    kinesis_endpoint: str | None = None  # for backend=external
    # service -> URL that /health shows instead of the one the emulator
    # uses (compose: the host-published ports, where the emulator uses the network's names)
    advertised_endpoints: tuple[tuple[str, str], ...] = ()
    region: str = "us-east-1"
    account_id: str = "123456789012"
    session_expiry: float = 3600.0  # seconds; AWS IoT default persistent-session expiry is 1 h
    keepalive_factor: float = 1.5  # AWS IoT disconnects after 1.5 x keep-alive without traffic
    max_hops: int = 8  # republish depth after which a rule loop is cut
    policies: tuple[Path, ...] = ()
    no_auth: bool = False
    credentials: tuple[tuple[str, str], ...] = ()  # (access key, secret) pairs for SigV4 on /mqtt
    hot_reload: bool = True
    log_level: str = "INFO"
    # -- data that lasts (README "Data") -------------------------------------------------
    data_dir: Path = field(default_factory=default_data_dir)  # tables, streams, broker
    in_memory: bool = False  # keep nothing: every start is empty
    dynamodb_port: int = 8000  # DynamoDB Local's fixed port when data is kept (0 = any free)
    save_interval: float = 5.0  # seconds between saves of the broker's state (and at stop)
    max_saved_retained: int = 500_000  # AWS: retained messages per account
    # -- AWS IoT's per-connection quotas (AWS's values; docs/differences.md) --------------
    max_inflight: int = 100  # outbound unacknowledged QoS 1 messages per client
    publish_rate: int = 100  # inbound PUBLISH per second per connection; excess dropped
    throughput_kib: int = 512  # KiB/s read per connection; excess delayed
    max_subscriptions: int = 50  # per connection; more: SUBACK failure
    max_filters_per_subscribe: int = 8  # per SUBSCRIBE packet
    keepalive_min: int = 30  # seconds; shorter keep-alives are raised to this
    keepalive_max: int = 1200  # seconds; longer ones (and 0) become this
    stored_resend_rate: int = 10  # stored messages per second after a reconnect
    connect_rate: float = 1.0  # CONNECTs per second per client ID
    max_queued_messages: int = (
        1000  # QoS 1 messages waiting per session (offline or over max_inflight)
    )
    # -- isolation between clients (the emulator's own bounds) --------------------------
    client_buffer_kib: int = 8192  # bytes written to a client not yet sent; over: disconnected
    action_queue_per_client: int = 1000  # rule actions waiting per source client
    event_queue_per_client: int = 1000  # asynchronous Lambda invocations waiting per source
    lambda_concurrency: int = 10  # execution environments per function
    # -- the HTTP port -----------------------------------------------------------------
    http_header_timeout: float = 10.0  # seconds to send a request's headers
    http_idle_timeout: float = 75.0  # seconds a kept-alive connection may idle
    http_max_connections: int = 1000  # open connections on the HTTP port
    allowed_origins: tuple[str, ...] = ()  # extra Origins allowed to POST and open /mqtt
    allowed_hosts: tuple[str, ...] = ()  # extra Host names (beyond localhost and IP literals)
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown keys kept for components

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **changes)

    @property
    def kept_in(self) -> Path | None:
        """Where data lasts across restarts; None with ``in_memory``."""
        return None if self.in_memory else self.data_dir


_PATH_TUPLES = {"rules", "policies"}
_PATHS = {"static_dir", "node_modules", "data_dir"}
_BOOLS = {"no_auth", "hot_reload", "in_memory"}
_INTS = {
    "mqtt_port",
    "http_port",
    "mqtt_tls_port",
    "https_port",
    "max_hops",
    "max_inflight",
    "publish_rate",
    "throughput_kib",
    "max_subscriptions",
    "max_filters_per_subscribe",
    "keepalive_min",
    "keepalive_max",
    "stored_resend_rate",
    "max_queued_messages",
    "client_buffer_kib",
    "action_queue_per_client",
    "event_queue_per_client",
    "lambda_concurrency",
    "http_max_connections",
    "dynamodb_port",
    "max_saved_retained",
}
_FLOATS = {
    "session_expiry",
    "keepalive_factor",
    "connect_rate",
    "http_header_timeout",
    "http_idle_timeout",
    "save_interval",
}
_STR_TUPLES = {"allowed_origins", "allowed_hosts"}  # a list, or a comma-separated string


def _coerce(name: str, value: Any, source: str, base: Path) -> Any:
    try:
        if name in _PATH_TUPLES:
            items = value if isinstance(value, list | tuple) else str(value).split(os.pathsep)
            return tuple((base / str(v)).resolve() for v in items if str(v))
        if name in _PATHS:
            return (base / str(value)).resolve()
        if name in _BOOLS:
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"1", "true", "yes", "on"}
        if name in _INTS:
            number = int(value)
            if name.endswith("_port") and not 0 <= number <= 65535:
                raise ValueError("not a port number")
            if not name.endswith("_port") and number < 0:
                raise ValueError("must not be negative")
            return number
        if name in _FLOATS:
            real = float(value)
            if real < 0:
                raise ValueError("must not be negative")
            return real
        if name in _STR_TUPLES:
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(str(v).strip() for v in items if str(v).strip())
        if name == "advertised_endpoints":  # a mapping, or "service=URL,service=URL"
            if not isinstance(value, dict):
                value = dict(pair.strip().split("=", 1) for pair in str(value).split(",") if pair)
            return tuple((str(k), str(u)) for k, u in dict(value).items())
        if name == "parameter_overrides":  # a list, or one "A=1 B=2" string
            items = value if isinstance(value, list | tuple) else [value]
            return tuple(str(v) for v in items if str(v).strip())
        if name == "credentials":
            return tuple((str(k), str(s)) for k, s in (dict(value).items()))
        return value if value is None else str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: invalid value {value!r} for {name}: {exc}") from exc


def load_config(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Merge defaults, the config file (``--config`` / ``EMULATOR_CONFIG``), env and flags."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    names = {f.name for f in fields(Config)} - {"extra"}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}

    config_file = flags.pop("config", None) or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        path = (cwd / str(config_file)).resolve()
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name in names:
                values[name] = _coerce(name, value, str(path), path.parent)
            else:
                extra[name] = value

    for name in names:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None and env_value != "":
            values[name] = _coerce(name, env_value, ENV_PREFIX + name.upper(), cwd)
    # Standard AWS variables for --backend external (what docker compose sets).
    for name, var in (
        ("dynamodb_endpoint", "AWS_ENDPOINT_URL_DYNAMODB"),
        ("kinesis_endpoint", "AWS_ENDPOINT_URL_KINESIS"),
    ):
        if name not in values and environ.get(var):
            values[name] = environ[var]

    for name, value in flags.items():
        if name in names:
            values[name] = _coerce(name, value, "--" + name.replace("_", "-"), cwd)
    return Config(**values, extra=extra)
