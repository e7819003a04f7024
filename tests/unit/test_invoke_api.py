"""The Lambda Invoke API's parsing and serializing, without a server: invocation types,
answer headers, and the model's error answers as Lambda's API errors."""

from __future__ import annotations

import base64
import json

import pytest

from emulator.functions.invoke_api import (
    InvalidParameterValue,
    ResourceNotFound,
    ServiceError,
    TooManyRequests,
    invoke_headers,
    parse_invocation_type,
    raise_for_status,
)
from emulator.functions.workers import InvokeResult


def error_body(message: str, kind: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": kind}).encode()


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({}, "RequestResponse"),
        ({"X-Amz-Invocation-Type": "Event"}, "Event"),
        ({"X-Amz-Invocation-Type": "DryRun"}, "DryRun"),
    ],
)
def test_invocation_types(headers: dict[str, str], kind: str) -> None:
    assert parse_invocation_type(headers) == kind


def test_an_unknown_invocation_type_is_an_invalid_parameter() -> None:
    with pytest.raises(InvalidParameterValue) as info:
        parse_invocation_type({"X-Amz-Invocation-Type": "Later"})
    error = info.value
    assert (error.code, error.status) == ("InvalidParameterValueException", 400)
    assert error.body() == {"Type": "User", "message": "invalid invocation type Later"}


def test_answer_headers() -> None:
    ok = InvokeResult(200, b"{}", None, "rid-1", "START\nEND\n")
    assert invoke_headers(ok, False) == {
        "X-Amz-Executed-Version": "$LATEST",
        "x-amzn-RequestId": "rid-1",
    }
    failed = InvokeResult(200, b"{}", "Unhandled", "rid-2", "x" * 5000 + "end")
    headers = invoke_headers(failed, True)
    assert headers["X-Amz-Function-Error"] == "Unhandled"
    tail = base64.b64decode(headers["X-Amz-Log-Result"])
    assert len(tail) == 4096 and tail.endswith(b"end")


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [
        (
            InvokeResult(404, error_body("Function not found: arn:x", "Resource"), None, ""),
            ResourceNotFound,
            "Function not found: arn:x",
        ),
        (
            InvokeResult(429, error_body("event queue is full", "TooMany"), None, ""),
            TooManyRequests,
            "event queue is full",
        ),
        (InvokeResult(404, b"not json", None, ""), ResourceNotFound, "not json"),
    ],
)
def test_error_answers_of_the_model(result: InvokeResult, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        raise_for_status(result)
    assert info.value.message == message


@pytest.mark.parametrize("status", [200, 202, 204])
def test_success_answers_pass(status: int) -> None:
    raise_for_status(InvokeResult(status, b"", None, ""))


def test_an_internal_failure_is_the_services_fault() -> None:
    error = ServiceError("internal error: no worker")
    assert (error.code, error.status) == ("ServiceException", 500)
    assert error.body() == {"Type": "Service", "message": "internal error: no worker"}
