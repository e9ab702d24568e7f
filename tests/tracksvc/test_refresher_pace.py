"""
The refresher keeps up within its share of the budgets: real redis-server, the sandbox, the
real service. Rate, FedEx batches, priority order, and two refreshers sharing one pace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import fedex_number, ups_number, usps_number
from tests.conftest import Sandbox
from tests.tracksvc.registry_helpers import hours_ago, register, shipment
from tracksvc.api.keys import refresher_key
from tracksvc.core.models import Carrier
from tracksvc.core.settings import Settings
from tracksvc.domain.records import ShipmentRecord
from tracksvc.economy.quota import QuotaLimits
from tracksvc.freshness.pace import (
    BURST_CYCLES,
    calls_per_second,
    numbers_per_call,
    pace_key,
    refresher_share,
)
from tracksvc.freshness.refresher import CYCLES_PER_PERIOD, Refresher

NUMBERS = {Carrier.ups: ups_number, Carrier.fedex: fedex_number, Carrier.usps: usps_number}


def refresher_of(client: Any) -> Refresher:
    return client.server.app[refresher_key]


async def register_many(client: Any, carrier: Carrier, count: int, *, base: int = 500_000,
                        label_age: timedelta = timedelta(hours=100)) -> list[str]:
    """Register ``count`` label-only labels with numbers of their own (the sandbox does not know them)."""
    label_at = datetime.now(UTC) - label_age
    records = [
        ShipmentRecord(
            shipment_id=f"{carrier.value}-{base + i}", order_number=f"O-{carrier.value}-{base + i}",
            carrier=carrier, tracking_number=NUMBERS[carrier](base + i), label_created_at=label_at,
        )
        for i in range(count)
    ]
    await refresher_of(client).registry.put_shipments(records)
    return [r.shipment_id for r in records]


def test_the_refresher_spends_the_reserved_share_of_the_tighter_limit() -> None:
    """Default budgets: half of each carrier's tighter limit, FedEx 30 numbers a call."""
    settings = Settings()
    share = refresher_share(settings)
    assert share == settings.quota_reserved_share == 0.5
    ups = calls_per_second(QuotaLimits.from_settings(settings, Carrier.ups), share)
    assert ups == pytest.approx(0.5 * 100_000 / 3600)  # the hourly limit is the tighter
    assert calls_per_second(QuotaLimits(per_second=4, per_hour=0), share) == 2
    assert calls_per_second(QuotaLimits(), share) is None  # no limit: not paced
    assert numbers_per_call(settings, Carrier.fedex) == 30
    assert numbers_per_call(settings.model_copy(update={"batch_window_s": 0}), Carrier.fedex) == 1
    # Nothing reserved: the refresher may use the whole budget.
    assert refresher_share(settings.model_copy(update={"quota_reserved_share": 0.0})) == 1.0


