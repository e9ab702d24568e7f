"""
Writes confirmed by Redis replicas before they are acknowledged
(``TRACKSVC_REDIS_WRITE_REPLICAS``).

Redis's ``WAIT n timeout`` blocks until ``n`` replicas have received every
write *of the calling connection*; on a pooled client, or a cluster client
that spreads a request's writes over several masters and connections, the
connection that asks is not the one that wrote. So each master gets a
*barrier*: one small write of our own (``SET`` of a key of a slot that master
serves, expiring at once after) followed by ``WAIT`` on that same
connection, in one round trip. A master replicates in order, so a replica
that has the barrier has every write the master applied before it, ours
included (they were answered before the barrier was sent).

Every master is asked, not only those the request wrote to: a registry write
touches keys of many slots (records, references, the label indexes, the
refresh schedule), which on three masters means all of them in practice.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from tracksvc.core.redis import RedisClient, connection_race
from tracksvc.core.redis_bulk import exchange

#: Barrier keys (one per master; each lives a second).
BARRIER_PREFIX = "tracksvc:replicated:"
BARRIER_TTL_MS = 1000


async def confirmed_replicas(redis: RedisClient, replicas: int, timeout_s: float) -> int:
    """
    How many replicas confirmed every write this process made so far, at least, on every master.

    Waits up to ``timeout_s`` for ``replicas`` on each master (at once).

    Raises:
        redis.exceptions.RedisError: a master could not be asked (down, or moved).
    """
    timeout_ms = str(max(1, int(timeout_s * 1000)))
    if not isinstance(redis, RedisCluster):
        return await _barrier_on_server(redis, replicas, timeout_ms)
    await redis.initialize()
    masters = redis.get_primaries()
    counts = await asyncio.gather(
        *(_barrier_on_node(redis, node, replicas, timeout_ms) for node in masters), return_exceptions=True
    )
    found: list[int] = []
    for count in counts:
        if isinstance(count, BaseException):
            # A master that stopped answering: read the slot map again, so that once a
            # replica has taken over the next write asks the new master.
            with contextlib.suppress(RedisError, RedisClusterException, OSError):
                await redis.nodes_manager.initialize()
            raise count
        found.append(count)
    return min(found)


def _barrier_commands(key: str, replicas: int, timeout_ms: str) -> list[tuple[str, ...]]:
    return [
        ("SET", key, secrets.token_hex(4), "PX", str(BARRIER_TTL_MS)),
        ("WAIT", str(replicas), timeout_ms),
    ]


async def _barrier_on_server(redis: aioredis.Redis, replicas: int, timeout_ms: str) -> int:
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    try:
        replies = await exchange(conn, _barrier_commands(BARRIER_PREFIX + "server", replicas, timeout_ms))
    finally:
        await pool.release(conn)
    return _count(replies)


def _key_served_by(redis: RedisCluster, node: ClusterNode) -> str:
    """A barrier key whose slot ``node`` serves now."""
    for i in range(100_000):
        key = f"{BARRIER_PREFIX}{{{i}}}"
        if redis.nodes_manager.get_node_from_slot(redis.keyslot(key)).name == node.name:
            return key
    raise RedisError(f"no slot of the cluster is served by {node.name}")


async def _barrier_on_node(redis: RedisCluster, node: ClusterNode, replicas: int, timeout_ms: str) -> int:
    conn = node.acquire_connection()
    try:
        replies = await exchange(conn, _barrier_commands(_key_served_by(redis, node), replicas, timeout_ms))
    except AttributeError as exc:
        raise connection_race(exc) from exc
    finally:
        node.release(conn)
    return _count(replies)


def _count(replies: list[Any]) -> int:
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return int(replies[1])
