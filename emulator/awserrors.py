"""Errors of the AWS REST-JSON APIs the emulator serves (IoT data plane, Lambda Invoke), as
exceptions that carry AWS's error code and HTTP status, and their answer on the wire.

boto3 takes the error code from the ``x-amzn-ErrorType`` header and the message from the
JSON body, so a client sees the same ``ClientError`` (code, message, HTTP status) as
against AWS. Models raise these errors; the response layer turns them into answers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import ClassVar

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AwsError(Exception):
    """An error answer: subclasses name the AWS error code and the HTTP status."""

    code: ClassVar[str] = "InternalFailureException"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, str]:
        """The JSON error body (services add fields: Lambda's ``Type``)."""
        return {"message": self.message}


def error_response(error: AwsError) -> web.Response:
    return web.json_response(
        error.body(), status=error.status, headers={"x-amzn-ErrorType": error.code}
    )


def aws_handler(handler: Handler, internal: Callable[[str], AwsError] = AwsError) -> Handler:
    """A route handler whose ``AwsError`` becomes the AWS-shaped error answer, and whose
    unexpected failure is logged once and answered as the service's internal error (500,
    which AWS SDKs retry), not as aiohttp's plain-text page without an error code."""

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AwsError as error:
            return error_response(error)
        except web.HTTPException:
            raise  # an answer aiohttp gives on purpose (a redirect, ...)
        except Exception as exc:  # a request's boundary: the server goes on
            log.exception("%s %s failed", request.method, request.path)
            return error_response(internal(f"internal error: {exc}"))

    return handle


async def read_body(request: web.Request, too_large: Callable[[str], AwsError]) -> bytes:
    """The request body; over the HTTP server's size limit, the service's own error
    (aiohttp would answer a bare 413 without an AWS error code)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large(f"request body over the limit of {request.client_max_size} bytes") from exc
