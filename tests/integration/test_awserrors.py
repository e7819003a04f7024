"""The AWS error answers of emulator/awserrors.py over a real HTTP server: an ``AwsError``
keeps its code and status, an unexpected failure is logged and answered as the service's
internal error, an oversized body is the service's own too-large error."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from emulator.awserrors import AwsError, aws_handler, read_body


class Teapot(AwsError):
    code = "TeapotException"
    status = 418


class TooBig(AwsError):
    code = "TooBigException"
    status = 413


async def refuse(request: web.Request) -> web.Response:
    raise Teapot("short and stout")


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await read_body(request, TooBig))


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(client_max_size=1024)
    app.router.add_get("/refuse", aws_handler(refuse))
    app.router.add_get("/crash", aws_handler(crash))
    app.router.add_post("/echo", aws_handler(echo))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


async def test_an_aws_error_keeps_its_code_and_status(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/refuse")
    assert response.status == 418
    assert response.headers["x-amzn-ErrorType"] == "TeapotException"
    assert await response.json() == {"message": "short and stout"}


async def test_an_unexpected_failure_is_an_internal_error_logged_once(
    client: TestClient[web.Request, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="emulator.awserrors")
    response = await client.get("/crash")
    assert response.status == 500
    assert response.headers["x-amzn-ErrorType"] == "InternalFailureException"
    assert await response.json() == {"message": "internal error: a bug"}
    [record] = [r for r in caplog.records if r.name == "emulator.awserrors"]
    assert record.getMessage() == "GET /crash failed" and record.exc_info is not None


async def test_a_body_over_the_server_limit_is_the_services_error(
    client: TestClient[web.Request, web.Application],
) -> None:
    assert await (await client.post("/echo", data=b"x" * 1024)).read() == b"x" * 1024
    response = await client.post("/echo", data=b"x" * 1025)
    assert response.status == 413
    assert response.headers["x-amzn-ErrorType"] == "TooBigException"
    assert await response.json() == {"message": "request body over the limit of 1024 bytes"}
