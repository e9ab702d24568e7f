"""
Many Redis commands in one round trip, for the bulk paths (the import, batch reads).

redis-py's ``Pipeline`` spends most of its time in Python per command
(packing the arguments, a response callback per reply): on loopback it
manages about 30,000 commands a second, several times less than the
server. :func:`send_all` packs the whole batch with hiredis (C), writes it
at once on one pooled connection and reads the raw replies back, which
roughly triples the rate. Like a pipeline without MULTI it is not atomic;
each command names one key, so it suits Redis Cluster's slot rules the same
way. Replies are not post-processed: ``GET`` gives bytes (or str when the
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
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: One command: its name and arguments (numbers already turned into text).
Command = tuple[str | bytes, ...]

#: Commands written per socket write (bounds the memory of one packed chunk).
CHUNK_COMMANDS = 10_000
#: Replies read between two extensions of the read deadline (the socket timeout).
REPLIES_PER_TIMER = 256


def score(value: float) -> str:
    """A sorted-set score as redis-py would send it (``repr`` keeps every digit)."""
    return repr(float(value))


async def send_all(redis: aioredis.Redis, commands: Sequence[Command]) -> list[Any]:
    """
    Send every command and return every reply, in order.

    Raises:
        redis.exceptions.RedisError: the connection failed (after the client's
            retries) or the server refused a command.
    """
    if not commands:
        return []
    pool = redis.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    try:
        replies: list[Any] = await conn.retry.call_with_retry(
            lambda: _exchange(conn, commands),
            lambda _error: conn.disconnect(),
        )
    finally:
        await pool.release(conn)
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


async def _exchange(conn: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
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
