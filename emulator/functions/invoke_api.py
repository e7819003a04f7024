"""The Lambda ``Invoke`` HTTP API on the emulator's port, so boto3's lambda client works:
``POST /2015-03-31/functions/{name}/invocations``."""

from __future__ import annotations

import base64

from aiohttp import web

from emulator.functions.service import FunctionService


def add_routes(app: web.Application, functions: FunctionService) -> None:
    async def invoke(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind not in ("RequestResponse", "Event", "DryRun"):
            return _error(400, "InvalidParameterValueException", f"invalid invocation type {kind}")
        payload = await request.read()
        result = await functions.invoke(name, payload or b"{}", kind)
        if result.status_code == 404:
            return _error(404, "ResourceNotFoundException", result.payload.decode())
        headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": result.request_id}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = base64.b64encode(
                result.log_tail.encode()[-4096:]
            ).decode()
        return web.Response(
            status=result.status_code,
            body=result.payload,
            headers=headers,
            content_type="application/json",
        )

    app.router.add_post("/2015-03-31/functions/{name}/invocations", invoke)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message}, status=status, headers={"x-amzn-ErrorType": code}
    )
