"""
UPS pushes are authenticated and sane: a key of their own, UPS numbers only,
no events from the future or off the calendar, and the carrier's next
answer always replaces a pushed one. Real service, sandbox, redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
import structlog

from tests.conftest import Sandbox
from tests.tracksvc.registry_helpers import number_of, track_ok
from tests.tracksvc.test_push import alert, post_event
from tracksvc.api.keys import tracker_key
from tracksvc.core.models import Carrier
from tracksvc.economy.cache import track_key_prefix

WEBHOOK_KEY = "ups-webhook-secret-for-tests"
UPS_KEY = {"x-api-key": WEBHOOK_KEY}


def dated(payload: dict[str, Any], when: datetime, number: str | None = None) -> dict[str, Any]:
    """A Track Alert moved to ``when`` (GMT fields), optionally for another number."""
    moved = {**payload, "gmtActivityDate": f"{when:%Y%m%d}", "gmtActivityTime": f"{when:%H%M%S}"}
    if number is not None:
        moved["trackingNumber"] = number
    return moved


async def cached_numbers(redis_client: aioredis.Redis) -> list[bytes]:
    return list(await redis_client.keys(f"{track_key_prefix}*"))


# -- the key -------------------------------------------------------------------------


async def test_without_a_webhook_key_the_route_is_503_and_stores_nothing(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """No TRACKSVC_UPS_WEBHOOK_KEY: 503 push_not_configured, even with the client id as key."""
    client = await service_with()
    for headers in ({"x-api-key": "ups-test-id"}, {"x-api-key": ""}, {}):
        status, body = await post_event(client, alert("delivery"), headers=headers)
        assert (status, body["error"]["code"]) == (503, "push_not_configured")
        assert "TRACKSVC_UPS_WEBHOOK_KEY" in body["error"]["message"]
    assert await cached_numbers(redis_client) == []


async def test_the_start_says_once_why_push_is_off(service_with: Callable[..., Any]) -> None:
    """Starting without the key logs one warning naming the setting; with it, none."""
    with structlog.testing.capture_logs() as logs:
        await service_with()
    warnings = [e for e in logs if e["event"] == "ups_push_not_configured"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert "TRACKSVC_UPS_WEBHOOK_KEY" in warnings[0]["reason"]
    with structlog.testing.capture_logs() as logs:
        await service_with(ups_webhook_key=WEBHOOK_KEY)
    assert [e for e in logs if e["event"] == "ups_push_not_configured"] == []


# -- the payload --------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["HELLO WORLD", "1Z204W4R0308071866", "1Z204W4R030807186", "123456789012", "9400111899223100000000",
     "1Z\u200b204W4R0308071865", "x" * 200],
    ids=["text", "bad-check-digit", "short", "fedex-like", "usps-like", "zero-width", "long"],
)
async def test_only_ups_numbers_are_taken(
    service_with: Callable[..., Any], redis_client: aioredis.Redis, number: str
) -> None:
    """A trackingNumber that is not a UPS number (format, check digit) is a 422 naming it; nothing cached."""
    client = await service_with(ups_webhook_key=WEBHOOK_KEY)
    status, body = await post_event(client, {**alert("delivery"), "trackingNumber": number}, headers=UPS_KEY)
    assert status == 422
    assert body["error"]["details"][0]["field"] == "trackingNumber"
    assert await cached_numbers(redis_client) == []


async def test_events_from_the_future_are_refused(
    service_with: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    """Dated 2030 (or an hour ahead): 422 naming the date field; ten minutes ahead is clock skew, taken."""
    client = await service_with(ups_webhook_key=WEBHOOK_KEY)
    now = datetime.now(UTC)
    for when in (datetime(2030, 1, 1, 12, tzinfo=UTC), now + timedelta(hours=1)):
        status, body = await post_event(client, dated(alert("delivery"), when), headers=UPS_KEY)
        assert status == 422
        assert body["error"]["details"][0]["field"] == "gmtActivityDate"
        assert "15 minutes" in body["error"]["message"]
    assert await cached_numbers(redis_client) == []
    skewed = dated(alert("delivery"), now + timedelta(minutes=10))
    status, _ = await post_event(client, skewed, headers=UPS_KEY)
    assert status == 200


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"localActivityDate": "00010101", "localActivityTime": "000000", "gmtOffset": "+05:00"},
         "localActivityDate"),
        ({"localActivityDate": "99991231", "localActivityTime": "235959", "gmtOffset": "-05:00"},
         "localActivityDate"),
        ({"localActivityDate": "00010101", "localActivityTime": "120000"}, "localActivityDate"),
        ({"gmtActivityDate": "20241399", "gmtActivityTime": "120000"}, "gmtActivityDate"),
        ({"gmtActivityDate": "yesterday", "gmtActivityTime": "120000"}, "gmtActivityDate"),
        ({}, "gmtActivityDate"),
    ],
    ids=["year-1-with-offset", "year-9999-with-offset", "year-1", "month-13", "not-a-date", "no-time"],
)
async def test_dates_off_the_calendar_are_422_naming_the_field(
    service_with: Callable[..., Any], fields: dict[str, str], field: str
) -> None:
    """Out-of-range or unreadable event dates are a 422 naming the field, never a 500."""
    client = await service_with(ups_webhook_key=WEBHOOK_KEY)
    payload = {k: v for k, v in alert("delivery").items()
               if k not in ("gmtActivityDate", "gmtActivityTime", "localActivityDate", "localActivityTime")}
    status, body = await post_event(client, {**payload, **fields}, headers=UPS_KEY)
    assert status == 422
    assert body["error"]["details"][0]["field"] == field


# -- the carrier's next answer wins ----------------------------------------------------


async def test_the_next_carrier_fetch_replaces_a_pushed_delivery(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A pushed 'delivered' is served until its freshness ends; then UPS is asked and its answer stands."""
    client = await service_with(ups_webhook_key=WEBHOOK_KEY, cache_ttl_active_s=1)
    number = number_of("ups-in-transit")
    assert (await track_ok(client, number))["status"] == "in_transit"
    ahead = datetime.now(UTC) + timedelta(minutes=10)  # as new as a push may be
    status, body = await post_event(client, dated(alert("delivery"), ahead, number), headers=UPS_KEY)
    assert (status, body["status"]) == (200, "delivered")
    assert (await track_ok(client, number))["status"] == "delivered"
    assert sandbox.state.calls["ups:track"] == 1

    await asyncio.sleep(1.1)  # past the (active) soft TTL, far inside the final one (3 days)
    await track_ok(client, number)  # served as it stands, refreshed in the background
    await client.server.app[tracker_key].settle()
    assert sandbox.state.calls["ups:track"] == 2
    view = await track_ok(client, number)
    assert view["status"] == "in_transit"
    assert view["shipments"][0]["events"][0]["status"] != "delivered"


