"""The AWS IoT data-plane HTTP API on the emulator's port: what ``boto3.client("iot-data")``
calls (Publish, GetRetainedMessage, ListRetainedMessages). Errors carry AWS's codes so
boto3 raises the same ``ClientError``."""

from __future__ import annotations

import base64
import time
from urllib.parse import unquote

from aiohttp import web

from emulator.broker.broker import IoTBroker
from emulator.messages import InboundMessage
from emulator.topics import validate_topic_name

MAX_PAYLOAD = 128 * 1024


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message}, status=status, headers={"x-amzn-ErrorType": code}
    )


def add_routes(app: web.Application, broker: IoTBroker) -> None:
    async def publish(request: web.Request) -> web.Response:
        topic = unquote(request.match_info["topic"])
        problem = validate_topic_name(topic)
        if problem:
            return _error(400, "InvalidRequestException", problem)
        if topic.startswith("$aws/events/"):
            return _error(403, "ForbiddenException", f"cannot publish to reserved topic {topic}")
        try:
            qos = int(request.query.get("qos", "0"))
        except ValueError:
            return _error(400, "InvalidRequestException", "qos must be 0 or 1")
        if qos not in (0, 1):
            return _error(400, "InvalidRequestException", "qos must be 0 or 1")
        payload = await request.read()
        if len(payload) > MAX_PAYLOAD:
            return _error(413, "RequestEntityTooLargeException", "payload over 128 KB")
        retain = request.query.get("retain", "false").lower() == "true"
        broker.publish(
            InboundMessage(
                topic=topic,
                payload=payload,
                qos=qos,
                retain=retain,
                timestamp_ms=int(time.time() * 1000),
            )
        )
        return web.json_response({})

    async def get_retained(request: web.Request) -> web.Response:
        topic = unquote(request.match_info["topic"])
        retained = broker.get_retained(topic)
        if retained is None:
            return _error(404, "ResourceNotFoundException", f"no retained message on {topic}")
        return web.json_response(
            {
                "topic": retained.topic,
                "payload": base64.b64encode(retained.payload).decode(),
                "qos": retained.qos,
                "lastModifiedTime": retained.last_modified_ms,
            }
        )

    async def list_retained(request: web.Request) -> web.Response:
        items = broker.list_retained()
        start = int(request.query.get("nextToken") or 0)
        size = int(request.query.get("maxResults") or 200)
        page = items[start : start + size]
        body: dict[str, object] = {
            "retainedTopics": [
                {
                    "topic": r.topic,
                    "payloadSize": len(r.payload),
                    "qos": r.qos,
                    "lastModifiedTime": r.last_modified_ms,
                }
                for r in page
            ]
        }
        if start + size < len(items):
            body["nextToken"] = str(start + size)
        return web.json_response(body)

    app.router.add_post("/topics/{topic:.+}", publish)
    app.router.add_get("/retainedMessage/{topic:.+}", get_retained)
    app.router.add_get("/retainedMessage", list_retained)
