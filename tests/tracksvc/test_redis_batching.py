"""
The one-server client's batching (:class:`tracksvc.core.redis.BatchingRedis`):
commands issued in one turn of the event loop share one write and one read,
each keeping its own reply or error, on a real redis-server.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tracksvc.core.redis import BatchingRedis, Connection, redis_client
from tracksvc.dev.redis_server import RedisServer


class CountingConnection(Connection):
    """tracksvc's connection, noting how many commands each write carried."""

    writes: ClassVar[list[int]] = []

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | bytearray | memoryview) else list(command)
        self.writes.append(b"".join(bytes(c) for c in chunks).count(b"\r\n*") + 1)
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted(own_redis: RedisServer) -> AsyncIterator[BatchingRedis]:
    client = redis_client(own_redis.url)
    assert isinstance(client, BatchingRedis)
    client.connection_pool.connection_class = CountingConnection
    CountingConnection.writes = []
    yield client
    await client.aclose()


async def test_commands_of_one_turn_share_one_write(counted: BatchingRedis) -> None:
    await counted.set("warm", "up")  # connects (and counts its own writes)
    CountingConnection.writes.clear()
    values = await asyncio.gather(*(counted.set(f"k{i}", i) for i in range(20)))
    assert values == [True] * 20
    assert CountingConnection.writes == [20]
    got = await asyncio.gather(*(counted.get(f"k{i}") for i in range(20)), counted.hmget("nothing", ["a"]))
    assert got == [str(i).encode() for i in range(20)] + [[None]]  # replies in order, parsed as usual
    assert CountingConnection.writes == [20, 21]


async def test_a_command_alone_in_its_turn_goes_as_usual(counted: BatchingRedis) -> None:
    await counted.set("a", "1")
    CountingConnection.writes.clear()
    assert await counted.get("a") == b"1"
    assert await counted.incr("n") == 1
    assert CountingConnection.writes == [1, 1]


async def test_each_command_keeps_its_own_error(counted: BatchingRedis) -> None:
    await counted.set("text", "not a number")
    good, bad, other = await asyncio.gather(
        counted.incr("n"), counted.incr("text"), counted.set("x", "y"), return_exceptions=True
    )
    assert good == 1
    assert isinstance(bad, ResponseError)
    assert other is True
    assert await counted.get("x") == b"y"


async def test_scripts_load_themselves_in_a_batch(counted: BatchingRedis) -> None:
    script = counted.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    await counted.script_flush()
    replies = await asyncio.gather(*(script(keys=[f"s{i}"], args=[i]) for i in range(5)))
    assert replies == list(range(5))  # each saw NOSCRIPT, loaded it and ran it


async def test_a_caller_that_stops_waiting_leaves_the_batch_alone(counted: BatchingRedis) -> None:
    slow = asyncio.ensure_future(counted.set("gone", "still written"))
    kept = asyncio.ensure_future(counted.set("kept", "1"))
    await asyncio.sleep(0)  # both queued in this turn
    slow.cancel()
    assert await kept is True
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert await counted.get("kept") == b"1"


async def test_a_frozen_redis_fails_every_command_of_the_batch(own_redis: RedisServer) -> None:
    client = redis_client(own_redis.url)
    assert own_redis.process is not None
    try:
        await client.set("k", "v")
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        results = await asyncio.gather(*(client.get("k") for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, RedisTimeoutError | RedisConnectionError) for r in results), results
        os.kill(own_redis.process.pid, signal.SIGCONT)
        assert await asyncio.gather(client.get("k"), client.get("k")) == [b"v", b"v"]
    finally:
        os.kill(own_redis.process.pid, signal.SIGCONT)
        await client.aclose()
