"""The Lambda service: one pool of warm workers per function, synchronous and asynchronous
invocation, and hot reload when a function's code changes on disk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.arns import function_name_of
from emulator.config import Config
from emulator.functions.workers import InvokeResult, Worker, error_body
from emulator.project.model import FunctionSpec
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_WORKERS = 4  # per function: more than one when invocations pile up
EVENT_QUEUE = 10_000
EVENT_DISPATCHERS = 8
# AWS retries a failed asynchronous invocation twice, after about 1 and 2 minutes;
# locally the delays are 1 s and 2 s (docs/differences.md).
EVENT_RETRY_DELAYS = (1.0, 2.0)


def code_stamp(path: Path) -> float:
    latest = 0.0
    for file in path.rglob("*"):
        if file.suffix in (".py", ".json", ".txt") and "__pycache__" not in file.parts:
            with contextlib.suppress(OSError):
                latest = max(latest, file.stat().st_mtime_ns)
    return latest


class FunctionPool:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], arn: str) -> None:
        self.spec = spec
        self.env = env
        self.arn = arn
        self.generation = 0
        self.idle: list[Worker] = []
        self.all: set[Worker] = set()
        self._free = asyncio.Condition()
        self.invocations = 0
        self.errors = 0
        self.reloaded = asyncio.Event()

    async def invoke(self, payload: bytes) -> InvokeResult:
        worker = await self._acquire()
        self.invocations += 1
        try:
            result = await worker.invoke(payload, self.arn)
        finally:
            await self._release(worker)
        if result.function_error:
            self.errors += 1
        return result

    async def _acquire(self) -> Worker:
        async with self._free:
            while True:
                while self.idle:
                    worker = self.idle.pop()
                    if worker.alive and worker.generation == self.generation:
                        worker.busy = True
                        return worker
                    await self._retire(worker)
                if len(self.all) < MAX_WORKERS:
                    worker = Worker(self.spec, self.env, self.generation)
                    self.all.add(worker)
                    worker.busy = True
                    try:
                        await worker.start()
                    except Exception:
                        self.all.discard(worker)
                        await worker.kill()
                        raise
                    return worker
                await self._free.wait()

    async def _release(self, worker: Worker) -> None:
        async with self._free:
            worker.busy = False
            if worker.alive and worker.generation == self.generation:
                self.idle.append(worker)
            else:
                await self._retire(worker)
            self._free.notify()

    async def _retire(self, worker: Worker) -> None:
        self.all.discard(worker)
        await worker.kill()

    async def reload(self) -> None:
        """New code: idle workers go now, busy ones when they finish."""
        async with self._free:
            self.generation += 1
            idle, self.idle = self.idle, []
            for worker in idle:
                await self._retire(worker)
            self._free.notify_all()
        self.reloaded.set()
        self.reloaded.clear()

    async def stop(self) -> None:
        for worker in list(self.all):
            await worker.kill()
        self.all.clear()
        self.idle.clear()

    def health(self) -> dict[str, Any]:
        return {
            "workers": len(self.all),
            "invocations": self.invocations,
            "errors": self.errors,
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
        self._events: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(EVENT_QUEUE)
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
                "PYTHONPATH": str(spec.code_path),
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
        self._tasks = [asyncio.create_task(self._dispatch()) for _ in range(EVENT_DISPATCHERS)]
        self._tasks.append(asyncio.create_task(self._watch_code()))

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
                self.pools[name] = FunctionPool(spec, {}, self.arn(name))
                self._stamps[name] = await asyncio.to_thread(code_stamp, spec.code_path)

    def _pool(self, name_or_arn: str) -> FunctionPool | None:
        pool = self.pools.get(function_name_of(name_or_arn))
        if pool is not None and not pool.env:
            pool.env = self._env(pool.spec)
        return pool

    async def invoke(
        self, name_or_arn: str, payload: bytes, invocation_type: str = "RequestResponse"
    ) -> InvokeResult:
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
            try:
                self._events.put_nowait((pool.spec.name, payload))
            except asyncio.QueueFull:
                return InvokeResult(
                    429, error_body("event queue is full", "TooManyRequestsException"), None, ""
                )
            return InvokeResult(202, b"", None, "")
        return await pool.invoke(payload)

    async def _dispatch(self) -> None:
        while True:
            name, payload = await self._events.get()
            pool = self._pool(name)
            if pool is None:
                continue
            for attempt, delay in enumerate((0.0, *EVENT_RETRY_DELAYS)):
                if delay:
                    await asyncio.sleep(delay)
                try:
                    result = await pool.invoke(payload)
                except Exception:
                    log.exception("function %s: asynchronous invocation failed to start", name)
                    continue
                if not result.function_error:
                    break
                if attempt < len(EVENT_RETRY_DELAYS):
                    log.warning(
                        "function %s: asynchronous invocation %s failed; retrying",
                        name,
                        result.request_id,
                    )

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
