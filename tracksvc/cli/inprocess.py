"""The app run in-process for one CLI command: one lookup (``tracksvc track``), the refresher alone."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from aiohttp import web

from tracksvc.api.keys import notifier_key, refresher_key, service_key
from tracksvc.app import create_app
from tracksvc.core.errors import RequestError
from tracksvc.core.settings import Settings


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


async def run_standalone(settings: Settings, *, once: bool = False) -> dict[str, Any] | None:
    """
    ``tracksvc refresher``: the refresher (and the webhook sender) without the HTTP service.

    Args:
        settings: the service's settings (``refresher_enabled`` is implied).
        once: run one cycle and return its report, instead of running until SIGINT/SIGTERM.
    """
    app = create_app(settings.model_copy(update={"refresher_enabled": not once}))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # the cleanup contexts: Redis, carriers, webhooks, refresher
    try:
        if once:
            report = await app[refresher_key].run_cycle()
            await app[notifier_key].idle()
            return report.as_dict()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return None
    finally:
        await runner.cleanup()
