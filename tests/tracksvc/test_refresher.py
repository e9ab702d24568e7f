"""The background refresher against a real redis-server and the sandbox: order, claims, retirement."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from tests.conftest import ON_CLUSTER, Sandbox
from tests.tracksvc.registry_helpers import (
    hours_ago,
    number_of,
    register,
    shipment,
    stalled_ids,
)
from tracksvc.api.keys import refresher_key
from tracksvc.core.models import (
    Carrier,
    CarrierMessage,
    Outcome,
    TrackingEvent,
    TrackingResult,
    TrackingStatus,
)
from tracksvc.dev.redis_server import RedisServer
from tracksvc.domain.records import ShipmentRecord
from tracksvc.domain.status import Limits
from tracksvc.economy.tracker import Freshness, Lookup
from tracksvc.freshness.refresher import (
    RETENTION_DAYS,
    Refresher,
    Retired,
    Schedule,
    claim_key,
    next_change_at,
    next_due,
    retire_before_asking,
)
from tracksvc.registry.store import REFRESH_DUE

REPO = Path(__file__).resolve().parents[2]

#: Every refresh asks the carrier (no soft TTL hides a second poll).
NO_CACHE = {"cache_ttl_active_s": 0, "cache_hard_ttl_active_s": 0}

#: Budgets roomy enough that the refresher's pace never holds a test back (USPS's default
#: hourly quota lets the refresher ask once every two minutes).
ROOMY = {"usps_quota_per_hour": 36_000.0}


def refresher_of(client: Any) -> Refresher:
    return client.server.app[refresher_key]


def asked(sandbox: Sandbox) -> dict[str, int]:
    """Tracking numbers asked per carrier so far (a FedEx batch counts each number)."""
    return {c.value: sandbox.state.numbers_asked[c.value] for c in Carrier}


async def make_all_due(redis: aioredis.Redis) -> None:
    """Pretend the next period has come: every scheduled shipment is due, every claim gone."""
    members = await redis.zrange(REFRESH_DUE, 0, -1)
    if members:
        await redis.zadd(REFRESH_DUE, dict.fromkeys(members, 0))
    for key in await redis.keys("tracksvc:refresh:claim:*"):
        await redis.delete(key)


async def test_label_only_near_grace_first_then_old_labels_then_active(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """One per cycle: the label near its grace limit, then the old checked label, then the parcel moving."""
    client = await service_with(refresher_batch_size=1)
    await register(
        client,
        shipment("S-TRANSIT", "usps-in-transit", first_scan_at=hours_ago(40)),
        shipment("S-OLD", "ups-label-5d"),
        shipment("S-NEAR", "fedex-label-2h", label_created_at=hours_ago(47)),
    )
    refresher = refresher_of(client)
    # A label past grace no carrier was asked about yet comes before all (test_stalled_checked.py).
    await refresher.service.registry.note_checked(
        ShipmentRecord.model_validate(shipment("S-OLD", "ups-label-5d")), datetime.now(UTC)
    )

    first = await refresher.run_cycle()
    assert first.refreshed == ["S-NEAR"]
    assert asked(sandbox) == {"ups": 0, "fedex": 1, "usps": 0}
    second = await refresher.run_cycle()
    assert second.refreshed == ["S-OLD"]
    assert asked(sandbox) == {"ups": 1, "fedex": 1, "usps": 0}
    third = await refresher.run_cycle()
    assert third.refreshed == ["S-TRANSIT"]
    assert asked(sandbox) == {"ups": 1, "fedex": 1, "usps": 1}
    assert (await refresher.run_cycle()).refreshed == []  # nothing is due until the revisit


async def test_labels_leave_room_for_active_parcels(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """With more due labels than a batch, a quarter of the batch still goes to parcels in transit."""
    client = await service_with(refresher_batch_size=4)
    labels = [shipment(f"S-L{i}", "ups-label-5d") for i in range(6)]
    await register(client, *labels, shipment("S-T", "fedex-in-transit", first_scan_at=hours_ago(40)))
    report = await refresher_of(client).run_cycle()
    assert len(report.refreshed) == 4
    assert "S-T" in report.refreshed
    assert asked(sandbox)["fedex"] == 1


async def test_two_replicas_refresh_each_shipment_once_per_period(
    service_with: Callable[..., Any], sandbox: Sandbox, redis_client: aioredis.Redis
) -> None:
    """Two refreshers cycling at once split the work: every shipment polled exactly once."""
    first = await service_with(**NO_CACHE, **ROOMY)
    second = await service_with(**NO_CACHE, **ROOMY)
    scenarios = ["ups-in-transit", "ups-out-for-delivery", "fedex-in-transit",
                 "fedex-attempted", "usps-in-transit", "usps-pickup-ready"]
    await register(first, *(shipment(f"S-{i}", s, first_scan_at=hours_ago(30))
                             for i, s in enumerate(scenarios)))
    a, b = await asyncio.gather(refresher_of(first).run_cycle(), refresher_of(second).run_cycle())

    assert sum(asked(sandbox).values()) == len(scenarios)
    assert not set(a.refreshed) & set(b.refreshed)
    assert set(a.refreshed) | set(b.refreshed) == {f"S-{i}" for i in range(len(scenarios))}

    # Due again within the same period: the claims still stand, nobody polls.
    await redis_client.zadd(REFRESH_DUE, {f"S-{i}": 0 for i in range(len(scenarios))})
    again = await refresher_of(second).run_cycle()
    assert again.refreshed == []
    assert again.skipped_claimed == len(scenarios)
    assert sum(asked(sandbox).values()) == len(scenarios)


async def test_a_claim_lasts_one_period(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """The claim is a Redis key that expires after one refresher period."""
    client = await service_with(refresher_period_s=30)
    await register(client, shipment("S-1", "ups-in-transit", first_scan_at=hours_ago(30)))
    await refresher_of(client).run_cycle()
    ttl_ms = await redis_client.pttl(claim_key("S-1"))
    assert 0 < ttl_ms <= 30_000


async def test_finished_voided_and_expired_shipments_stop_being_polled(
    service_with: Callable[..., Any], sandbox: Sandbox, redis_client: aioredis.Redis
) -> None:
    """Delivered and cancelled are polled once then dropped; voided and past-retention never asked."""
    client = await service_with(**NO_CACHE)
    await register(
        client,
        shipment("S-DELIVERED", "ups-delivered", first_scan_at=hours_ago(60)),
        shipment("S-CANCELLED", "fedex-cancelled"),
        shipment("S-VOIDED", "ups-label-2h", voided=True),
        shipment("S-ANCIENT", "usps-label-17d", label_created_at=hours_ago(130 * 24)),
        shipment("S-MOVING", "fedex-in-transit", first_scan_at=hours_ago(40)),
    )
    refresher = refresher_of(client)
    report = await refresher.run_cycle()
    assert report.retired == {
        "S-DELIVERED": Retired.finished.value,
        "S-CANCELLED": Retired.finished.value,
        "S-ANCIENT": Retired.retention.value,
    }
    assert asked(sandbox) == {"ups": 1, "fedex": 2, "usps": 0}

    await make_all_due(redis_client)
    again = await refresher.run_cycle()
    assert again.refreshed == ["S-MOVING"]
    assert asked(sandbox) == {"ups": 1, "fedex": 3, "usps": 0}
    scheduled = {m.decode() for m in await redis_client.zrange(REFRESH_DUE, 0, -1)}
    assert scheduled == {"S-MOVING"}


async def test_a_refresh_that_sees_a_scan_takes_the_label_off_the_stalled_list(
    service_with: Callable[..., Any],
) -> None:
    """Nobody looked it up: the refresher's answer alone updates the warehouse list."""
    client = await service_with()
    await register(
        client,
        shipment("S-SCANNED", "ups-in-transit", label_created_at=hours_ago(72)),
        shipment("S-NEVER", "ups-label-5d"),
    )
    assert await stalled_ids(client) == ["S-NEVER", "S-SCANNED"]
    await refresher_of(client).run_cycle()
    assert await stalled_ids(client) == ["S-NEVER"]


