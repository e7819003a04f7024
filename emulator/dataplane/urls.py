"""The AWS IoT data plane's routes on the emulator's HTTP port (moto's ``urls.py``): the
operations boto3's ``iot-data`` client calls, as its API model spells their paths."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from emulator.awserrors import aws_handler
from emulator.dataplane.models import Broker, DataPlane
from emulator.dataplane.responses import DataPlaneResponses
from emulator.limits import PublishCheck


def add_routes(
    app: web.Application, broker: Broker, check: PublishCheck, now_ms: Callable[[], int]
) -> DataPlane:
    """Serve ``Publish``, ``GetRetainedMessage`` and ``ListRetainedMessages``; returns the
    model, for callers that publish without HTTP."""
    model = DataPlane(broker, check, now_ms)
    responses = DataPlaneResponses(model)
    app.router.add_post("/topics/{topic:.+}", aws_handler(responses.publish))
    app.router.add_get("/retainedMessage/{topic:.+}", aws_handler(responses.get_retained_message))
    app.router.add_get("/retainedMessage", aws_handler(responses.list_retained_messages))
    return model
