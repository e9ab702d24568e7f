"""The app run in-process for one CLI command: one lookup (``tracksvc track``), the refresher alone."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from aiohttp import web

from tracksvc.api.keys import notifier_key, refresher_key, service_key
from tracksvc.app import create_app
from tracksvc.core.settings import Settings
from tracksvc.domain.views import TrackView


async def track_once(settings: Settings, reference: str) -> TrackView:
    """
    The agent view of ``reference``, from an app started for this one lookup.

    Raises:
        RequestError: the reference is invalid or not found (the HTTP route's 4xx).
        RegistryUnavailable: Redis could not be read and the reference is no carrier's number.
    """
    # One lookup and out: no background refresher cycle on the side.
    app = create_app(settings.model_copy(update={"refresher_enabled": False}))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # runs the cleanup contexts: Redis, HTTP session, carriers
    try:
        return await app[service_key].track(reference)
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
