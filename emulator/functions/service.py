"""The Lambda service: one pool of warm workers per function, synchronous and asynchronous
invocation, and hot reload when a function's code changes on disk.

Theory of operation
-------------------
A function's pool runs at most ``concurrency`` workers (execution environments) at once,
as AWS runs up to the function's concurrency; a warm idle worker is reused, another is
started while the bound allows. Past it an invocation waits for a slot, and waiting
invocations are served source by source too (the caller of a synchronous invocation: the
Invoke API's caller, a Kinesis mapping, the client of a rule calling ``aws_lambda()``), so
one caller's pile of synchronous calls does not hold up another's invocations.

An asynchronous invocation (``Event``) is queued on its function, in a ``FairQueue``
(fairqueue.py) keyed by its source: the client whose message the rule action carried, the
Invoke API's caller, or the emulator itself. Each source has its own bounded share of the
queue (``event_queue_per_client``; past it: 429 ``TooManyRequestsException``) and the
queue is served source by source, so one client's flood delays another client's
invocation by at most one invocation per waiting source. Events are taken by up to
``concurrency`` runner tasks per function, started when events arrive and ended when the
queue is empty: a slow invocation holds one runner and one worker, never the others. A
failed event is retried after ``EVENT_RETRY_DELAYS`` by a timer that queues it again, so
waiting for a retry holds no runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, NamedTuple

from emulator.arns import function_name_of
from emulator.config import Config
from emulator.fairqueue import FairQueue
from emulator.functions.runtimes import (
    InstalledNode,
    RuntimeUnavailable,
    describe_node,
    find_node,
    launch,
)
from emulator.functions.workers import InvokeResult, Worker, error_body
from emulator.project.model import FunctionSpec
from emulator.project.runtimes import RuntimeKind, runtime_kind
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)

CONCURRENCY = 10  # workers per function at most (Config.lambda_concurrency)
EVENT_QUEUE = 10_000  # asynchronous invocations waiting per function, all sources together
EVENTS_PER_SOURCE = 1_000  # of which one source may have (Config.event_queue_per_client)
EMULATOR_SOURCE = ("emulator", "")  # the source of invocations made for no one in particular
# Invocations waiting for a slot when all ``concurrency`` are taken, per source and in all
# (synchronous callers and event runners; AWS answers 429 at once instead)
WAITING_PER_SOURCE = 1_000
WAITING = 10_000
# AWS retries a failed asynchronous invocation twice, after about 1 and 2 minutes;
# locally the delays are 1 s and 2 s (docs/differences.md).
EVENT_RETRY_DELAYS = (1.0, 2.0)


# The files whose change means new code: Python's and Node.js's sources and their data.
CODE_SUFFIXES = frozenset({".py", ".json", ".txt", ".js", ".mjs", ".cjs"})


def code_stamp(path: Path) -> float:
    """The latest change of the function's code; a folder's node_modules counts too, as
    AWS deploys it with the code (``__pycache__`` is the interpreter's, not the code)."""
    latest = 0.0
    for file in path.rglob("*"):
        if file.suffix in CODE_SUFFIXES and "__pycache__" not in file.parts:
            with contextlib.suppress(OSError):
                latest = max(latest, file.stat().st_mtime_ns)
    return latest


class _Event(NamedTuple):
    """An asynchronous invocation waiting in its function's queue."""

    payload: bytes
    attempt: int  # 0 the first time; retries count up to len(EVENT_RETRY_DELAYS)


class FunctionPool:
    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        arn: str,
        concurrency: int = CONCURRENCY,
        events_per_source: int = EVENTS_PER_SOURCE,
        events_total: int = EVENT_QUEUE,
    ) -> None:
        self.spec = spec
        self.env = env
        self.arn = arn
        # The worker's command (runtimes.py), set with ``env`` when first invoked; or why
        # the function's runtime cannot run here (every invocation then fails, saying so).
        self.command: tuple[str, ...] = ()
        self.unavailable: str | None = None
        self.concurrency = max(1, concurrency)
        self.generation = 0
        self.idle: list[Worker] = []
        self.all: set[Worker] = set()
        # Invocations holding one of the ``concurrency`` slots (each runs on one worker),
        # and those waiting for one, per source, served in turn.
        self._slots = 0
        self.slot_waiters: FairQueue[Hashable, asyncio.Future[None]] = FairQueue(
            WAITING_PER_SOURCE, WAITING
        )
        self.invocations = 0
        self.errors = 0
        self.reloaded = asyncio.Event()
        self.events: FairQueue[Hashable, _Event] = FairQueue(
            max(1, events_per_source), max(1, events_total, events_per_source)
        )
        self.events_refused = 0
        self._runners: set[asyncio.Task[None]] = set()
        # Runners in their loop: counted down as a runner leaves it, in the same step as
        # it finds the queue empty (a done callback would come a turn later, and an event
        # queued in between would find no runner to take it).
        self._looping = 0
        self._retries: set[asyncio.TimerHandle] = set()

    # -- asynchronous invocations (module docstring) ----------------------------------
    def enqueue(self, source: Hashable, payload: bytes) -> bool:
        """Queue an asynchronous invocation for ``source``; False if its share is full."""
        if not self.events.put(source, _Event(payload, 0)):
            self.events_refused += 1
            return False
        self._start_runner()
        return True

    def _start_runner(self) -> None:
        if self._looping < self.concurrency and self.events:
            self._looping += 1
            runner = asyncio.get_running_loop().create_task(
                self._run_events(), name=f"lambda-events-{self.spec.name}"
            )
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)

    async def _run_events(self) -> None:
        """Invoke queued events, sources in turn, until the queue is empty."""
        events = self.events
        try:
            while events:
                source, event = events.get()
                try:
                    result = await self.invoke(event.payload, source)
                except Exception:
                    log.exception(
                        "function %s: asynchronous invocation failed to start", self.spec.name
                    )
                    result = None
                if result is not None and not result.function_error:
                    continue
                if event.attempt < len(EVENT_RETRY_DELAYS):
                    delay = EVENT_RETRY_DELAYS[event.attempt]
                    log.warning(
                        "function %s: asynchronous invocation %s failed; retrying in %.0f s",
                        self.spec.name,
                        result.request_id if result is not None else "-",
                        delay,
                    )
                    self._retry_later(delay, source, _Event(event.payload, event.attempt + 1))
        finally:
            self._looping -= 1

    def _retry_later(self, delay: float, source: Hashable, event: _Event) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def retry() -> None:
            self._retries.discard(handle)
            if self.events.put(source, event):
                self._start_runner()
            else:
                log.warning(
                    "function %s: a retry of an asynchronous invocation dropped: "
                    "its source's share of the event queue is full",
                    self.spec.name,
                )

        handle = loop.call_later(delay, retry)
        self._retries.add(handle)

    # -- any invocation -----------------------------------------------------------------

    async def invoke(self, payload: bytes, source: Hashable = EMULATOR_SOURCE) -> InvokeResult:
        """Run one invocation on a worker once ``source`` has one of the function's
        ``concurrency`` slots; 429 if it cannot even wait for one (``WAITING_PER_SOURCE``)."""
        if not await self._take_slot(source):
            message = f"Rate Exceeded: too many invocations of {self.spec.name} waiting"
            return InvokeResult(429, error_body(message, "TooManyRequestsException"), None, "")
        if self.unavailable is not None:
            self._give_slot()
            self.invocations += 1
            self.errors += 1
            log.error("%s", self.unavailable)
            body = error_body(self.unavailable, "Runtime.Unavailable")
            return InvokeResult(200, body, "Unhandled", str(uuid.uuid4()))
        try:
            worker = await self._worker()
            self.invocations += 1
            try:
                result = await worker.invoke(payload, self.arn)
            finally:
                await self._put_back(worker)
        finally:
            self._give_slot()
        if result.function_error:
            self.errors += 1
        return result

    async def _take_slot(self, source: Hashable) -> bool:
        """A slot at once if one is free and nobody waits; else wait for one with the other
        sources, served in turn (fairqueue.py). False if ``source`` may not wait."""
        if self._slots < self.concurrency and not self.slot_waiters:
            self._slots += 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.slot_waiters.put(source, waiter):
            return False
        try:
            await waiter  # resolved by _give_slot: a slot handed over
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_slot()  # handed a slot it will not use: pass it on
            raise
        return True

    def _give_slot(self) -> None:
        """A slot is free: to the next waiting source's oldest waiter, or back to the pool."""
        waiting = self.slot_waiters
        while waiting:
            _, waiter = waiting.get()
            if not waiter.done():  # a cancelled waiter is skipped
                waiter.set_result(None)
                return
        self._slots -= 1

    async def _worker(self) -> Worker:
        """A warm idle worker of the current code, or a new one (the caller holds a slot, so
        there are never more than ``concurrency``)."""
        while self.idle:
            worker = self.idle.pop()
            if worker.alive and worker.generation == self.generation:
                worker.busy = True
                return worker
            await self._retire(worker)
        worker = Worker(self.spec, self.env, self.generation, self.command)
        self.all.add(worker)
        worker.busy = True
        try:
            await worker.start()
        except Exception:
            self.all.discard(worker)
            await worker.kill()
            raise
        return worker

    async def _put_back(self, worker: Worker) -> None:
        worker.busy = False
        if worker.alive and worker.generation == self.generation:
            self.idle.append(worker)
        else:
            await self._retire(worker)

    async def _retire(self, worker: Worker) -> None:
        self.all.discard(worker)
        await worker.kill()

    async def reload(self) -> None:
        """New code: idle workers go now, busy ones when they finish."""
        self.generation += 1
        idle, self.idle = self.idle, []
        for worker in idle:
            await self._retire(worker)
        self.reloaded.set()
        self.reloaded.clear()

    async def stop(self) -> None:
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        dropped = self.events.clear()
        if dropped:
            log.info(
                "function %s: %d queued asynchronous invocations dropped",
                self.spec.name,
                len(dropped),
            )
        await cancel_and_wait(*self._runners)
        for worker in list(self.all):
            await worker.kill()
        self.all.clear()
        self.idle.clear()

    def health(self) -> dict[str, Any]:
        return {
            "workers": len(self.all),
            "concurrency": self.concurrency,
            "invocations": self.invocations,
            "errors": self.errors,
            "events_waiting": len(self.events),
            "events_refused": self.events_refused,
            "pids": sorted(w.pid for w in self.all if w.pid),
        }


