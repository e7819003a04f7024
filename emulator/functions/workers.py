"""Lambda workers: real processes running AWS's runtime interface client for the function's
runtime (``python -m awslambdaric <handler>``, or npm ``aws-lambda-ric`` under Node.js:
runtimes.py), each talking to its own Runtime API endpoint.

Theory of operation
-------------------
A ``Worker`` owns one process and one small aiohttp server implementing the Lambda Runtime
API (reference/aws-lambda/runtimes-api.md) on 127.0.0.1:<port>, which the process finds in
``AWS_LAMBDA_RUNTIME_API``, exactly as in a Lambda container. ``invoke`` hands one event to
the worker and waits for ``/response`` or ``/error``. A timeout or a crash kills the process;
the pool replaces it on the next invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.project.model import FunctionSpec
from emulator.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MAX_LOG_LINE = 8192  # longer lines are cut (a handler printing megabytes can't flood us)


@dataclass(frozen=True, slots=True)
class InvokeResult:
    status_code: int
    payload: bytes
    function_error: str | None  # "Unhandled" when the handler raised or the runtime failed
    request_id: str
    log_tail: str = ""

    @property
    def error(self) -> str | None:
        return self.payload.decode(errors="replace") if self.function_error else None


@dataclass
class _Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int
    arn: str
    result: asyncio.Future[tuple[bytes, str | None]]


class Worker:
    def __init__(
        self,
        spec: FunctionSpec,
        env: dict[str, str],
        generation: int,
        command: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.env = env
        # The runtime interface client to start (runtimes.py); Python's by default.
        self.command = tuple(command) or (sys.executable, "-m", "awslambdaric", spec.handler)
        self.generation = generation
        self.proc: asyncio.subprocess.Process | None = None
        self._runner: web.AppRunner | None = None
        self._next: asyncio.Queue[_Invocation] = asyncio.Queue(1)
        self._current: _Invocation | None = None
        self._init_error: asyncio.Future[bytes] | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self.busy = False
        self.invocations = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        app = web.Application(client_max_size=7 * 1024 * 1024)
        base = "/2018-06-01/runtime"
        app.router.add_get(base + "/invocation/next", self._next_invocation)
        app.router.add_post(base + "/invocation/{rid}/response", self._response)
        app.router.add_post(base + "/invocation/{rid}/error", self._error)
        app.router.add_post(base + "/init/error", self._init_error_route)
        # handler_cancellation: a killed worker's pending /next long-poll ends with it.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=0.5,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._init_error = asyncio.get_running_loop().create_future()
        env = {**self.env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"}
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=str(self.spec.code_path),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(self.proc.stdout)),
            asyncio.create_task(self._pump(self.proc.stderr)),
        ]
        log.info("function %s: worker pid %s started", self.spec.name, self.proc.pid)

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        fn_log = logging.getLogger(f"lambda.{self.spec.name}")
        while True:
            try:
                line = await stream.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial
                if not line:
                    return
            except asyncio.LimitOverrunError as exc:
                line = await stream.readexactly(exc.consumed)
            text = line.decode(errors="replace").rstrip()
            if len(text) > MAX_LOG_LINE:
                text = text[:MAX_LOG_LINE] + f"... [{len(text) - MAX_LOG_LINE} more characters]"
            rid = self._current.request_id if self._current else "-"
            fn_log.info("[%s] %s", rid, text)

    # -- Runtime API -----------------------------------------------------------------
    async def _next_invocation(self, request: web.Request) -> web.StreamResponse:
        invocation = await self._next.get()
        self._current = invocation
        return web.Response(
            body=invocation.payload,
            content_type="application/json",
            headers={
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": invocation.arn,
                "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]};Sampled=0",
            },
        )

    def _settle(self, rid: str, body: bytes, error: str | None) -> web.Response:
        current = self._current
        if current is None or current.request_id != rid:
            return web.json_response(
                {"errorMessage": "unknown request id", "errorType": "InvalidRequestID"}, status=400
            )
        if not current.result.done():
            current.result.set_result((body, error))
        return web.json_response({"status": "OK"}, status=202)

    async def _response(self, request: web.Request) -> web.Response:
        return self._settle(request.match_info["rid"], await request.read(), None)

    async def _error(self, request: web.Request) -> web.Response:
        body = await request.read()
        kind = request.headers.get("Lambda-Runtime-Function-Error-Type", "Unhandled")
        return self._settle(request.match_info["rid"], body, kind)

    async def _init_error_route(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self._init_error is not None and not self._init_error.done():
            self._init_error.set_result(body)
        return web.json_response({"status": "OK"}, status=202)

    # -- invoking --------------------------------------------------------------------
    async def invoke(self, payload: bytes, arn: str) -> InvokeResult:
        rid = str(uuid.uuid4())
        timeout = self.spec.timeout
        loop = asyncio.get_running_loop()
        invocation = _Invocation(
            rid, payload, int((time.time() + timeout) * 1000), arn, loop.create_future()
        )
        self.invocations += 1
        await self._next.put(invocation)
        assert self.proc is not None and self._init_error is not None
        exited = asyncio.ensure_future(self.proc.wait())
        try:
            waiters: set[asyncio.Future[Any]] = {invocation.result, exited, self._init_error}
            done, _ = await asyncio.wait(
                waiters,
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            if not exited.done():
                exited.cancel()
        self._current = None
        if invocation.result in done:
            body, error = invocation.result.result()
            if error:
                log.error("function %s request %s failed: %s", self.spec.name, rid, _summary(body))
                return InvokeResult(200, body, "Unhandled", rid)
            return InvokeResult(200, body, None, rid)
        if self._init_error.done():
            body = self._init_error.result()
            log.error("function %s failed to initialise: %s", self.spec.name, _summary(body))
            await self.kill()
            return InvokeResult(200, body, "Unhandled", rid)
        if exited in done or not self.alive:
            code = self.proc.returncode
            message = f"RequestId: {rid} Error: Runtime exited with error: exit status {code}"
            log.error("function %s: %s", self.spec.name, message)
            await self.kill()
            return InvokeResult(200, error_body(message, "Runtime.ExitError"), "Unhandled", rid)
        message = (
            f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {rid} Task timed out after {timeout:.2f} seconds"
        )
        log.error("function %s: %s; replacing the worker", self.spec.name, message)
        await self.kill()
        return InvokeResult(200, error_body(message, "Sandbox.Timedout"), "Unhandled", rid)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            with contextlib.suppress(Exception):
                await self.proc.wait()
        await cancel_and_wait(*self._pumps)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def error_body(message: str, kind: str) -> bytes:
    """A Lambda error payload, as the runtime reports a handler's error."""
    return json.dumps({"errorMessage": message, "errorType": kind}).encode()


def _summary(body: bytes) -> str:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body[:2000].decode(errors="replace")
    if isinstance(data, dict):
        trace = "".join(data.get("stackTrace") or [])
        return f"{data.get('errorType')}: {data.get('errorMessage')}\n{trace}".rstrip()
    return str(data)[:2000]