async def test_one_cycle_takes_one_cycles_share_of_the_budget_fedex_thirty_a_call(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """FedEx 4,000/h, half for the refresher, two 5 s cycles at most: 5 calls, 150 numbers, the rest waits."""
    client = await service_with()  # the default budgets
    await register_many(client, Carrier.fedex, 200)
    report = await refresher_of(client).run_cycle()
    rate = 0.5 * 4000 / 3600
    calls = int(rate * BURST_CYCLES * 60 / CYCLES_PER_PERIOD)
    assert calls == 5
    assert len(report.refreshed) == calls * 30
    assert sandbox.state.calls["fedex:track"] == calls
    assert sandbox.state.largest_batch["fedex"] == 30
    # At once again: nothing has accrued yet, nobody is asked.
    again = await refresher_of(client).run_cycle()
    assert again.refreshed == []
    assert sandbox.state.calls["fedex:track"] == calls


async def test_fedex_numbers_go_thirty_to_a_call_never_more(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """75 due FedEx labels with room in the budget: 3 calls of at most 30, every number once."""
    client = await service_with(fedex_quota_per_hour=360_000.0)
    ids = await register_many(client, Carrier.fedex, 75)
    report = await refresher_of(client).run_cycle()
    assert sorted(report.refreshed) == sorted(ids)
    assert sandbox.state.numbers_asked["fedex"] == 75
    assert sandbox.state.calls["fedex:track"] == 3
    assert sandbox.state.largest_batch["fedex"] == 30


async def test_the_background_refresher_keeps_to_its_share_of_the_rate(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """UPS at 4 calls/s: the refresher asks about 2 a second, spread out, and no more."""
    client = await service_with(
        refresher_enabled=True, refresher_period_s=1.2,
        ups_quota_per_second=4.0, ups_quota_per_hour=0.0,
    )
    await register_many(client, Carrier.ups, 80)
    started = time.monotonic()
    await asyncio.sleep(3.0)
    elapsed = time.monotonic() - started
    calls = sandbox.state.calls["ups:track"]
    # 2 calls/s, plus the first take's burst (two cycles: 0.2 s, one call); a loaded machine may lag.
    assert calls <= 2.0 * elapsed + 2
    assert calls >= 2.0 * elapsed * 0.5
    assert sandbox.state.numbers_asked["ups"] == calls  # every call one new shipment


async def test_priority_never_checked_past_grace_newest_then_near_grace_then_new_then_old_then_parcels(
    service_with: Callable[..., Any],
) -> None:
    """One per cycle, in the order the warehouse list needs them."""
    client = await service_with(refresher_batch_size=1, ups_quota_per_hour=0.0, ups_quota_per_second=0.0)
    ups = iter(ups_number(700_000 + i) for i in range(10))

    def label(sid: str, hours: float) -> dict[str, Any]:
        return {"shipment_id": sid, "order_number": f"O-{sid}", "carrier": "ups",
                "tracking_number": next(ups), "label_created_at": hours_ago(hours)}

    await register(
        client,
        shipment("S-PARCEL", "ups-in-transit", first_scan_at=hours_ago(40)),
        label("S-OLD-CHECKED", 200),
        label("S-PAST-OLD", 300),
        label("S-PAST-NEW", 60),
        label("S-NEAR", 47),
        label("S-FRESH-OLDER", 5),
        label("S-FRESH-NEWER", 1),
    )
    refresher = refresher_of(client)
    old = await refresher.registry.get_shipment("S-OLD-CHECKED")
    assert old is not None
    await refresher.registry.note_checked(old, datetime.now(UTC))
    order = []
    for _ in range(8):
        order += (await refresher.run_cycle()).refreshed
    assert order == ["S-PAST-NEW", "S-PAST-OLD", "S-NEAR", "S-FRESH-NEWER", "S-FRESH-OLDER",
                     "S-OLD-CHECKED", "S-PARCEL"]


async def test_two_refreshers_share_one_pace_and_never_poll_a_shipment_twice_in_a_period(
    service_with: Callable[..., Any], sandbox: Sandbox, redis_client: aioredis.Redis
) -> None:
    """
    Two replicas cycling together get one cycle's share between them (not one each), every
    shipment polled once; made due again within the period, the claims keep both off it.
    """
    budget = {"ups_quota_per_second": 0.0, "ups_quota_per_hour": 72_000.0}  # refresher: 10 calls/s
    first = await service_with(**budget)
    second = await service_with(**budget)
    ids = await register_many(first, Carrier.ups, 300)
    a, b = await asyncio.gather(refresher_of(first).run_cycle(), refresher_of(second).run_cycle())
    share = 10 * BURST_CYCLES * 60 / CYCLES_PER_PERIOD  # 100 calls: two 5 s cycles' worth
    assert not set(a.refreshed) & set(b.refreshed)
    total = len(a.refreshed) + len(b.refreshed)
    assert share <= total <= share + 2
    assert sandbox.state.numbers_asked["ups"] == total

    # The polled ones due again within the same period: their claims keep both replicas off.
    polled = [*a.refreshed, *b.refreshed]
    await redis_client.zadd("tracksvc:refresh:due", dict.fromkeys(ids, time.time() + 3600))
    await redis_client.zadd("tracksvc:refresh:due", dict.fromkeys(polled, 0))
    await redis_client.delete(pace_key(Carrier.ups))  # a full share again
    c, d = await asyncio.gather(refresher_of(first).run_cycle(), refresher_of(second).run_cycle())
    assert c.refreshed == d.refreshed == []
    assert c.skipped_claimed + d.skipped_claimed == total  # whoever got the pace met the claims
    assert sandbox.state.numbers_asked["ups"] == total


async def test_a_slow_carriers_backlog_never_crowds_out_the_others(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """
    1,000 newer USPS labels (one call every 2 minutes at USPS's default quota) ahead of 20 UPS
    labels: the USPS backlog is moved to its turns, so the UPS labels are checked next cycle,
    and the lag says how long the USPS backlog will take.
    """
    client = await service_with()  # the default budgets
    await register_many(client, Carrier.usps, 1000, label_age=timedelta(hours=50))
    ups = await register_many(client, Carrier.ups, 20, label_age=timedelta(hours=100))
    refresher = refresher_of(client)
    first = await refresher.run_cycle()
    second = await refresher.run_cycle()
    assert set(first.refreshed + second.refreshed) >= set(ups)
    assert sandbox.state.numbers_asked["ups"] == 20
    assert sandbox.state.numbers_asked["usps"] == 1  # its pace: one call now, the next in 2 minutes
    assert first.deferred > 900
    usps_interval_s = 1 / (0.5 * 60 / 3600)
    assert second.lag_s >= 0.9 * first.deferred * usps_interval_s
