"""
Asking carriers as little as possible: single flight (in process and across
replicas), FedEx batching, soft and hard TTLs, shared budgets, Retry-After and
the circuit breaker. Trackers are built as the app builds them, against the
sandbox over loopback and the real redis-server; every assertion is on the
sandbox's call counters or on what the lookups answered, never on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from carriers.adapters import REGISTRY
from carriers.sandbox.scenarios import CATALOGUE, Scenario, Step, fedex_number, ups_number, usps_number
from tests.conftest import Sandbox
from tracksvc.core.models import Carrier, Outcome, TrackingStatus
from tracksvc.core.redis import redis_client as connect_redis
from tracksvc.core.settings import Settings
from tracksvc.economy.cache import CachedAnswer, TrackingCache, TtlPolicy
from tracksvc.economy.quota import quota_key
from tracksvc.economy.singleflight import flight_key
from tracksvc.economy.tracker import Freshness, Lookup, Tracker

MakeTracker = Callable[..., Awaitable[Tracker]]

UPS_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "ups-in-transit")
UPS_DELIVERED = next(s.number for s in CATALOGUE if s.name == "ups-delivered")
USPS_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "usps-in-transit")
FEDEX_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "fedex-in-transit")


def _in_transit(carrier: Carrier, number: str) -> Scenario:
    return Scenario(
        carrier, number, f"{carrier.value}-{number}", TrackingStatus.in_transit,
        ((Step.label, timedelta(days=2)), (Step.pickup, timedelta(days=1))),
    )


@pytest.fixture
async def make_tracker(
    sandbox: Sandbox, redis_client: aioredis.Redis, make_settings: Callable[..., Settings]
) -> AsyncIterator[MakeTracker]:
    """Build a tracker as the app does: each call is one replica (own session and Redis pool)."""
    closers: list[Callable[[], Awaitable[Any]]] = []

    async def build(**overrides: Any) -> Tracker:
        values: dict[str, Any] = {"carrier_retry_attempts": 1, **overrides}
        settings = make_settings(sandbox.url, **values)
        session = aiohttp.ClientSession()
        redis = connect_redis(settings.redis_url or "", cluster=settings.redis_cluster)
        adapters = {c: cls(session, settings.carrier(c)) for c, cls in REGISTRY.items()}
        cache = TrackingCache(redis, TtlPolicy.from_settings(settings))
        tracker = Tracker.from_settings(adapters, cache, redis, settings)
        closers.extend([tracker.aclose, session.close, redis.aclose])
        return tracker

    yield build
    for close in closers:
        await close()


def calls(sandbox: Sandbox, carrier: Carrier) -> int:
    return sandbox.state.calls[f"{carrier.value}:track"]


async def test_concurrent_lookups_of_one_number_make_one_call(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """Fifty requests for one cold number in one process: one carrier call, fifty live answers."""
    tracker = await make_tracker()
    sandbox.state.latency_s = 0.3  # every lookup joins while the one call is under way
    lookups = await asyncio.gather(*(tracker.lookup(Carrier.ups, UPS_IN_TRANSIT) for _ in range(50)))
    assert calls(sandbox, Carrier.ups) == 1
    assert {lk.freshness for lk in lookups} == {Freshness.live}
    assert {lk.as_of for lk in lookups} == {lookups[0].as_of}
    assert all(lk.result is not None and lk.result.status is TrackingStatus.in_transit for lk in lookups)
    waits = tracker.metrics.coalesced_waits.labels("ups", "local")._value.get()
    assert waits == 49


async def test_replicas_share_one_call_through_redis(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """Two replicas asked at once about one cold number: one carrier call, both answer live."""
    first, second = await make_tracker(), await make_tracker()
    sandbox.state.latency_s = 0.3
    lookups = await asyncio.gather(
        *(t.lookup(Carrier.ups, UPS_IN_TRANSIT) for t in (first, second) for _ in range(5))
    )
    assert calls(sandbox, Carrier.ups) == 1
    assert {lk.freshness for lk in lookups} == {Freshness.live}
    assert len({lk.as_of for lk in lookups}) == 1
    remote = sum(
        t.metrics.coalesced_waits.labels("ups", "remote")._value.get() for t in (first, second)
    )
    assert remote == 1


async def test_replica_waiting_gets_the_leaders_failure_without_calling(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """When the replica that asked fails, the waiting replica gets that failure; no second call."""
    first, second = await make_tracker(), await make_tracker()
    sandbox.state.latency_s = 0.3
    sandbox.state.queue_fault(Carrier.ups, "503", 5)
    lookups = await asyncio.gather(
        first.lookup(Carrier.ups, UPS_IN_TRANSIT), second.lookup(Carrier.ups, UPS_IN_TRANSIT)
    )
    assert calls(sandbox, Carrier.ups) == 1
    for lookup in lookups:
        assert lookup.result is None
        assert lookup.message is not None
        assert lookup.message.outcome is Outcome.unavailable


async def test_dead_leader_is_replaced_after_its_lock_expires(
    make_tracker: MakeTracker, sandbox: Sandbox, redis_client: aioredis.Redis
) -> None:
    """A lock left by a replica that died (never renewed, never released) expires; we then ask."""
    tracker = await make_tracker()
    await redis_client.set(flight_key(Carrier.ups, UPS_IN_TRANSIT, "lock"), "dead-replica", px=300)
    lookup = await tracker.lookup(Carrier.ups, UPS_IN_TRANSIT)
    assert lookup.freshness is Freshness.live
    assert lookup.result is not None
    assert calls(sandbox, Carrier.ups) == 1
    assert await redis_client.exists(flight_key(Carrier.ups, UPS_IN_TRANSIT, "lock")) == 0


async def test_without_redis_single_flight_is_in_process(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """Redis unreachable: locks and budgets fall back to this process, lookups still answer."""
    tracker = await make_tracker(redis_url="redis://127.0.0.1:1/0")
    lookups = await asyncio.gather(*(tracker.lookup(Carrier.ups, UPS_IN_TRANSIT) for _ in range(20)))
    assert calls(sandbox, Carrier.ups) == 1
    assert {lk.freshness for lk in lookups} == {Freshness.live}
    assert lookups[0].result is not None


async def test_listener_hears_each_fresh_answer_once(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """Coalesced lookups store one answer and tell the listeners once."""
    tracker = await make_tracker()
    heard: list[tuple[Carrier, str]] = []

    async def listener(carrier: Carrier, number: str, previous: CachedAnswer | None,
                       current: CachedAnswer) -> None:
        heard.append((carrier, number))

    tracker.add_listener(listener)
    await asyncio.gather(*(tracker.lookup(Carrier.ups, UPS_IN_TRANSIT) for _ in range(10)))
    assert heard == [(Carrier.ups, UPS_IN_TRANSIT)]


async def test_fedex_numbers_are_batched_up_to_thirty(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """Sixty different FedEx numbers at once: two calls of thirty; not-found ones fail nobody else."""
    tracker = await make_tracker(batch_window_s=0.2)
    known = [fedex_number(5000 + i) for i in range(40)]
    for number in known:
        sandbox.state.add(_in_transit(Carrier.fedex, number))
    unknown = [fedex_number(9000 + i) for i in range(20)]
    lookups = await asyncio.gather(*(tracker.lookup(Carrier.fedex, n) for n in known + unknown))
    assert calls(sandbox, Carrier.fedex) == 2
    assert sandbox.state.numbers_asked["fedex"] == 60
    for lookup in lookups[:40]:
        assert lookup.result is not None
        assert lookup.result.status is TrackingStatus.in_transit
    for lookup in lookups[40:]:
        assert lookup.carrier_denies_it
    sizes = tracker.metrics.batch_size.labels("fedex")._sum.get()
    assert sizes == 60


async def test_fedex_whole_batch_failure_reaches_each_waiter(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """A batch call that fails as a whole answers each of its numbers with that failure."""
    tracker = await make_tracker(batch_window_s=0.2)
    sandbox.state.queue_fault(Carrier.fedex, "500", 1)
    numbers = [fedex_number(6000 + i) for i in range(5)]
    lookups = await asyncio.gather(*(tracker.lookup(Carrier.fedex, n) for n in numbers))
    assert calls(sandbox, Carrier.fedex) == 1
    assert all(lk.message is not None and lk.message.outcome is Outcome.unavailable for lk in lookups)
    again = await tracker.lookup(Carrier.fedex, FEDEX_IN_TRANSIT)
    assert again.result is not None


async def test_batching_off_sends_one_call_per_number(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """A zero window turns batching off."""
    tracker = await make_tracker(batch_window_s=0)
    numbers = [fedex_number(7000 + i) for i in range(4)]
    await asyncio.gather(*(tracker.lookup(Carrier.fedex, n) for n in numbers))
    assert calls(sandbox, Carrier.fedex) == 4


async def test_past_soft_ttl_serves_cached_and_refreshes_once(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """Past the soft TTL, within the hard one: cached answers at once, one background refresh."""
    tracker = await make_tracker(cache_ttl_active_s=0, cache_hard_ttl_active_s=3600)
    first = await tracker.lookup(Carrier.ups, UPS_IN_TRANSIT)
    assert first.freshness is Freshness.live
    sandbox.state.latency_s = 0.3
    lookups = await asyncio.gather(*(tracker.lookup(Carrier.ups, UPS_IN_TRANSIT) for _ in range(10)))
    assert {lk.freshness for lk in lookups} == {Freshness.cached}
    assert {lk.as_of for lk in lookups} == {first.as_of}
    await tracker.settle()
    assert calls(sandbox, Carrier.ups) == 2
    after = await tracker.lookup(Carrier.ups, UPS_IN_TRANSIT)
    assert after.as_of is not None
    assert first.as_of is not None
    assert after.as_of > first.as_of


async def test_refresh_asks_past_the_soft_ttl_instead_of_in_the_background(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """The refresher's refresh() waits for the carrier past the soft TTL; fresh answers stay put."""
    tracker = await make_tracker(cache_ttl_active_s=0, cache_hard_ttl_active_s=3600)
    first = await tracker.refresh(Carrier.ups, UPS_IN_TRANSIT)
    second = await tracker.refresh(Carrier.ups, UPS_IN_TRANSIT)
    assert first.freshness is Freshness.live
    assert second.freshness is Freshness.live
    assert calls(sandbox, Carrier.ups) == 2
    delivered = await make_tracker()
    await delivered.refresh(Carrier.ups, UPS_DELIVERED)
    again = await delivered.refresh(Carrier.ups, UPS_DELIVERED)
    assert again.freshness is Freshness.cached
    assert calls(sandbox, Carrier.ups) == 3


