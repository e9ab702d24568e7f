"""
HTTP handlers: thin. Read the input, call the service, answer JSON.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel

from tracksvc.keys import service_key
from tracksvc.middlewares import requires


def json_response(model: BaseModel | dict[str, Any], status: int = 200) -> web.Response:
    """Serialize a view model (or a plain dict) with orjson."""
    payload = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@requires("agent")
async def track_reference(request: web.Request) -> web.Response:
    """``GET /v1/track/{reference}``: the agent view of any reference."""
    view = await request.app[service_key].track(request.match_info["reference"])
    return json_response(view)


def add_routes(app: web.Application) -> None:
    """Register every route of the service."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/track/{reference}", track_reference)