async def test_lag_says_how_overdue_the_backlog_is(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """After a cycle that could not catch up, the lag is how overdue the backlog is, also in /metrics."""
    client = await service_with(refresher_batch_size=1)
    await register(client, *(shipment(f"S-{i}", "ups-in-transit", first_scan_at=hours_ago(30))
                             for i in range(3)))
    hour_ago = time.time() - 3600
    await redis_client.zadd(REFRESH_DUE, {f"S-{i}": hour_ago for i in range(3)})
    refresher = refresher_of(client)
    report = await refresher.run_cycle()
    assert 3500 < report.lag_s < 3700
    assert refresher.last_cycle_lag_s == report.lag_s
    metrics = await (await client.get("/metrics")).text()
    line = next(x for x in metrics.splitlines() if x.startswith("tracksvc_refresher_lag_seconds "))
    assert 3500 < float(line.split()[1]) < 3700


async def test_the_refresher_runs_in_the_background_when_enabled(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """TRACKSVC_REFRESHER_ENABLED starts it with the service; a registered label gets polled unasked."""
    client = await service_with(refresher_enabled=True, refresher_period_s=0.05)
    await register(client, shipment("S-1", "usps-label-5d"))
    for _ in range(500):
        if sandbox.state.numbers_asked["usps"]:
            break
        await asyncio.sleep(0.02)
    assert sandbox.state.numbers_asked["usps"] == 1
    assert refresher_of(client).cycles >= 1


async def test_the_refresher_stays_off_when_disabled(service_with: Callable[..., Any]) -> None:
    """Switched off, the refresher is built (a cycle can be driven) but never runs by itself."""
    client = await service_with(refresher_enabled=False, refresher_period_s=0.01)
    await register(client, shipment("S-1", "usps-label-5d"))
    await asyncio.sleep(0.2)
    assert refresher_of(client).cycles == 0


async def test_cli_refresher_once_prints_its_report(
    sandbox: Sandbox, redis_server: RedisServer, service_with: Callable[..., Any]
) -> None:
    """``tracksvc refresher --once`` runs one cycle without HTTP and prints what it did."""
    client = await service_with()
    await register(client, shipment("S-CLI", "ups-label-5d"))
    env = {**os.environ, "TRACKSVC_REDIS_URL": redis_server.url, "TRACKSVC_LOG_LEVEL": "warning",
           "TRACKSVC_REDIS_CLUSTER": str(ON_CLUSTER).lower()}
    for carrier in ("UPS", "FEDEX", "USPS"):
        env[f"TRACKSVC_{carrier}_BASE_URL"] = sandbox.url
        env[f"TRACKSVC_{carrier}_CLIENT_ID"] = "cli-id"
        env[f"TRACKSVC_{carrier}_CLIENT_SECRET"] = "cli-secret"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracksvc", "refresher", "--once",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=REPO,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    report = orjson.loads(out)
    assert report["refreshed"] == ["S-CLI"]
    assert sandbox.state.numbers_asked["ups"] == 1


# -- pure rules --------------------------------------------------------------

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SCHEDULE = Schedule(period_s=60, revisit_s=900, limits=Limits(tender_grace_hours=48, stalled_after_hours=72))


def record(label_hours_ago: float, carrier: Carrier = Carrier.ups, **extra: Any) -> ShipmentRecord:
    return ShipmentRecord.model_validate(
        {
            "shipment_id": "S",
            "order_number": "W-S",
            "carrier": carrier,
            "tracking_number": number_of(f"{carrier.value}-label-2h"),
            "label_created_at": NOW - timedelta(hours=label_hours_ago),
            **extra,
        }
    )


def lookup(status: TrackingStatus | None, *, as_of: datetime = NOW, scan_hours_ago: float | None = None,
           freshness: Freshness = Freshness.live, outcome: Outcome = Outcome.not_found) -> Lookup:
    number = number_of("ups-label-2h")
    if status is None:
        message = CarrierMessage(carrier=Carrier.ups, tracking_number=number, outcome=outcome)
        return Lookup(Carrier.ups, number, None, message, as_of, freshness)
    events = []
    if scan_hours_ago is not None:
        events.append(TrackingEvent(occurred_at=NOW - timedelta(hours=scan_hours_ago),
                                    status=TrackingStatus.in_transit, code="AR"))
    result = TrackingResult(carrier=Carrier.ups, tracking_number=number, status=status, events=events)
    return Lookup(Carrier.ups, number, result, None, as_of, freshness)


def test_every_carrier_has_a_retention_and_ups_keeps_120_days() -> None:
    """The retention table covers every carrier; UPS's documented 120 days is there."""
    assert set(RETENTION_DAYS) == set(Carrier)
    assert RETENTION_DAYS[Carrier.ups] == 120


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        (None, Retired.missing),
        (record(1, voided=True), Retired.voided),
        (record(121 * 24), Retired.retention),
        (record(119 * 24), None),
    ],
)
def test_what_is_never_asked(rec: ShipmentRecord | None, expected: Retired | None) -> None:
    """Gone, voided and past-retention shipments are not asked about."""
    assert retire_before_asking(rec, NOW) == expected


