"""
The in-memory copy of fresh carrier answers each replica keeps (``cache_local_ttl_s``):
bounded, never past the soft TTL, replaced by the replica's own writes, and truthful
about the answer's age. Against the real redis-server; the local clock is injected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from tracksvc.core.models import Carrier, TrackingResult, TrackingStatus
from tracksvc.core.redis import redis_client
from tracksvc.core.settings import Settings
from tracksvc.economy.cache import CachedAnswer, LocalAnswers, TrackingCache, TtlPolicy, track_key
from tracksvc.economy.tracker import Freshness, Tracker

POLICY = TtlPolicy(active_s=900, final_s=86400, not_found_s=600, keep_s=7 * 86400)
NUMBER = "1ZX"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _answer(detail: str = "first", age_s: float = 0.0) -> CachedAnswer:
    result = TrackingResult(
        carrier=Carrier.ups, tracking_number=NUMBER, status=TrackingStatus.in_transit, status_detail=detail
    )
    return CachedAnswer(result=result, fetched_at=time.time() - age_s)


def _local(clock: Callable[[], float], *, ttl_s: float = 1.0, max_entries: int = 100,
           policy: TtlPolicy = POLICY) -> LocalAnswers:
    return LocalAnswers(policy, ttl_s=ttl_s, max_entries=max_entries, clock=clock)


def test_a_copy_lapses_after_the_local_ttl() -> None:
    """A kept answer is served until ``ttl_s`` has passed on the local clock, then forgotten."""
    clock = Clock()
    local = _local(clock)
    answer = _answer()
    local.put(Carrier.ups, NUMBER, answer)
    clock.now += 0.9
    assert local.get(Carrier.ups, NUMBER) is answer
    clock.now += 0.2
    assert local.get(Carrier.ups, NUMBER) is None
    assert len(local) == 0


async def test_a_copy_never_outlives_the_soft_ttl() -> None:
    """An answer about to leave its soft TTL is not served from memory once it has, however long ttl_s is."""
    local = _local(Clock(), ttl_s=60, policy=TtlPolicy(active_s=1, final_s=1, not_found_s=1, keep_s=60))
    local.put(Carrier.ups, NUMBER, _answer(age_s=0.9))
    assert local.get(Carrier.ups, NUMBER) is not None
    await asyncio.sleep(0.15)
    assert local.get(Carrier.ups, NUMBER) is None


def test_answers_past_their_soft_ttl_are_not_kept() -> None:
    """Only fresh answers are kept: one due for revalidation always goes back to Redis."""
    local = _local(Clock())
    local.put(Carrier.ups, NUMBER, _answer(age_s=POLICY.active_s + 1))
    assert local.get(Carrier.ups, NUMBER) is None
    assert len(local) == 0


def test_memory_is_bounded_and_the_oldest_copy_goes_first() -> None:
    """With max_entries 2, a third number evicts the copy stored first; a rewrite counts as new."""
    local = _local(Clock(), max_entries=2)
    local.put(Carrier.ups, "A", _answer("a"))
    local.put(Carrier.ups, "B", _answer("b"))
    local.put(Carrier.ups, "A", _answer("a2"))  # A is now the newest
    local.put(Carrier.ups, "C", _answer("c"))
    assert len(local) == 2
    assert local.get(Carrier.ups, "B") is None
    kept_a = local.get(Carrier.ups, "A")
    assert kept_a is not None
    assert kept_a.result is not None
    assert kept_a.result.status_detail == "a2"
    assert local.get(Carrier.ups, "C") is not None


def test_zero_ttl_keeps_nothing() -> None:
    """ttl_s 0 turns the memory off."""
    local = _local(Clock(), ttl_s=0)
    local.put(Carrier.ups, NUMBER, _answer())
    assert local.get(Carrier.ups, NUMBER) is None


def test_an_older_read_does_not_replace_a_newer_copy() -> None:
    """A Redis read that returns an older answer than the one kept (newer_only) leaves the newer one."""
    local = _local(Clock())
    newer, older = _answer("newer"), _answer("older", age_s=5)
    local.put(Carrier.ups, NUMBER, newer)
    local.put(Carrier.ups, NUMBER, older, newer_only=True)
    assert local.get(Carrier.ups, NUMBER) is newer
    local.put(Carrier.ups, NUMBER, older)  # this replica's own write always wins
    assert local.get(Carrier.ups, NUMBER) is older


async def test_cache_reads_redis_once_per_local_ttl(redis_client: aioredis.Redis) -> None:
    """Within the local TTL a change made straight in Redis is not seen; after it, it is."""
    clock = Clock()
    cache = TrackingCache(redis_client, POLICY, local_ttl_s=1.0)
    cache.local.clock = clock
    first = _answer("first")
    await redis_client.set(track_key(Carrier.ups, NUMBER), first.model_dump_json())
    assert await cache.get(Carrier.ups, NUMBER) == first
    second = _answer("second")
    await redis_client.set(track_key(Carrier.ups, NUMBER), second.model_dump_json())
    assert await cache.get(Carrier.ups, NUMBER) == first
    clock.now += 1.01
    assert await cache.get(Carrier.ups, NUMBER) == second


async def test_without_local_ttl_every_get_reads_redis(redis_client: aioredis.Redis) -> None:
    """local_ttl_s 0 (the constructor default): a change in Redis is seen at once."""
    cache = TrackingCache(redis_client, POLICY)
    await cache.set(Carrier.ups, NUMBER, _answer("first"))
    assert await cache.get(Carrier.ups, NUMBER) is not None
    second = _answer("second")
    await redis_client.set(track_key(Carrier.ups, NUMBER), second.model_dump_json())
    assert await cache.get(Carrier.ups, NUMBER) == second


async def test_own_set_replaces_the_copy_at_once(redis_client: aioredis.Redis) -> None:
    """This replica's set() is served by its next get, whatever copy it kept before."""
    cache = TrackingCache(redis_client, POLICY, local_ttl_s=30)
    await cache.set(Carrier.ups, NUMBER, _answer("first"))
    assert await cache.get(Carrier.ups, NUMBER) is not None
    second = _answer("second")
    assert await cache.set(Carrier.ups, NUMBER, second)
    assert await cache.get(Carrier.ups, NUMBER) == second


