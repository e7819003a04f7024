"""The Lambda ``Invoke`` HTTP API on the emulator's port, so boto3's lambda client works:
``POST /2015-03-31/functions/{name}/invocations``.

Parsing and serializing only: ``FunctionService`` (service.py) is the model. Its answers
with an AWS error status (404 unknown function, 429 event queue full) become Lambda's
errors with their codes, so boto3 raises the same ``ClientError`` as against AWS.
Asynchronous invocations are queued per caller (``caller``): one caller's flood fills its
own share of the function's queue, not another's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from aiohttp import web

from emulator.awserrors import AwsError, aws_handler, read_body
from emulator.functions.service import FunctionService
from emulator.functions.workers import InvokeResult

INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")
LOG_TAIL_BYTES = 4096  # AWS: X-Amz-Log-Result holds the last 4 KB of the log


class LambdaError(AwsError):
    """Lambda's error body names who is at fault (``Type``) beside the message."""

    def body(self) -> dict[str, str]:
        return {"Type": "User", "message": self.message}


class InvalidParameterValue(LambdaError):
    code = "InvalidParameterValueException"
    status = 400


class ResourceNotFound(LambdaError):
    code = "ResourceNotFoundException"
    status = 404


class RequestTooLarge(LambdaError):
    code = "RequestTooLargeException"
    status = 413


class TooManyRequests(LambdaError):
    code = "TooManyRequestsException"
    status = 429


class ServiceError(LambdaError):
    """Lambda's internal error (the function could not be started, ...)."""

    code = "ServiceException"
    status = 500

    def body(self) -> dict[str, str]:
        return {"Type": "Service", "message": self.message}


_ERRORS: dict[int, type[LambdaError]] = {404: ResourceNotFound, 429: TooManyRequests}


def parse_invocation_type(headers: Mapping[str, str]) -> str:
    kind = headers.get("X-Amz-Invocation-Type", "RequestResponse")
    if kind not in INVOCATION_TYPES:
        raise InvalidParameterValue(f"invalid invocation type {kind}")
    return kind


def invoke_headers(result: InvokeResult, log_tail: bool) -> dict[str, str]:
    """The answer's headers: version, request ID, function error, and the log tail when
    ``X-Amz-Log-Type: Tail`` asked for it."""
    headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": result.request_id}
    if result.function_error:
        headers["X-Amz-Function-Error"] = result.function_error
    if log_tail:
        tail = result.log_tail.encode()[-LOG_TAIL_BYTES:]
        headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode()
    return headers


def raise_for_status(result: InvokeResult) -> None:
    """The model's error answers (an ``errorMessage`` body) as Lambda's API errors."""
    error = _ERRORS.get(result.status_code)
    if error is None:
        return
    try:
        message = str(json.loads(result.payload)["errorMessage"])
    except (ValueError, KeyError, TypeError):
        message = result.payload.decode(errors="replace")
    raise error(message)


def caller(headers: Mapping[str, str], remote: str | None) -> tuple[str, str]:
    """Whom an Invoke is made for, as the function's event queue keys it: the access key of
    its SigV4 ``Authorization`` (``Credential=<key>/<date>/...``), else the peer address."""
    authorization = headers.get("Authorization", "")
    _, found, rest = authorization.partition("Credential=")
    if found:
        return ("invoke", rest.split("/", 1)[0].strip())
    return ("invoke-from", remote or "")


def add_routes(app: web.Application, functions: FunctionService) -> None:
    async def invoke(request: web.Request) -> web.Response:
        kind = parse_invocation_type(request.headers)
        payload = await read_body(request, RequestTooLarge)
        result = await functions.invoke(
            request.match_info["name"],
            payload or b"{}",
            kind,
            caller(request.headers, request.remote),
        )
        raise_for_status(result)
        return web.Response(
            status=result.status_code,
            body=result.payload,
            headers=invoke_headers(result, request.headers.get("X-Amz-Log-Type") == "Tail"),
            content_type="application/json",
        )

    app.router.add_post(
        "/2015-03-31/functions/{name}/invocations", aws_handler(invoke, ServiceError)
    )