def test_a_label_is_looked_at_again_right_after_its_grace_period_ends() -> None:
    """A label 47.9 h old is due when it turns not_tendered (in 6 minutes), before the 15-minute revisit."""
    due = next_due(record(47.9), lookup(TrackingStatus.label_created), NOW, SCHEDULE)
    assert due == pytest.approx((NOW + timedelta(minutes=6)).timestamp() + 1)


def test_a_young_label_waits_for_the_revisit() -> None:
    """A label 40 h old turns not_tendered in 8 h: the 15-minute revisit comes first."""
    due = next_due(record(40), lookup(TrackingStatus.label_created), NOW, SCHEDULE)
    assert due == (NOW + timedelta(minutes=15)).timestamp()


def test_an_unknown_registered_label_counts_as_a_label_for_the_grace_clock() -> None:
    """The carrier does not know the label yet: its grace period still ends at label + 48 h."""
    change = next_change_at(record(47), lookup(None), NOW, SCHEDULE.limits)
    assert change == (NOW + timedelta(hours=1)).timestamp()


def test_a_parcel_in_transit_is_due_when_it_would_stall() -> None:
    """In transit, last scan 71.9 h ago: due once 72 h have passed, sooner than the revisit."""
    due = next_due(record(100), lookup(TrackingStatus.in_transit, scan_hours_ago=71.9), NOW, SCHEDULE)
    assert due is not None
    assert due == pytest.approx((NOW + timedelta(hours=0.1)).timestamp() + 1)


