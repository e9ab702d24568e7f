"""The carrier-answer cache against a real redis-server."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.core.redis import redis_client
from tracksvc.economy.cache import CachedAnswer, TrackingCache, TtlPolicy, track_key

POLICY = TtlPolicy(active_s=900, final_s=86400, not_found_s=600, keep_s=7 * 86400)


def _answer(status: TrackingStatus, age_s: float = 0) -> CachedAnswer:
    result = TrackingResult(carrier=Carrier.ups, tracking_number="1ZX", status=status)
    return CachedAnswer(result=result, fetched_at=time.time() - age_s)


async def test_round_trip_keeps_the_result(redis_client: aioredis.Redis) -> None:
    """What is stored comes back equal."""
    cache = TrackingCache(redis_client, POLICY)
    answer = _answer(TrackingStatus.in_transit)
    assert await cache.set(Carrier.ups, "1ZX", answer)
    assert await cache.get(Carrier.ups, "1ZX") == answer


async def test_keys_are_hash_tagged_per_number(redis_client: aioredis.Redis) -> None:
    """Keys carry a {carrier:number} hash tag so they are Redis Cluster friendly."""
    assert track_key(Carrier.fedex, "1234") == "tracksvc:track:{fedex:1234}"


async def test_expiry_is_the_hard_limit(redis_client: aioredis.Redis) -> None:
    """Entries live until the hard TTL, so a stale answer can still be served."""
    cache = TrackingCache(redis_client, POLICY)
    await cache.set(Carrier.ups, "1ZX", _answer(TrackingStatus.in_transit))
    ttl = await redis_client.ttl(track_key(Carrier.ups, "1ZX"))
    assert 7 * 86400 - 5 <= ttl <= 7 * 86400


def test_soft_ttl_depends_on_status() -> None:
    """Delivered answers stay fresh for days, moving ones for minutes, not-found for less."""
    assert POLICY.ttl_for(_answer(TrackingStatus.delivered)) == 86400
    assert POLICY.ttl_for(_answer(TrackingStatus.in_transit)) == 900
    not_found = CachedAnswer(
        message=CarrierMessage(carrier=Carrier.ups, outcome=Outcome.not_found), fetched_at=time.time()
    )
    assert POLICY.ttl_for(not_found) == 600
    assert POLICY.is_fresh(_answer(TrackingStatus.in_transit, age_s=100))
    assert not POLICY.is_fresh(_answer(TrackingStatus.in_transit, age_s=1000))


async def test_unreadable_entry_is_a_miss(redis_client: aioredis.Redis) -> None:
    """A corrupt entry is ignored, not a crash."""
    await redis_client.set(track_key(Carrier.ups, "1ZX"), b"{not json")
    assert await TrackingCache(redis_client, POLICY).get(Carrier.ups, "1ZX") is None


async def test_redis_down_is_a_miss_not_an_error() -> None:
    """With Redis unreachable, get answers None and set answers False."""
    dead = redis_client("redis://127.0.0.1:1/0")
    cache = TrackingCache(dead, POLICY)
    try:
        assert await cache.get(Carrier.ups, "1ZX") is None
        assert await cache.set(Carrier.ups, "1ZX", _answer(TrackingStatus.in_transit)) is False
    finally:
        await dead.aclose()
