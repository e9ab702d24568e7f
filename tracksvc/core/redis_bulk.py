"""
Many Redis commands in one round trip, for the bulk paths (the import, batch reads).

redis-py's ``Pipeline`` spends most of its time in Python per command
(packing the arguments, a response callback per reply): on loopback it
manages about 30,000 commands a second, several times less than the
server. :func:`send_all` packs the whole batch with hiredis (C), writes it
at once on one pooled connection and reads the raw replies back, which
roughly triples the rate. Like a pipeline without MULTI it is not atomic;
each command names one key (or, for ``EVAL``, keys of one slot), so it suits
Redis Cluster's slot rules the same way. Replies are not post-processed: ``GET`` gives bytes (or str when the
client decodes responses), integers stay integers.

Errors match the pipeline's: connection trouble raises
:class:`redis.exceptions.ConnectionError` or ``TimeoutError`` (retried as
the client's ``Retry`` says, the connection dropped in between, so callers
only send idempotent commands), and a command the server refuses raises its
:class:`~redis.exceptions.ResponseError` once every reply has been read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tracksvc.core.redis import RedisClient, connection_race

#: One command: its name and arguments (numbers already turned into text).
Command = tuple[str | bytes, ...]

#: Commands written per socket write (bounds the memory of one packed chunk).
CHUNK_COMMANDS = 10_000
#: Commands that name no key: on a cluster, sent to any node after the others.
KEYLESS = frozenset({"PUBLISH", "PING"})
#: Tries of a batch on a cluster (each after reading the slot map again).
CLUSTER_TRIES = 2
#: Replies read between two extensions of the read deadline (the socket timeout).
REPLIES_PER_TIMER = 256


def score(value: float) -> str:
    """A sorted-set score as redis-py would send it (``repr`` keeps every digit)."""
    return repr(float(value))


async def send_all(redis: RedisClient, commands: Sequence[Command]) -> list[Any]:
    """
    Send every command and return every reply, in order.

    On a Redis Cluster the commands are grouped by the master owning each
    one's key and sent to the masters at once, one connection each (a
    command's keys must share one slot); keyless ones (``PUBLISH``) go last,
    once the others have been answered. A node that moved its slots or
    stopped answering makes the client read the slot map again and send the
    batch once more.

    Raises:
        redis.exceptions.RedisError: the connection failed (after the client's
            retries) or the server refused a command.
    """
    if not commands:
        return []
    if isinstance(redis, RedisCluster):
        replies = await _send_to_cluster(redis, commands)
    else:
        replies = await _send_to_server(redis, commands)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


async def _send_to_server(redis: aioredis.Redis, commands: Sequence[Command]) -> list[Any]:
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    try:
        replies: list[Any] = await conn.retry.call_with_retry(
            lambda: exchange(conn, commands),
            lambda _error: conn.disconnect(),
        )
    finally:
        await pool.release(conn)
    return replies


def command_keys(command: Command) -> list[str | bytes]:
    """The keys one command names (the commands :func:`send_all` is given)."""
    name = command[0].upper() if isinstance(command[0], str) else command[0].decode().upper()
    if name in KEYLESS:
        return []
    if name in ("EVAL", "EVALSHA"):
        return list(command[3:3 + int(command[2])])
    return [command[1]]


async def _send_to_cluster(redis: RedisCluster, commands: Sequence[Command]) -> list[Any]:
    await redis.initialize()
    for attempt in range(CLUSTER_TRIES):
        try:
            return await _send_by_node(redis, commands)
        except (MovedError, AskError, TryAgainError, ClusterDownError, RedisConnectionError):
            if attempt == CLUSTER_TRIES - 1:
                raise
            try:  # a failover or a reshard: read the slot map again
                await redis.nodes_manager.initialize()
            except RedisClusterException as exc:
                raise RedisConnectionError(f"Redis Cluster not reachable: {exc}") from exc
    raise AssertionError("unreachable")


async def _send_by_node(redis: RedisCluster, commands: Sequence[Command]) -> list[Any]:
    groups: dict[str, tuple[ClusterNode, list[int]]] = {}
    keyless: list[int] = []
    for i, command in enumerate(commands):
        keys = command_keys(command)
        if not keys:
            keyless.append(i)
            continue
        slots = {redis.keyslot(key) for key in keys}
        if len(slots) > 1:
            raise ValueError(f"{command[0]!r} names keys of {len(slots)} slots")
        node = redis.nodes_manager.get_node_from_slot(slots.pop())
        groups.setdefault(node.name, (node, []))[1].append(i)
    replies: list[Any] = [None] * len(commands)

    async def run(node: ClusterNode, indexes: list[int]) -> None:
        conn = node.acquire_connection()
        try:
            got = await exchange(conn, [commands[i] for i in indexes])
        except AttributeError as exc:
            raise connection_race(exc) from exc
        finally:
            node.release(conn)
        for i, reply in zip(indexes, got, strict=True):
            replies[i] = reply

    outcomes = await asyncio.gather(*(run(n, ix) for n, ix in groups.values()), return_exceptions=True)
    failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failed is not None:
        raise failed
    for reply in replies:
        if isinstance(reply, (MovedError, AskError, TryAgainError, ClusterDownError)):
            raise reply
    if keyless:
        await run(redis.get_default_node(), keyless)
    return replies


async def exchange(conn: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
    """
    Send ``commands`` on one connection and read every reply (a refusal is returned, not raised).

    The connection is dropped (never handed back half-read) when anything fails.
    """
    replies: list[Any] = []
    loop = asyncio.get_running_loop()
    limit = conn.socket_timeout
    try:
        for start in range(0, len(commands), CHUNK_COMMANDS):
            chunk = commands[start:start + CHUNK_COMMANDS]
            # hiredis's stub types the argument as a 1-tuple; any tuple of str/bytes is packed.
            packed = b"".join([hiredis.pack_command(c) for c in chunk])  # type: ignore[arg-type]
            await conn.send_packed_command(packed)
            # One timer for the chunk, pushed back every few replies, rather than
            # one per reply (redis-py's own per-read timer costs as much as the read).
            async with asyncio.timeout(None if limit is None else loop.time() + limit) as timer:
                for i in range(len(chunk)):
                    if limit is not None and i % REPLIES_PER_TIMER == 0:
                        timer.reschedule(loop.time() + limit)
                    try:
                        replies.append(await conn.read_response(timeout=math.inf))
                    except ResponseError as exc:  # read the rest: the connection stays in step
                        replies.append(exc)
    except BaseException as exc:
        # Replies may be left unread on the socket: never hand it back in that state.
        await conn.disconnect(nowait=True)
        if isinstance(exc, asyncio.TimeoutError):
            raise RedisTimeoutError(f"no reply from Redis within {limit} s") from exc
        raise
    return replies
