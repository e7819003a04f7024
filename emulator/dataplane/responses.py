"""The AWS IoT data plane on the wire (moto's ``responses.py``): parse the HTTP requests
boto3's ``iot-data`` client sends, call the model, serialize its answers.

The parsers are plain functions of strings, so they are tested without a server. The
topic comes from the path already percent-decoded by aiohttp's router (decoding it again
would turn a topic ``a%41`` into ``aA``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from aiohttp import web

from emulator.awserrors import read_body
from emulator.dataplane.exceptions import InvalidRequest, RequestEntityTooLarge
from emulator.dataplane.models import (
    MAX_RESULTS,
    DataPlane,
    Mqtt5Headers,
    Retained,
    RetainedPage,
)

Json = dict[str, object]


def parse_qos(query: Mapping[str, str]) -> int:
    """``qos``: 0 (the default) or 1; the model refuses other numbers."""
    text = query.get("qos") or "0"
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(f"qos must be 0 or 1, not {text!r}") from None


def parse_retain(query: Mapping[str, str]) -> bool:
    """``retain``: ``true`` or ``false`` (the default), as botocore writes a boolean."""
    text = (query.get("retain") or "false").lower()
    if text not in ("true", "false"):
        raise InvalidRequest(f"retain must be true or false, not {text!r}")
    return text == "true"


def parse_mqtt5(headers: Mapping[str, str], query: Mapping[str, str]) -> Mqtt5Headers:
    """``Publish``'s MQTT 5 properties: ``x-amz-mqtt5-user-properties`` (base64 of a JSON
    array of one-pair objects, as botocore writes a ``jsonvalue`` header),
    ``x-amz-mqtt5-payload-format-indicator``, ``x-amz-mqtt5-correlation-data`` (base64),
    and ``contentType``, ``responseTopic``, ``messageExpiry`` in the query."""
    users: tuple[tuple[str, str], ...] = ()
    raw = headers.get("x-amz-mqtt5-user-properties")
    if raw:
        try:
            pairs = json.loads(base64.b64decode(raw, validate=True))
            if not isinstance(pairs, list) or not all(
                isinstance(pair, dict) and all(isinstance(v, str) for v in pair.values())
                for pair in pairs
            ):
                raise ValueError("not an array of objects of strings")
            users = tuple((k, v) for pair in pairs for k, v in pair.items())
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(
                "x-amz-mqtt5-user-properties must be base64 of a JSON array of "
                f'objects such as [{{"deviceName":"alpha"}}]: {exc}'
            ) from None
    correlation = None
    text = headers.get("x-amz-mqtt5-correlation-data")
    if text:
        try:
            correlation = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("x-amz-mqtt5-correlation-data must be base64") from None
    expiry = None
    if query.get("messageExpiry"):
        try:
            expiry = int(query["messageExpiry"])
        except ValueError:
            raise InvalidRequest(
                f"messageExpiry must be a number, not {query['messageExpiry']!r}"
            ) from None
    return Mqtt5Headers(
        users,
        headers.get("x-amz-mqtt5-payload-format-indicator") or None,
        query.get("contentType") or None,
        query.get("responseTopic") or None,
        correlation,
        expiry,
    )


def parse_paging(query: Mapping[str, str]) -> tuple[int, str | None]:
    """``maxResults`` (a number; the model checks its range) and ``nextToken``."""
    text = query.get("maxResults") or str(MAX_RESULTS)
    try:
        max_results = int(text)
    except ValueError:
        raise InvalidRequest(f"maxResults must be a number, not {text!r}") from None
    return max_results, query.get("nextToken") or None


def retained_message_body(message: Retained) -> Json:
    """``GetRetainedMessage``'s answer; the payload is base64 (a blob in the API model)."""
    body: Json = {
        "topic": message.topic,
        "payload": base64.b64encode(message.payload).decode(),
        "qos": message.qos,
        "lastModifiedTime": message.last_modified_ms,
    }
    props = message.properties
    if props is not None and props.user_properties:
        # A blob in the API model: the JSON array of one-pair objects, in base64.
        users = json.dumps([{k: v} for k, v in props.user_properties], separators=(",", ":"))
        body["userProperties"] = base64.b64encode(users.encode()).decode()
    return body


def retained_page_body(page: RetainedPage) -> Json:
    """``ListRetainedMessages``' answer: summaries without payloads, and the next token."""
    body: Json = {
        "retainedTopics": [
            {
                "topic": m.topic,
                "payloadSize": len(m.payload),
                "qos": m.qos,
                "lastModifiedTime": m.last_modified_ms,
            }
            for m in page.messages
        ]
    }
    if page.next_token is not None:
        body["nextToken"] = page.next_token
    return body


class DataPlaneResponses:
    """The route handlers: each parses, calls ``DataPlane`` and serializes. Errors are
    ``AwsError``s, answered by the ``aws_handler`` wrapper that urls.py puts around each."""

    __slots__ = ("model",)

    def __init__(self, model: DataPlane) -> None:
        self.model = model

    async def publish(self, request: web.Request) -> web.Response:
        topic = request.match_info["topic"]
        qos = parse_qos(request.query)
        retain = parse_retain(request.query)
        payload = await read_body(request, RequestEntityTooLarge)
        headers = parse_mqtt5(request.headers, request.query)
        self.model.publish(topic, payload, qos, retain, request.remote, headers)
        return web.json_response({})

    async def get_retained_message(self, request: web.Request) -> web.Response:
        message = self.model.get_retained_message(request.match_info["topic"])
        return web.json_response(retained_message_body(message))

    async def list_retained_messages(self, request: web.Request) -> web.Response:
        max_results, next_token = parse_paging(request.query)
        page = self.model.list_retained_messages(max_results, next_token)
        return web.json_response(retained_page_body(page))
