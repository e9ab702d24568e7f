"""
The service's background work, one cleanup context each: the webhook
notifier and sender, and the refresher (when ``refresher_enabled``).

Both run in every replica; they coordinate through Redis (claims and
leases), so running more replicas never doubles the work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from tracksvc.api.keys import (
    notifier_key,
    redis_key,
    refresher_key,
    registry_key,
    service_key,
    settings_key,
    tracker_key,
    webhook_sender_key,
)
from tracksvc.core.tasks import cancel_and_wait
from tracksvc.freshness.refresher import Refresher
from tracksvc.freshness.webhooks import Notifier, WebhookSender, WebhookStore, webhook_session


async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Subscriptions: the listener and its workers, and the outbox sender with its own HTTP session."""
    settings = app[settings_key]
    session = webhook_session(settings)  # names resolved through the SSRF guard
    store = WebhookStore(app[redis_key])
    notifier = Notifier(store, app[service_key], app[registry_key], settings)
    sender = WebhookSender(store, session, settings, notifier.secret_for)
    notifier.on_enqueued = sender.wake
    app[tracker_key].add_listener(notifier.on_answer)
    app[notifier_key] = notifier
    app[webhook_sender_key] = sender
    notifier.start()
    sending = asyncio.create_task(sender.run())
    yield
    await cancel_and_wait(sending)
    await notifier.stop()
    await session.close()


async def refresher_ctx(app: web.Application) -> AsyncIterator[None]:
    """The refresher (always built, so one cycle can be driven; run in the background when enabled)."""
    settings = app[settings_key]
    tracker = app[tracker_key]
    refresher = Refresher(
        registry=app[registry_key],
        tracker=tracker,
        service=app[service_key],
        redis=app[redis_key],
        settings=settings,
        lag_gauge=tracker.metrics.refresher_lag_seconds,
        after_cycle=[app[notifier_key].sweep],
    )
    app[refresher_key] = refresher
    running = asyncio.create_task(refresher.run()) if settings.refresher_enabled else None
    yield
    await cancel_and_wait(running)


def add_background_tasks(app: web.Application) -> None:
    """Register the background contexts (after the tracker's: they use it)."""
    app.cleanup_ctx.extend([webhooks_ctx, refresher_ctx])
