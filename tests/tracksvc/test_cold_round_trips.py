"""
What a cold lookup costs in Redis round trips, counted on the real
redis-server by the client's own connections (redis-py's ``connection_class``
hook: each packed send is one round trip, a pipeline or a script is one).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import aiohttp
import pytest
import redis.asyncio as aioredis

from carriers.adapters import REGISTRY
from carriers.base import unavailable_message
from carriers.sandbox.scenarios import Scenario, Step, ups_number
from tests.conftest import Sandbox
from tracksvc.core.errors import CarrierError
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.core.redis import redis_client as connect_redis
from tracksvc.core.settings import Settings
from tracksvc.economy.cache import CachedAnswer, TrackingCache, track_key
from tracksvc.economy.callers import REGISTERED
from tracksvc.economy.quota import BLOCK_READ_EVERY_S, Budget, QuotaLimits, Refusal, RefusalReason, quota_key
from tracksvc.economy.singleflight import flight_key
from tracksvc.economy.tracker import Freshness, Tracker

#: Round trips of a one-server client (a cluster client adds its own slot-map reads).
pytestmark = pytest.mark.single_redis

_COMMAND = re.compile(rb"\*\d+\r\n\$\d+\r\n([A-Za-z]+)\r\n")


def _in_transit(sandbox: Sandbox, serial: int) -> str:
    number = ups_number(serial)
    sandbox.state.add(Scenario(
        Carrier.ups, number, f"ups-{number}", TrackingStatus.in_transit,
        ((Step.label, timedelta(days=2)), (Step.pickup, timedelta(days=1))),
    ))
    return number


class CountingConnection(aioredis.Connection):
    """A redis-py connection that notes the commands of every send (one send, one round trip)."""

    sends: ClassVar[list[list[str]]] = []

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | bytearray | memoryview) else list(command)
        packed = b"".join(bytes(c) for c in chunks)
        self.sends.append([name.decode().upper() for name in _COMMAND.findall(packed)])
        await super().send_packed_command(command, check_health)


@dataclass
class Counted:
    """A tracker, the round trips its Redis client made, and its carrier adapters."""

    tracker: Tracker
    sends: list[list[str]]
    adapters: dict[Carrier, Any]
    settings: Settings


@pytest.fixture
async def counted(
    sandbox: Sandbox, redis_client: aioredis.Redis, make_settings: Callable[..., Settings]
) -> AsyncIterator[Counted]:
    """A tracker built as the app builds it, on a Redis client whose round trips are noted."""
    settings = make_settings(sandbox.url, carrier_retry_attempts=1)
    redis = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
        settings.redis_url or "", connection_class=CountingConnection, max_connections=20,
    ))
    session = aiohttp.ClientSession()
    adapters = {c: cls(session, settings.carrier(c)) for c, cls in REGISTRY.items()}
    tracker = Tracker.from_settings(adapters, TrackingCache.from_settings(redis, settings), redis, settings)
    await tracker.lookup(Carrier.ups, _in_transit(sandbox, 7_001))  # scripts loaded, token fetched, pool warm
    CountingConnection.sends.clear()
    yield Counted(tracker, CountingConnection.sends, adapters, settings)
    await tracker.aclose()
    await session.close()
    await redis.aclose()


async def test_cold_lookup_costs_three_round_trips(
    counted: Counted, sandbox: Sandbox, redis_client: aioredis.Redis
) -> None:
    """
    A number nobody cached: the read and the lock in one trip, the budget, then one landing
    that stores the answer, drops the lock and keeps the outcome for late waiters.
    """
    tracker, sends = counted.tracker, counted.sends
    number = _in_transit(sandbox, 7_002)
    lookup = await tracker.lookup(Carrier.ups, number)
    assert lookup.freshness is Freshness.live
    assert lookup.result is not None
    assert len(sends) <= 3, sends
    assert all(len(commands) == 1 for commands in sends), sends  # no pipeline of several commands
    assert await redis_client.exists(track_key(Carrier.ups, number)) == 1
    assert await redis_client.exists(flight_key(Carrier.ups, number, "lock")) == 0
    assert await redis_client.exists(flight_key(Carrier.ups, number, "result")) == 1


async def test_a_failed_call_reads_as_the_carrier_librarys_message(
    counted: Counted, sandbox: Sandbox
) -> None:
    """The reason agents read for a failed call is the one message the carrier library makes of the error."""
    tracker, adapter = counted.tracker, counted.adapters[Carrier.ups]
    number = ups_number(7_005)
    sandbox.state.queue_fault(Carrier.ups, "503", 2)
    with pytest.raises(CarrierError) as raised:
        await adapter.track([number])
    lookup = await tracker.lookup(Carrier.ups, number)
    assert lookup.result is None
    assert lookup.message == unavailable_message(raised.value, number)


async def test_concurrent_cold_lookups_share_one_read(
    counted: Counted, sandbox: Sandbox
) -> None:
    """Ten lookups of one cold number at once in one replica: one first read, one landing, one answer."""
    tracker, sends = counted.tracker, counted.sends
    number = _in_transit(sandbox, 7_006)
    lookups = await asyncio.gather(*(tracker.lookup(Carrier.ups, number) for _ in range(10)))
    assert {lk.as_of for lk in lookups} == {lookups[0].as_of}
    assert all(lk.result is not None and lk.result.status is TrackingStatus.in_transit for lk in lookups)
    assert len(sends) <= 3, sends


async def test_a_replica_that_finds_the_lock_held_waits_without_trying_it_again(
    counted: Counted, sandbox: Sandbox, redis_client: aioredis.Redis
) -> None:
    """The first read saw the lock held and nothing cached: the replica subscribes at once, no second try."""
    number = _in_transit(sandbox, 7_007)
    redis = connect_redis(counted.settings.redis_url or "", cluster=counted.settings.redis_cluster)
    async with aiohttp.ClientSession() as session:
        adapters = {c: cls(session, counted.settings.carrier(c)) for c, cls in REGISTRY.items()}
        holder = Tracker.from_settings(
            adapters, TrackingCache.from_settings(redis, counted.settings), redis, counted.settings
        )
        try:
            sandbox.state.latency_s = 0.3
            opened = await holder.flights.open(Carrier.ups, number)  # the lock taken, the fetch started
            assert opened.flight is not None
            assert await redis_client.exists(flight_key(Carrier.ups, number, "lock")) == 1
            counted.sends.clear()
            waited = await counted.tracker.lookup(Carrier.ups, number)
            asked = await opened.flight
        finally:
            await holder.aclose()
            await redis.aclose()
    assert waited.freshness is Freshness.live
    assert isinstance(asked, CachedAnswer)
    assert waited.as_of is not None
    assert waited.as_of.timestamp() == pytest.approx(asked.fetched_at)
    assert sandbox.state.calls["ups:track"] == 2  # the fixture's warm-up, then the holder's one call
    assert counted.sends[0] == ["EVALSHA"]
    assert not any("SET" in commands for commands in counted.sends), counted.sends


class FrozenClock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_budget_without_limits_reads_the_block_once_per_interval(
    redis_client: aioredis.Redis, redis_server: Any
) -> None:
    """
    No limits: calls at once share one read of the carrier's block, calls within the
    interval read nothing, and another replica's block is seen once the interval has passed.
    """
    clock = FrozenClock()
    redis = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
        redis_server.url, connection_class=CountingConnection, max_connections=20,
    ))
    budget = Budget(redis, Carrier.ups, QuotaLimits(per_second=0, per_hour=0), clock=clock)
    try:
        await redis.ping()  # the connection's own handshake is not the budget's
        CountingConnection.sends.clear()
        waits = await asyncio.gather(*(budget.reserve(REGISTERED, 1.0) for _ in range(5)))
        assert waits == [0.0] * 5
        assert CountingConnection.sends == [["PTTL"]]
        assert await budget.reserve(REGISTERED, 1.0) == 0.0
        assert len(CountingConnection.sends) == 1

        await redis_client.set(quota_key(Carrier.ups, "block"), "429", px=30_000)  # another replica's
        clock.now += BLOCK_READ_EVERY_S
        refused = await budget.reserve(REGISTERED, 1.0)
        assert isinstance(refused, Refusal)
        assert refused.reason is RefusalReason.retry_after
        assert 25 < refused.retry_after_s <= 30
        assert len(CountingConnection.sends) == 2
    finally:
        await redis.aclose()
