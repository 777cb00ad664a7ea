"""The console's aiohttp application: the API, the live feed and the control-room page.

``estate up --http HOST:PORT`` (wired in ``estate/``) does, with its running stack::

    app = build_app(projections, event_log, index, TokenStore.in_data_dir(data_dir),
                    ConsoleOptions(grafana_url=...), metric_providers=[...],
                    deliveries=...)
    runner = await serve(app, host, port)
    ...
    await runner.cleanup()

``build_app`` registers a listener on the projections (removed on cleanup): the
projections must be running (``Projections.run``) for alerts to move and commands to
show their outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Final

import orjson
from aiohttp import web

from console.api import EXTRA_MODELS, api
from console.auth import make_authenticate
from console.context import CONSOLE, Console, ConsoleOptions, DeliveryStatusSource
from console.feed import Feed
from console.http import JSON, problems_middleware
from console.metrics import LogMetrics, MetricProvider
from console.openapi import document
from console.tokens import TokenStore
from devices.registry import RegistryIndex
from eventlog.log import EventLog
from processors.projections import Projections

__all__ = ["ConsoleOptions", "build_app", "serve"]

STATIC: Final = Path(__file__).resolve().parent / "static"
#: Security headers of every response: no framing, no sniffing, only our own assets.
HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


@web.middleware
async def headers_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        response.headers.update(HEADERS)
    return response


def build_app(
    projections: Projections,
    event_log: EventLog,
    index: RegistryIndex,
    tokens: TokenStore,
    options: ConsoleOptions | None = None,
    *,
    metric_providers: Iterable[MetricProvider] = (),
    deliveries: DeliveryStatusSource | None = None,
) -> web.Application:
    """The console application over running projections (see the module docstring)."""
    options = options or ConsoleOptions()
    feed = Feed(projections, index, options.sse_heartbeat_s)
    console = Console(
        projections=projections,
        log=event_log,
        index=index,
        tokens=tokens,
        options=options,
        feed=feed,
        metric_providers=[LogMetrics(event_log, projections), *metric_providers],
        deliveries=deliveries,
    )
    app = web.Application(middlewares=[headers_middleware, problems_middleware])
    app[CONSOLE] = console
    spec = orjson.dumps(document(api.operations, EXTRA_MODELS))  # the routes' own table

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=spec, content_type=JSON)

    async def page(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_routes(api.routes(make_authenticate(console)))
    app.router.add_get("/", page)
    app.router.add_static("/static/", STATIC, follow_symlinks=False, append_version=False)

    async def start(app: web.Application) -> None:
        feed.loop = asyncio.get_running_loop()
        projections.listeners.append(feed.on_alert_event)

    async def shutdown(app: web.Application) -> None:
        feed.close()

    async def cleanup(app: web.Application) -> None:
        if feed.on_alert_event in projections.listeners:
            projections.listeners.remove(feed.on_alert_event)
        feed.loop = None

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving ``app``; stop with ``await runner.cleanup()``."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a runner listens on (``serve(app, host, 0)`` picks a free one)."""
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the runner listens on no TCP port")
