"""The AWS IoT control plane's routes on the emulator's HTTP port (moto's ``urls.py``): the
operations boto3's ``iot`` client calls, as botocore's ``iot`` model spells their paths.

Every other path whose first segment is one of the ``iot`` API's (``/jobs``,
``/thing-groups``, ...: read from botocore's model) answers AWS's
``UnknownOperationException`` (404, JSON, ``x-amzn-ErrorType``), never the chat page, to
an API client. A browser opening such a path (a GET that accepts ``text/html`` and is not
signed) still gets the chat page: those names are rooms too.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import botocore.session
from aiohttp import web

from emulator.awserrors import Handler, aws_handler, error_response
from emulator.controlplane.exceptions import InternalFailure, UnknownOperation
from emulator.controlplane.responses import ControlPlaneResponses


def api_prefixes() -> frozenset[str]:
    """The first path segment of every operation of botocore's ``iot`` model."""
    model = botocore.session.get_session().get_service_model("iot")
    return frozenset(
        model.operation_model(name).http["requestUri"].split("?")[0].split("/")[1]
        for name in model.operation_names
    )


def is_browser_page(request: web.Request) -> bool:
    """A browser navigating to a room, not an SDK calling the API."""
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("Accept", "")
        and "Authorization" not in request.headers
    )


def add_routes(
    app: web.Application,
    responses: ControlPlaneResponses,
    after: Callable[[], Awaitable[None]],
    page: Handler | None = None,
) -> None:
    """Serve the control plane's operations; ``after`` runs after each successful one
    (the store's save); ``page`` answers browsers on paths that are also rooms."""
    r = responses

    def wrap(handler: Handler, single_segment: bool = False) -> Handler:
        answered = aws_handler(handler, InternalFailure)

        @functools.wraps(handler)
        async def handle(request: web.Request) -> web.StreamResponse:
            if single_segment and page is not None and is_browser_page(request):
                return await page(request)
            response = await answered(request)
            if response.status < 400:
                await after()
            return response

        return handle

    router = app.router
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/endpoint", r.describe_endpoint),
        ("POST", "/keys-and-certificate", r.create_keys_and_certificate),
        ("POST", "/certificates", r.create_certificate_from_csr),
        ("GET", "/certificates", r.list_certificates),
        ("POST", "/certificate/register", r.register_certificate),
        ("POST", "/certificate/register-no-ca", r.register_certificate_without_ca),
        ("GET", "/certificates/{certificateId}", r.describe_certificate),
        ("PUT", "/certificates/{certificateId}", r.update_certificate),
        ("DELETE", "/certificates/{certificateId}", r.delete_certificate),
        ("GET", "/policies", r.list_policies),
        ("POST", "/policies/{policyName}", r.create_policy),
        ("GET", "/policies/{policyName}", r.get_policy),
        ("DELETE", "/policies/{policyName}", r.delete_policy),
        ("POST", "/policies/{policyName}/version", r.create_policy_version),
        ("PUT", "/target-policies/{policyName}", r.attach_policy),
        ("POST", "/target-policies/{policyName}", r.detach_policy),
        ("POST", "/attached-policies/{target:.+}", r.list_attached_policies),
        ("POST", "/policy-targets/{policyName}", r.list_targets_for_policy),
        ("GET", "/things", r.list_things),
        ("POST", "/things/{thingName}", r.create_thing),
        ("GET", "/things/{thingName}", r.describe_thing),
        ("DELETE", "/things/{thingName}", r.delete_thing),
        ("PUT", "/things/{thingName}/principals", r.attach_thing_principal),
        ("DELETE", "/things/{thingName}/principals", r.detach_thing_principal),
        ("GET", "/things/{thingName}/principals", r.list_thing_principals),
        ("POST", "/test-authorization", r.test_authorization),
        ("GET", "/rules", r.list_topic_rules),
        ("POST", "/rules/{ruleName}", r.create_topic_rule),
        ("GET", "/rules/{ruleName}", r.get_topic_rule),
        ("PATCH", "/rules/{ruleName}", r.replace_topic_rule),
        ("DELETE", "/rules/{ruleName}", r.delete_topic_rule),
        ("POST", "/rules/{ruleName}/enable", r.enable_topic_rule),
        ("POST", "/rules/{ruleName}/disable", r.disable_topic_rule),
    ]
    for method, path, handler in routes:
        router.add_route(method, path, wrap(handler, path.count("/") == 1))

    async def unknown(request: web.Request) -> web.StreamResponse:
        if page is not None and is_browser_page(request):
            return await page(request)
        return error_response(
            UnknownOperation(f"no operation of the iot API at {request.method} {request.path}")
        )

    for prefix in sorted(api_prefixes()):
        router.add_route("*", f"/{prefix}", unknown)
        router.add_route("*", f"/{prefix}/{{rest:.*}}", unknown)
