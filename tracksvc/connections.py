"""How tracksvc connects to Redis."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff


def redis_client(url: str) -> aioredis.Redis:
    """
    A Redis client (pool) that fails fast: one quick retry, short timeouts.

    redis-py's default retries with backoff for seconds; a lookup must not
    wait that long when Redis is down, because the carriers can still answer.
    The pool reconnects by itself once Redis is back.
    """
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=0.5,
        socket_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        health_check_interval=15,
    )
