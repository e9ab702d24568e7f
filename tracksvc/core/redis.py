"""How tracksvc connects to Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

#: Connections per client; more concurrent commands wait for one (up to ``POOL_WAIT_S``).
MAX_CONNECTIONS = 100
POOL_WAIT_S = 2.0


def redis_client(url: str) -> aioredis.Redis:
    """
    A Redis client (pool) that fails fast: one quick retry, short timeouts.

    redis-py's default retries with backoff for seconds; a lookup must not
    wait that long when Redis is down, because the carriers can still answer.
    The pool reconnects by itself once Redis is back. It is a blocking pool:
    redis-py's plain pool raises "Too many connections" once 100 commands are
    in flight, which a burst of lookups reaches at once; here they queue for
    a connection instead.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=0.5,
        socket_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        health_check_interval=15,
    )
    return aioredis.Redis.from_pool(pool)
