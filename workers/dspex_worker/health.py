"""HTTP liveness/readiness endpoints for orchestrators (Kubernetes probes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

HEALTH_PATHS = {"live": "/healthz", "ready": "/readyz"}
DEFAULT_HEALTH_PORT = 8081


async def start_health_server(
    port: int, is_ready: Callable[[], bool], stats: Callable[[], dict[str, Any]]
) -> web.AppRunner:
    from aiohttp import web  # here: only a worker with a health port pays for importing aiohttp's server

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_: web.Request) -> web.Response:
        ok = is_ready()
        return web.json_response({"ready": ok, **stats()}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get(HEALTH_PATHS["live"], live)
    app.router.add_get(HEALTH_PATHS["ready"], ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
