"""The chat page: ``/`` and ``/<room>`` (the page decodes and checks the room name), its
assets, and mqtt.js served from our own node_modules, so the page works offline (no CDN)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

MQTT_JS = ("mqtt", "dist", "mqtt.min.js")


def page_handler(static_dir: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The chat page's handler (also what the API's paths answer a browser: they are rooms)."""
    index = static_dir / "index.html"

    async def page(request: web.Request) -> web.StreamResponse:
        if not index.is_file():
            raise web.HTTPNotFound(text=f"no chat page at {index}")
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    return page


def add_routes(app: web.Application, static_dir: Path, node_modules: Path) -> None:
    mqtt_js = node_modules.joinpath(*MQTT_JS)
    page = page_handler(static_dir)

    async def vendor_mqtt(request: web.Request) -> web.StreamResponse:
        if not mqtt_js.is_file():
            raise web.HTTPNotFound(text="mqtt.js missing: run `npm install` (make install)")
        return web.FileResponse(mqtt_js)

    app.router.add_get("/vendor/mqtt.min.js", vendor_mqtt)
    app.router.add_static("/static/", static_dir, show_index=False)
    app.router.add_get("/", page)
    # Lowest priority: every other GET path is a room (registered after the APIs). A deeper
    # path gets the page too, which says why it is not a room (a plain 404 would not).
    app.router.add_get(r"/{room:[^/]+}", page)
    app.router.add_get(r"/{room:[^/]+}/{rest:.+}", page)
