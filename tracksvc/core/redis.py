"""How tracksvc connects to Redis: one server, or a Redis Cluster through one startup node."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError

#: Connections per client; more concurrent commands wait for one (up to ``POOL_WAIT_S``).
MAX_CONNECTIONS = 100
POOL_WAIT_S = 2.0
#: Connections per cluster node. redis-py's cluster pool does not queue for a free
#: connection (it raises), so it gets room for a burst of lookups on one node.
CLUSTER_MAX_CONNECTIONS_PER_NODE = 1000
#: Tries after a failed cluster command (each re-reads the slot map first: a failover).
CLUSTER_RETRIES = 2

#: A client of either kind: every tracksvc module takes this.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster

#: Commands a :class:`BatchingRedis` sends on their own: they block, or change the state of
#: the connection they run on.
SENT_ALONE = frozenset({
    "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
    "XREAD", "XREADGROUP", "WAIT", "WAITAOF", "WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD",
    "SELECT", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "CLIENT", "AUTH", "HELLO",
    "RESET", "QUIT", "SHUTDOWN", "DEBUG",
})

#: One queued command: its arguments, its options, and who awaits its reply.
_Queued = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


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


class BatchingRedis(aioredis.Redis):
    """
    redis-py's one-server client, whose commands issued in one turn of the event loop
    go out together: one pipeline (one write, one read) instead of a round trip each.

    A burst of lookups starts its Redis steps in the same turn (the requests arrived
    together, their replies come back together); on loopback each socket write costs
    tens of microseconds of CPU, most of a small command's price, so sharing the writes
    is what lets the service keep up with the carriers' latency rather than its own.

    Each command keeps its own outcome: its reply, or the error Redis gave *it* (a
    pipeline without MULTI: not atomic, as separate commands are not). Connection
    trouble fails the whole batch, each command as it would have failed alone (the
    pipeline retries as the client's ``Retry`` says, like a single command). A caller
    that stops waiting (its Redis budget ran out) leaves the others' batch alone.
    A command that came alone in its turn goes out as redis-py sends it; commands that
    block or change their connection's state (:data:`SENT_ALONE`) always do.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queued: list[_Queued] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.single_connection_client or str(args[0]).split(" ", 1)[0].upper() in SENT_ALONE:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if self._queued is None:
            self._queued = []
            loop.call_soon(self._send_queued)  # after every task this turn has woken
        self._queued.append((args, options, reply))
        return await reply

    def _send_queued(self) -> None:
        queued, self._queued = self._queued or [], None
        task = asyncio.get_running_loop().create_task(self._send(queued))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[_Queued]) -> None:
        waiting = [item for item in queued if not item[2].done()]  # cancelled meanwhile: not sent
        if not waiting:
            return
        try:
            if len(waiting) == 1:
                args, options, _ = waiting[0]
                replies = [await super().execute_command(*args, **options)]  # type: ignore[no-untyped-call]
            else:
                pipe = self.pipeline(transaction=False)
                for args, options, _ in waiting:
                    pipe.pipeline_execute_command(*args, **options)  # type: ignore[no-untyped-call]
                replies = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _, _, reply in waiting:
                reply.cancel()
            raise
        except Exception as exc:  # connection trouble (or a lone command's own error): everyone's
            for _, _, reply in waiting:
                if not reply.done():
                    reply.set_exception(exc)
            return
        for (_, _, reply), value in zip(waiting, replies, strict=True):
            if reply.done():
                continue
            if isinstance(value, ResponseError):
                reply.set_exception(value)
            else:
                reply.set_result(value)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Let the batches on their way end, then close as redis-py does."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await super().aclose(close_connection_pool)


class ClusterClient(RedisCluster):
    """
    redis-py's cluster client, whose "cannot reach the cluster" is a :class:`RedisError`.

    redis-py raises :class:`~redis.exceptions.RedisClusterException` (not a
    ``RedisError``) when no startup node answers while it reads the slot map;
    every tracksvc step falls back on ``RedisError`` (a carrier answer, a 503),
    so here that becomes the ``ConnectionError`` it is.
    """

    async def initialize(self, *args: Any, **kwargs: Any) -> ClusterClient:
        try:
            await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster not reachable: {exc}") from exc
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except AttributeError as exc:
            raise connection_race(exc) from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused by redis-py, as it should be
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py builds its own


class _ClusterPipeline(ClusterPipeline):
    """redis-py's cluster pipeline, with :func:`connection_race` as a ``ConnectionError``."""

    async def execute(self, *args: Any, **kwargs: Any) -> list[Any]:
        try:
            return await super().execute(*args, **kwargs)
        except AttributeError as exc:
            raise connection_race(exc) from exc


def connection_race(exc: AttributeError) -> RedisConnectionError:
    """
    redis-py (8.1) can close a cluster node's idle connections after a failed command
    while another task is opening one of them (``'NoneType' object has no attribute
    'writelines'``): for the caller, the connection failed, which it did.
    """
    return RedisConnectionError(f"Redis connection closed under a command during a failover ({exc})")


def redis_client(url: str, *, cluster: bool = False) -> RedisClient:
    """
    A Redis client (pool) that fails fast: one quick retry, short timeouts.

    redis-py's default retries with backoff for seconds; a lookup must not
    wait that long when Redis is down, because the carriers can still answer.
    The pool reconnects by itself once Redis is back. Commands issued in the same turn of
    the event loop share one round trip (:class:`BatchingRedis`). It is a blocking pool:
    redis-py's plain pool raises "Too many connections" once 100 commands are
    in flight, which a burst of lookups reaches at once; here they queue for
    a connection instead.

    With ``cluster``, ``url`` names one node of a Redis Cluster: the client
    reads the slot map from it and sends each command to the master owning
    its key's slot, re-reading the map after a failover (a MOVED answer or a
    node that stopped answering).
    """
    if cluster:
        return ClusterClient.from_url(
            url,
            max_connections=CLUSTER_MAX_CONNECTIONS_PER_NODE,
            socket_connect_timeout=0.5,
            socket_timeout=2.0,
            retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), CLUSTER_RETRIES),
            health_check_interval=15,
        )
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
    return BatchingRedis.from_pool(pool)


async def open_pubsub(redis: RedisClient, *, reread_slots: bool = False) -> PubSub:
    """
    A pub/sub connection of ``redis`` (not yet subscribed).

    On a cluster the client reads the slot map first: redis-py's cluster pub/sub
    picks its node by the channel's slot and fails on a client that has not
    sent a command yet. A classic ``PUBLISH`` reaches every node of a cluster,
    so listening on any one node hears every replica's messages.

    Args:
        reread_slots: read the cluster's slot map again first (after the node a
            subscription was on failed, so the next one goes to its successor
            even when no other command has noticed the failover yet).

    Raises:
        redis.exceptions.RedisError: the cluster could not be reached.
    """
    if isinstance(redis, RedisCluster):
        await redis.initialize()
        if reread_slots:
            try:
                await redis.nodes_manager.initialize()
            except RedisClusterException as exc:
                raise RedisConnectionError(f"Redis Cluster not reachable: {exc}") from exc
    return redis.pubsub()