async def test_failed_set_forgets_the_copy() -> None:
    """When Redis refuses a write, the replica stops serving its copy (as without the memory)."""
    dead = redis_client("redis://127.0.0.1:1/0")
    cache = TrackingCache(dead, POLICY, local_ttl_s=30)
    try:
        cache.local.put(Carrier.ups, NUMBER, _answer("kept"))
        assert await cache.get(Carrier.ups, NUMBER) is not None
        assert await cache.set(Carrier.ups, NUMBER, _answer("refused")) is False
        assert await cache.get(Carrier.ups, NUMBER) is None
    finally:
        await dead.aclose()


async def test_other_replicas_answer_is_seen_after_the_local_ttl(redis_client: aioredis.Redis) -> None:
    """
    Replica A keeps its answer for the local TTL even when replica B stores a newer one;
    meanwhile A reports the age of what it serves truthfully (as_of of its own fetch).
    """
    clock = Clock()
    replica_a = Tracker({}, TrackingCache(redis_client, POLICY, local_ttl_s=1.0), deadline_s=1)
    replica_a.cache.local.clock = clock
    replica_b = TrackingCache(redis_client, POLICY)
    own = _answer("own", age_s=30)
    assert await replica_a.cache.set(Carrier.ups, NUMBER, own)
    newer = _answer("newer")
    assert await replica_b.set(Carrier.ups, NUMBER, newer)

    served = await replica_a.lookup(Carrier.ups, NUMBER)
    assert served.freshness is Freshness.cached
    assert served.result is not None
    assert served.result.status_detail == "own"
    assert served.as_of is not None
    assert served.as_of.timestamp() == pytest.approx(own.fetched_at)

    clock.now += 1.01
    served = await replica_a.lookup(Carrier.ups, NUMBER)
    assert served.result is not None
    assert served.result.status_detail == "newer"
    assert served.as_of is not None
    assert served.as_of.timestamp() == pytest.approx(newer.fetched_at)


async def test_settings_wire_the_local_cache(
    monkeypatch: pytest.MonkeyPatch, redis_client: aioredis.Redis
) -> None:
    """TRACKSVC_CACHE_LOCAL_TTL_S and _MAX_ENTRIES reach the cache; 1 s by default; negatives refused."""
    assert Settings().cache_local_ttl_s == 1.0
    monkeypatch.setenv("TRACKSVC_CACHE_LOCAL_TTL_S", "0.25")
    monkeypatch.setenv("TRACKSVC_CACHE_LOCAL_MAX_ENTRIES", "7")
    cache = TrackingCache.from_settings(redis_client, Settings())
    assert (cache.local.ttl_s, cache.local.max_entries) == (0.25, 7)
    monkeypatch.setenv("TRACKSVC_CACHE_LOCAL_TTL_S", "-1")
    with pytest.raises(ValidationError):
        Settings()


def test_lapsed_copies_are_dropped_as_new_ones_arrive() -> None:
    """Memory holds only the copies of the last ttl_s seconds, even of numbers never asked again."""
    clock = Clock()
    local = _local(clock, max_entries=100)
    for i in range(5):
        local.put(Carrier.ups, f"OLD{i}", _answer())
    clock.now += 1.5
    local.put(Carrier.ups, "NEW", _answer())
    assert len(local) == 1
    assert local.get(Carrier.ups, "NEW") is not None
