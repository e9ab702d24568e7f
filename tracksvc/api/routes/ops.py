"""
Operations routes: ``GET /readyz`` (Redis and each carrier's breaker) and
``GET /metrics`` (Prometheus text format).

``/readyz`` needs no key: load balancers probe it. It answers 503 only when
Redis cannot be reached (on a Redis Cluster: any master, as during a
failover), since the registry cannot resolve order numbers and replicas
lose their shared state; a carrier whose breaker is open does not
make the replica unready, since every replica shares that carrier and still
answers from the cache. ``/metrics`` needs no key either, because
Prometheus scrapes usually carry none; ``TRACKSVC_METRICS_REQUIRE_ADMIN=true``
asks for an admin key. Reasons name the kind of failure, never the
error's text: that carries Redis's host and port, which an unauthenticated
probe has no business learning.
"""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, BusyLoadingError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tracksvc.api.keys import redis_key, settings_key, tracker_key
from tracksvc.api.middlewares import requires
from tracksvc.core.metrics import CONTENT_TYPE

#: How long the readiness probe waits for Redis's PONG.
REDIS_PING_TIMEOUT_S = 1.0

#: What a failed PING says, by the kind of failure (first match; subclasses first).
REDIS_PROBLEMS: tuple[tuple[type[BaseException], str], ...] = (
    (AuthenticationError, "Redis refused the credentials"),
    (BusyLoadingError, "Redis is loading its data"),
    (RedisTimeoutError, "no answer from Redis"),
    (RedisConnectionError, "cannot connect to Redis"),
    (ResponseError, "Redis answered with an error"),
    (RedisError, "Redis client error"),
    (OSError, "network error"),
)


async def redis_status(request: web.Request) -> str | None:
    """None when Redis answers PING; else why not."""
    try:
        async with asyncio.timeout(REDIS_PING_TIMEOUT_S):
            redis = request.app[redis_key]
            if isinstance(redis, RedisCluster):
                # Every master: one that died leaves its slots unserved until a replica takes over.
                await redis.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                await redis.ping()
    except TimeoutError:
        return f"no answer to PING within {REDIS_PING_TIMEOUT_S:g} s"
    except (RedisError, OSError) as exc:
        # The exception's text names host and port: say only what kind of failure it was.
        phrase = next(p for kind, p in REDIS_PROBLEMS if isinstance(exc, kind))
        return f"{phrase} ({type(exc).__name__})"
    return None


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 ready, or 503 degraded naming what is wrong."""
    problem = await redis_status(request)
    carriers = request.app[tracker_key].breaker_states()
    body: dict[str, object] = {
        "status": "ready" if problem is None else "degraded",
        "redis": "ok" if problem is None else "unreachable",
        "carriers": carriers,
    }
    if problem is not None:
        body["reasons"] = [f"redis unreachable: {problem}"]
    return web.Response(
        status=200 if problem is None else 503,
        body=orjson.dumps(body),
        content_type="application/json",
    )


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: this app's metrics in the Prometheus text format."""
    tracker = request.app[tracker_key]
    tracker.breaker_states()  # an open breaker turns half-open with time: show it as it is now
    response = web.Response(body=tracker.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


@requires("admin")
async def admin_metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` when it asks for an admin key."""
    return await metrics(request)


def add_ops_routes(app: web.Application) -> None:
    """Register ``/readyz`` and ``/metrics``."""
    app.router.add_get("/readyz", readyz)
    require_admin = app[settings_key].metrics_require_admin
    app.router.add_get("/metrics", admin_metrics if require_admin else metrics)
