"""Run the service's lookup in-process, for the CLI (``tracksvc track``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tracksvc.app import create_app
from tracksvc.errors import RequestError
from tracksvc.keys import service_key
from tracksvc.settings import Settings


async def track_once(settings: Settings, reference: str) -> dict[str, Any]:
    """The agent view of ``reference`` as a dict, or ``{"error": ...}``."""
    # One lookup and out: no background refresher cycle on the side.
    app = create_app(settings.model_copy(update={"refresher_enabled": False}))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # runs the cleanup contexts: Redis, HTTP session, carriers
    try:
        view = await app[service_key].track(reference)
        return view.model_dump(mode="json")
    except RequestError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}
    finally:
        await runner.cleanup()
