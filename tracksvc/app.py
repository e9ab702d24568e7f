"""
The application factory: settings in, an aiohttp app out. Each resource has
its own cleanup context, registered in dependency order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from carriers.adapters import REGISTRY
from tracksvc.api.background import add_background_tasks
from tracksvc.api.keys import http_key, redis_key, registry_key, service_key, settings_key, tracker_key
from tracksvc.api.middlewares import (
    context_middleware,
    error_middleware,
    make_auth_middleware,
    make_body_limit_middleware,
    make_replicated_writes_middleware,
)
from tracksvc.api.routes.batch import add_batch_routes
from tracksvc.api.routes.ops import add_ops_routes
from tracksvc.api.routes.portal import add_portal_routes
from tracksvc.api.routes.push import add_push_routes
from tracksvc.api.routes.track import add_routes
from tracksvc.api.routes.warehouse import add_warehouse_routes
from tracksvc.api.ui.pages import add_ui_routes
from tracksvc.core.redis import redis_client
from tracksvc.core.settings import Settings
from tracksvc.core.tasks import cancel_and_wait
from tracksvc.economy.cache import TrackingCache
from tracksvc.economy.tracker import Tracker
from tracksvc.registry.store import Registry
from tracksvc.service.answers import AnswerCache
from tracksvc.service.lookup import TrackService

log = structlog.get_logger("app")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The most the start waits to read a Redis Cluster's slot map.
STARTUP_SLOT_MAP_S = 2.0

#: Routes that stream their body and bound it themselves (the import: in rows), so they
#: take bodies of any size; every other route reads at most ``TRACKSVC_MAX_BODY_BYTES``.
STREAMING_ROUTES = frozenset({("POST", "/v1/shipments/import")})


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """One Redis client (pool) for the app."""
    settings = app[settings_key]
    client = redis_client(settings.redis_url or DEFAULT_REDIS_URL, cluster=settings.redis_cluster)
    app[redis_key] = client
    if isinstance(client, RedisCluster):
        # Read the slot map before the first requests: a burst arriving while the client
        # reads it can stall a command until its socket timeout. An unreachable cluster
        # does not stop the start (carrier numbers are answered without Redis); the
        # client reads the map on its first command instead.
        try:
            async with asyncio.timeout(STARTUP_SLOT_MAP_S):
                await client.initialize()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("redis_cluster_not_reachable_at_start", error=str(exc))
    yield
    await app[redis_key].aclose()


async def http_session_ctx(app: web.Application) -> AsyncIterator[None]:
    """One client session for every carrier call, with explicit timeouts."""
    settings = app[settings_key]
    timeout = aiohttp.ClientTimeout(
        total=settings.carrier_timeout_s, sock_connect=settings.carrier_connect_timeout_s
    )
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100)
    app[http_key] = aiohttp.ClientSession(timeout=timeout, connector=connector)
    yield
    await app[http_key].close()


async def tracker_ctx(app: web.Application) -> AsyncIterator[None]:
    """The carrier adapters, the cache and the tracker over them."""
    settings = app[settings_key]
    adapters = {
        carrier: adapter_cls(app[http_key], settings.carrier(carrier))
        for carrier, adapter_cls in REGISTRY.items()
    }
    cache = TrackingCache.from_settings(app[redis_key], settings)
    app[tracker_key] = Tracker.from_settings(adapters, cache, app[redis_key], settings)
    answers = AnswerCache(
        ttl_s=settings.answer_cache_ttl_s, max_entries=settings.answer_cache_max_entries, redis=app[redis_key]
    )
    app[registry_key] = Registry(app[redis_key], on_change=answers.drop)
    app[service_key] = TrackService(app[tracker_key], settings, app[registry_key], answers=answers)
    heard = app[service_key].heard
    listening = asyncio.create_task(answers.listen(heard=heard)) if settings.answer_cache_ttl_s > 0 else None
    yield
    await cancel_and_wait(listening)
    await app[tracker_key].aclose()


def create_app(settings: Settings | None = None) -> web.Application:
    """Build the tracksvc app from ``settings`` (the environment by default)."""
    settings = settings or Settings()
    app = web.Application(
        middlewares=[
            context_middleware,  # outermost: the request id is on every answer, errors included
            error_middleware,
            make_body_limit_middleware(settings.max_body_bytes, STREAMING_ROUTES),
            make_auth_middleware(settings.api_keys),
            *(
                [make_replicated_writes_middleware(
                    lambda request: request.app[redis_key],
                    settings.redis_write_replicas, settings.redis_write_replicas_timeout_s,
                )]
                if settings.redis_write_replicas else []
            ),
        ],
        client_max_size=settings.max_body_bytes,
    )
    app[settings_key] = settings
    app.cleanup_ctx.extend([redis_ctx, http_session_ctx, tracker_ctx])
    add_background_tasks(app)  # after tracker_ctx: the refresher and webhooks use it
    add_routes(app)
    add_ops_routes(app)
    add_batch_routes(app)
    add_portal_routes(app)
    add_ui_routes(app)
    add_push_routes(app)
    add_warehouse_routes(app)
    return app
