"""How tracksvc connects to Redis."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

#: Connections per client; more concurrent commands wait for one (up to ``POOL_WAIT_S``).
MAX_CONNECTIONS = 100
POOL_WAIT_S = 2.0


class Connection(aioredis.Connection):
    """
    redis-py's connection, minus a task per command.

    With ``socket_timeout`` set, redis-py (on Python 3.11) wraps every send in
    ``asyncio.wait_for``, which starts a task per command: a tenth of a cold
    lookup's CPU. A send only puts a few hundred bytes in the transport's
    buffer (it waits only past 64 KiB unsent, and the kernel takes far more
    first), so it goes out without the timer; reads keep ``socket_timeout``,
    and that is where a Redis that stopped answering is noticed.
    """

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        # Connecting and the health check read answers: they keep the timeout.
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        timeout, self.socket_timeout = self.socket_timeout, None
        try:
            await super().send_packed_command(command, check_health=False)
        finally:
            self.socket_timeout = timeout


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
        connection_class=Connection,
        retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
        health_check_interval=15,
    )
    return aioredis.Redis.from_pool(pool)