# What workers sign their calls to the emulator with when nothing else is configured.
LOCAL_CREDENTIALS = ("local", "local")


class FunctionService:
    def __init__(
        self,
        config: Config,
        endpoints: Callable[[], dict[str, str]],
        worker_credentials: tuple[str, str] = LOCAL_CREDENTIALS,
    ) -> None:
        self.config = config
        self.endpoints = endpoints  # resolved when a worker starts (HTTP port known by then)
        # (access key, secret) in the workers' environment: with ``credentials`` configured
        # the emulator's APIs require SigV4, so the workers get a key it accepts.
        self.worker_credentials = worker_credentials
        self.pools: dict[str, FunctionPool] = {}
        self._node: InstalledNode | None = None  # found when the first Node.js function loads
        self._node_looked_up = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stamps: dict[str, float] = {}

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.config.region}:{self.config.account_id}:function:{name}"

    def resolve(self, name_or_arn: str) -> str | None:
        name = function_name_of(name_or_arn)
        return name if name in self.pools else None

    def names(self) -> list[str]:
        return sorted(self.pools)

    def _env(self, spec: FunctionSpec) -> dict[str, str]:
        import os

        region = self.config.region
        ep = self.endpoints()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EMULATOR_"))}
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]emulator",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "AWS_ACCESS_KEY_ID": self.worker_credentials[0],
                "AWS_SECRET_ACCESS_KEY": self.worker_credentials[1],
                "AWS_SESSION_TOKEN": "local",
                "_HANDLER": spec.handler,
                "LAMBDA_TASK_ROOT": str(spec.code_path),
                "TZ": ":UTC",
                "AWS_ENDPOINT_URL_DYNAMODB": ep.get("dynamodb", ""),
                "AWS_ENDPOINT_URL_KINESIS": ep.get("kinesis", ""),
                "AWS_ENDPOINT_URL_IOT_DATA_PLANE": ep.get("iot-data", ""),
                "AWS_ENDPOINT_URL_IOT_DATA": ep.get("iot-data", ""),
                "AWS_ENDPOINT_URL_LAMBDA": ep.get("lambda", ""),
            }
        )
        env.update(spec.environment)
        return {k: v for k, v in env.items() if v != ""}

    async def start(self, functions: tuple[FunctionSpec, ...]) -> None:
        await self.update(functions)
        self._tasks = [asyncio.create_task(self._watch_code())]

    async def update(self, functions: tuple[FunctionSpec, ...]) -> None:
        wanted = {f.name: f for f in functions}
        for name in list(self.pools):
            if name not in wanted:
                await self.pools.pop(name).stop()
        for name, spec in wanted.items():
            pool = self.pools.get(name)
            if pool is None or pool.spec != spec:
                if pool is not None:
                    await pool.stop()
                config = self.config
                self.pools[name] = FunctionPool(
                    spec,
                    {},
                    self.arn(name),
                    config.lambda_concurrency,
                    config.event_queue_per_client,
                )
                await self._check_runtime(self.pools[name])
                self._stamps[name] = await asyncio.to_thread(code_stamp, spec.code_path)

    async def _check_runtime(self, pool: FunctionPool) -> None:
        """Find the function's runtime client now, so a missing one is an error at start-up
        (and a Node.js function's version is said once), not at its first invocation."""
        spec = pool.spec
        if runtime_kind(spec.runtime) is RuntimeKind.NODEJS and not self._node_looked_up:
            self._node = await asyncio.to_thread(find_node)
            self._node_looked_up = True
        try:
            pool.command = launch(spec, self.config.node_modules, self._node).command
        except RuntimeUnavailable as exc:
            pool.unavailable = str(exc)
            log.error("%s", exc)
            return
        if self._node is not None and (note := describe_node(spec, self._node)):
            log.warning("%s", note)

    def _pool(self, name_or_arn: str) -> FunctionPool | None:
        pool = self.pools.get(function_name_of(name_or_arn))
        if pool is not None and not pool.env:
            spec = pool.spec
            env = self._env(spec)
            with contextlib.suppress(RuntimeUnavailable):  # said at start-up and per invocation
                # The runtime's paths, unless the function sets them itself (as AWS's
                # bootstrap keeps a NODE_PATH the function's configuration gives).
                runtime_env = launch(spec, self.config.node_modules, self._node).env
                env.update({k: v for k, v in runtime_env.items() if k not in spec.environment})
            pool.env = env
        return pool

    async def invoke(
        self,
        name_or_arn: str,
        payload: bytes,
        invocation_type: str = "RequestResponse",
        source: Hashable | None = None,
    ) -> InvokeResult:
        """Invoke a function; an ``Event`` is queued under ``source`` (module docstring)."""
        pool = self._pool(name_or_arn)
        if pool is None:
            body = error_body(
                f"Function not found: {self.arn(function_name_of(name_or_arn))}",
                "ResourceNotFoundException",
            )
            return InvokeResult(404, body, None, "")
        if invocation_type == "DryRun":
            return InvokeResult(204, b"", None, "")
        if invocation_type == "Event":
            key = EMULATOR_SOURCE if source is None else source
            if not pool.enqueue(key, payload):
                events = pool.events
                if events.waiting(key) >= events.per_key:
                    why = f"{events.per_key} from this source are already waiting"
                else:
                    why = f"the queue is full ({len(events)} waiting)"
                message = f"Rate Exceeded: asynchronous invocations of {pool.spec.name}: {why}"
                body = error_body(message, "TooManyRequestsException")
                return InvokeResult(429, body, None, "")
            return InvokeResult(202, b"", None, "")
        return await pool.invoke(payload, EMULATOR_SOURCE if source is None else source)

    async def _watch_code(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for name, pool in list(self.pools.items()):
                stamp = await asyncio.to_thread(code_stamp, pool.spec.code_path)
                if stamp != self._stamps.get(name):
                    self._stamps[name] = stamp
                    log.info("function %s: code changed; new invocations use fresh workers", name)
                    await pool.reload()

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        for pool in self.pools.values():
            await pool.stop()

    def health(self) -> dict[str, Any]:
        return {name: pool.health() for name, pool in self.pools.items()}