async def test_within_soft_ttl_no_call_at_all(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """A fresh answer is served without any carrier call."""
    tracker = await make_tracker()
    await tracker.lookup(Carrier.ups, UPS_DELIVERED)
    again = await tracker.lookup(Carrier.ups, UPS_DELIVERED)
    await tracker.settle()
    assert again.freshness is Freshness.cached
    assert calls(sandbox, Carrier.ups) == 1


async def test_past_hard_ttl_asks_first_and_serves_stale_on_failure(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """Past the hard TTL the carrier is asked first; if it fails the old answer is served stale."""
    tracker = await make_tracker(cache_ttl_active_s=0, cache_hard_ttl_active_s=0)
    first = await tracker.lookup(Carrier.ups, UPS_IN_TRANSIT)
    second = await tracker.lookup(Carrier.ups, UPS_IN_TRANSIT)
    assert second.freshness is Freshness.live
    assert calls(sandbox, Carrier.ups) == 2
    sandbox.state.queue_fault(Carrier.ups, "503", 1)
    third = await tracker.lookup(Carrier.ups, UPS_IN_TRANSIT)
    assert third.freshness is Freshness.stale
    assert third.result == second.result
    assert third.as_of == second.as_of
    assert third.as_of != first.as_of
    assert third.message is not None
    assert third.message.outcome is Outcome.unavailable


async def test_hourly_budget_is_shared_and_refused_calls_are_never_sent(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """Two replicas share USPS's two calls an hour: the third lookup is refused, never sent."""
    first = await make_tracker(usps_quota_per_hour=2, usps_quota_per_second=0)
    second = await make_tracker(usps_quota_per_hour=2, usps_quota_per_second=0)
    numbers = [usps_number(8000 + i) for i in range(3)]
    await first.lookup(Carrier.usps, numbers[0])
    await second.lookup(Carrier.usps, numbers[1])
    refused = await first.lookup(Carrier.usps, numbers[2])
    assert calls(sandbox, Carrier.usps) == 2
    assert refused.result is None
    assert refused.message is not None
    assert refused.message.outcome is Outcome.rate_limited
    assert "2 calls per hour" in refused.message.message
    assert first.metrics.quota_refusals.labels("usps", "budget")._value.get() == 1


async def test_over_budget_with_a_cached_answer_serves_it_stale(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """Over budget and something cached: the cached answer, marked stale, with the reason."""
    tracker = await make_tracker(
        usps_quota_per_hour=1, usps_quota_per_second=0, cache_ttl_active_s=0, cache_hard_ttl_active_s=0
    )
    first = await tracker.lookup(Carrier.usps, USPS_IN_TRANSIT)
    second = await tracker.lookup(Carrier.usps, USPS_IN_TRANSIT)
    assert calls(sandbox, Carrier.usps) == 1
    assert second.freshness is Freshness.stale
    assert second.result == first.result
    assert second.message is not None
    assert second.message.outcome is Outcome.rate_limited


async def test_per_second_budget_waits_within_the_deadline(
    make_tracker: MakeTracker, sandbox: Sandbox
) -> None:
    """With nothing cached a lookup over the per-second budget waits for it, then asks."""
    tracker = await make_tracker(ups_quota_per_second=2, ups_quota_per_hour=0)
    numbers = [ups_number(8100 + i) for i in range(3)]
    for number in numbers:
        sandbox.state.add(_in_transit(Carrier.ups, number))
    lookups = await asyncio.gather(*(tracker.lookup(Carrier.ups, n) for n in numbers))
    assert calls(sandbox, Carrier.ups) == 3
    assert all(lk.result is not None for lk in lookups)


async def test_long_retry_after_blocks_every_replica(
    make_tracker: MakeTracker, sandbox: Sandbox, redis_client: aioredis.Redis
) -> None:
    """A 429 with Retry-After 60 s stops both replicas from calling that carrier; others go on."""
    first, second = await make_tracker(), await make_tracker()
    sandbox.state.queue_fault(Carrier.ups, "429", 1, retry_after_s=60)
    limited = await first.lookup(Carrier.ups, UPS_IN_TRANSIT)
    assert limited.message is not None
    assert limited.message.outcome is Outcome.rate_limited
    assert calls(sandbox, Carrier.ups) == 1
    blocked = await second.lookup(Carrier.ups, UPS_DELIVERED)
    assert calls(sandbox, Carrier.ups) == 1
    assert blocked.message is not None
    assert blocked.message.outcome is Outcome.rate_limited
    assert "asked us to wait" in blocked.message.message
    assert 55_000 < await redis_client.pttl(quota_key(Carrier.ups, "block")) <= 60_000
    other = await second.lookup(Carrier.usps, USPS_IN_TRANSIT)
    assert other.result is not None


async def test_breaker_opens_then_probes_and_closes(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """After two failed calls no call goes out; after the cool-down one probe closes it again."""
    tracker = await make_tracker(breaker_failure_threshold=2, breaker_cooldown_s=0.3)
    sandbox.state.queue_fault(Carrier.ups, "503", 10)
    for number in (UPS_IN_TRANSIT, UPS_DELIVERED):
        await tracker.lookup(Carrier.ups, number)
    assert tracker.breaker_states()["ups"] == "open"
    refused = await tracker.lookup(Carrier.ups, ups_number(8200))
    assert calls(sandbox, Carrier.ups) == 2
    assert refused.message is not None
    assert "not asked" in refused.message.message
    assert tracker.metrics.breaker_rejections.labels("ups")._value.get() == 1
    sandbox.state.faults.clear()
    await asyncio.sleep(0.35)
    assert tracker.breaker_states()["ups"] == "half_open"
    probe = await tracker.lookup(Carrier.ups, UPS_IN_TRANSIT)
    assert probe.freshness is Freshness.live
    assert probe.result is not None
    assert calls(sandbox, Carrier.ups) == 3
    assert tracker.breaker_states() == {"ups": "closed", "fedex": "closed", "usps": "closed"}


async def test_candidates_pick_the_carrier_that_knows(make_tracker: MakeTracker, sandbox: Sandbox) -> None:
    """The fan-out over candidate carriers still prefers the carrier with data."""
    from tracksvc.domain.references import candidates

    tracker = await make_tracker()
    found: Lookup = await tracker.lookup_candidates(candidates(UPS_IN_TRANSIT))
    assert found.carrier is Carrier.ups
    assert found.result is not None