def test_the_revisit_counts_from_the_answer_time() -> None:
    """A cached answer from 10 minutes ago is due 15 minutes after it was fetched."""
    due = next_due(record(1), lookup(TrackingStatus.in_transit, as_of=NOW - timedelta(minutes=10),
                                     freshness=Freshness.cached, scan_hours_ago=1), NOW, SCHEDULE)
    assert due == (NOW + timedelta(minutes=5)).timestamp()


def test_never_due_within_the_same_period() -> None:
    """However soon a clock rule fires, a shipment waits at least one period."""
    due = next_due(record(47.999), lookup(TrackingStatus.label_created), NOW, SCHEDULE)
    assert due == NOW.timestamp() + 60


@pytest.mark.parametrize("status", [TrackingStatus.delivered, TrackingStatus.cancelled])
def test_finished_shipments_are_never_due(status: TrackingStatus) -> None:
    """Delivered and cancelled: nothing more will happen, polling stops."""
    assert next_due(record(100), lookup(status), NOW, SCHEDULE) is None


def test_a_carrier_that_could_not_be_asked_is_tried_after_a_few_periods() -> None:
    """No answer (timeout, no budget): try again in five periods, not at the next cycle."""
    failed = lookup(None, outcome=Outcome.unavailable)
    assert next_due(record(1), failed, NOW, SCHEDULE) == NOW.timestamp() + 300