async def test_pushes_one_after_another_never_keep_a_number_from_the_carrier(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """Each push does not restart the freshness: past it, the carrier is asked although pushes kept coming."""
    client = await service_with(ups_webhook_key=WEBHOOK_KEY, cache_ttl_active_s=1)
    number = number_of("ups-in-transit")
    now = datetime.now(UTC)
    first = dated(alert("out_for_delivery"), now, number)
    assert (await post_event(client, first, headers=UPS_KEY))[0] == 200
    await asyncio.sleep(0.6)
    later = now + timedelta(seconds=30)
    second = dated(alert("out_for_delivery"), later, number)
    assert (await post_event(client, second, headers=UPS_KEY))[0] == 200
    await asyncio.sleep(0.6)
    await track_ok(client, number)
    await client.server.app[tracker_key].settle()
    assert sandbox.state.calls["ups:track"] == 1
    assert (await track_ok(client, number))["status"] == "in_transit"


async def test_the_refresher_asks_the_carrier_about_a_pushed_answer(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A refresh never takes a pushed 'delivered' on trust: it asks UPS at once, and UPS's answer stands."""
    client = await service_with(ups_webhook_key=WEBHOOK_KEY)
    number = number_of("ups-in-transit")
    pushed = dated(alert("delivery"), datetime.now(UTC), number)
    status, body = await post_event(client, pushed, headers=UPS_KEY)
    assert (status, body["status"]) == (200, "delivered")
    tracker = client.server.app[tracker_key]
    refreshed = await tracker.refresh(Carrier.ups, number)
    assert sandbox.state.calls["ups:track"] == 1
    assert refreshed.result is not None
    assert refreshed.result.status.value == "in_transit"
