"""The customer portal: verified by postal code, customer-safe, rate-limited, on the real service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.conftest import PORTAL, Sandbox
from tests.contract import assert_matches
from tracksvc.api.routes.portal import (
    failure_key_prefix,
    normalize_postal_code,
    postal_code_matches,
)
from tracksvc.core.models import Carrier
from tracksvc.dev.seed import seed
from tracksvc.domain.records import Direction, OrderRecord, ShipmentRecord
from tracksvc.registry.store import Registry

PORTAL_PATH = "/v1/portal/orders/{order_number}"

#: Names that must never reach a customer, at any depth of the answer.
INTERNAL_FIELDS = {
    "agent_advice", "internal_status", "internal_note", "internal_shipping_number", "flags",
    "origin", "shipment_id", "carrier_status_code", "status_detail", "summary", "matched",
    "label_created_at", "status_since", "reason", "code", "promised_delivery_date",
    "carrier_problem", "detail", "aliases", "freshness",
}


@pytest.fixture
async def seeded(redis_client: aioredis.Redis) -> Registry:
    """The seed stories in the registry."""
    registry = Registry(redis_client)
    await seed(registry)
    return registry


async def portal(
    client: Any, order_number: str, postal_code: str | None, headers: dict[str, str] = PORTAL
) -> tuple[int, Any, bytes, Any]:
    query = {} if postal_code is None else {"postal_code": postal_code}
    response = await client.get(f"/v1/portal/orders/{order_number}", params=query, headers=headers)
    raw = await response.read()
    body = await response.json()
    assert_matches(PORTAL_PATH, "get", response.status, body)
    return response.status, body, raw, response.headers


def all_keys(value: Any) -> set[str]:
    """Every mapping key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in all_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in all_keys(v)}
    return set()


async def test_right_postal_code_shows_the_customer_view(service: Any, seeded: Registry) -> None:
    """The Brooklyn Park order, verified, is not_tendered in plain words with its USPS number."""
    status, body, _, headers = await portal(service, "W2001001", "11201")
    assert status == 200
    assert body["order_number"] == "W2001001"
    assert body["status"] == "not_tendered"
    assert "has not been handed to USPS" in body["customer_message"]
    (shipment,) = body["shipments"]
    assert shipment["carrier"] == "usps"
    assert shipment["tracking_number"] == "9400112345600000000025"
    assert shipment["tracking_url"].startswith("https://tools.usps.com/")
    assert shipment["last_event"]["description"]
    assert headers["Cache-Control"] == "no-store"


async def test_customer_view_has_no_internal_field_or_value(service: Any, seeded: Registry) -> None:
    """No advice, internal status, note, flag, origin or shipment id, by name or by value."""
    _, body, raw, _ = await portal(service, "W2001001", "11201")
    assert not all_keys(body) & INTERNAL_FIELDS
    text = raw.decode()
    for internal in ("Brooklyn", "MSP1", "shp-2001001-1", "internal_mismatch", "shipped", "reship"):
        assert internal not in text


@pytest.mark.parametrize("given", ["11201-1234", " 11201 ", "112011234", "11201 1234"])
async def test_zip_plus_four_and_spacing_match(service: Any, seeded: Registry, given: str) -> None:
    """A ZIP+4, spaces or no dash: the 5-digit ZIP on record still matches."""
    status, _, _, _ = await portal(service, "W2001001", given)
    assert status == 200


async def test_order_number_in_lower_case_matches(service: Any, seeded: Registry) -> None:
    """Customers type order numbers in any case."""
    status, body, _, _ = await portal(service, "w2001002", "75201")
    assert status == 200
    assert body["order_number"] == "W2001002"


@pytest.mark.parametrize("postal_code", [None, "", "   "])
async def test_missing_postal_code_is_400(service: Any, seeded: Registry, postal_code: str | None) -> None:
    """No postal code at all is the caller's mistake: 400, not 404."""
    status, body, _, _ = await portal(service, "W2001001", postal_code)
    assert status == 400
    assert body["error"]["code"] == "postal_code_required"


async def test_wrong_code_and_no_such_order_answer_byte_for_byte_alike(
    service: Any, seeded: Registry, sandbox: Sandbox
) -> None:
    """Same status, same body, and no carrier was asked for either."""
    wrong_status, _, wrong_raw, _ = await portal(service, "W2001001", "99999")
    none_status, _, none_raw, _ = await portal(service, "W7654321", "99999")
    unlisted_status, _, unlisted_raw, _ = await portal(service, "W2001001", "11201-0000x")
    assert wrong_status == none_status == unlisted_status == 404
    assert wrong_raw == none_raw == unlisted_raw
    assert sum(sandbox.state.calls.values()) == 0


async def test_tracking_number_or_shipment_id_is_not_an_order_number(
    service: Any, seeded: Registry
) -> None:
    """The portal answers registered order numbers only, even with the right postal code."""
    by_tracking, _, raw_tracking, _ = await portal(service, "9400112345600000000025", "11201")
    by_shipment, _, raw_shipment, _ = await portal(service, "shp-2001001-1", "11201")
    _, _, raw_none, _ = await portal(service, "W7654321", "11201")
    assert by_tracking == by_shipment == 404
    assert raw_tracking == raw_shipment == raw_none


async def test_replaced_order_number_answers_with_the_new_order(service: Any, seeded: Registry) -> None:
    """The earlier online number finds the store order, with its return parcel."""
    status, body, _, _ = await portal(service, "W2001003", "10001")
    assert status == 200
    assert body["order_number"] == "S-4477-0192"
    assert "S-4477-0192" in body["customer_message"]
    assert sorted(s["direction"] for s in body["shipments"]) == ["outbound", "return"]


async def test_return_destination_does_not_verify(service: Any, redis_client: aioredis.Redis) -> None:
    """A return parcel goes to our warehouse: its postal code proves nothing about the customer."""
    registry = Registry(redis_client)
    now = datetime.now(UTC)
    await registry.put_order(OrderRecord(order_number="W5550001", destination_postal_code="10001"))
    await registry.put_shipment(ShipmentRecord(
        shipment_id="shp-5550001-r1", order_number="W5550001", carrier=Carrier.ups,
        tracking_number="1ZTRKSVC0100000033", label_created_at=now - timedelta(days=1),
        direction=Direction.return_, destination_postal_code="55428",
    ))
    warehouse_code, _, _, _ = await portal(service, "W5550001", "55428")
    customer_code, _, _, _ = await portal(service, "W5550001", "10001")
    assert (warehouse_code, customer_code) == (404, 200)


async def test_order_without_postal_code_on_record_never_verifies(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """Nothing on record to compare with: every code fails, the empty-looking ones included."""
    await Registry(redis_client).put_order(OrderRecord(order_number="W5550002"))
    for given in ("00000", "-", "x"):
        status, _, _, _ = await portal(service, "W5550002", given)
        assert status == 404


async def test_failures_per_client_are_limited(service_with: Any, seeded: Registry) -> None:
    """After the limit, one client gets 429 with Retry-After on any order; other clients do not."""
    client = await service_with(portal_max_failures=3, portal_client_ip_header="X-Forwarded-For",
                                trusted_proxies="127.0.0.1/32,10.0.0.0/8")
    guesser = {**PORTAL, "X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    for order_number in ("W2001001", "W2001002", "W7654321"):
        status, _, _, _ = await portal(client, order_number, "00000", headers=guesser)
        assert status == 404
    status, body, _, headers = await portal(client, "W2001005", "94105", headers=guesser)
    assert status == 429
    assert body["error"]["code"] == "too_many_attempts"
    assert 0 < int(headers["Retry-After"]) <= 900
    other = {**PORTAL, "X-Forwarded-For": "198.51.100.9"}
    status, _, _, _ = await portal(client, "W2001005", "94105", headers=other)
    assert status == 200


async def test_failures_per_order_number_are_limited(service_with: Any, seeded: Registry) -> None:
    """Guesses at one order from many clients lock that order only, not the other orders."""
    client = await service_with(portal_max_failures=3, portal_client_ip_header="X-Forwarded-For",
                                trusted_proxies="127.0.0.1/32")
    for n in range(3):
        headers = {**PORTAL, "X-Forwarded-For": f"203.0.113.{n}"}
        status, _, _, _ = await portal(client, "W2001002", "00000", headers=headers)
        assert status == 404
    fresh = {**PORTAL, "X-Forwarded-For": "198.51.100.9"}
    locked, _, _, headers = await portal(client, "w2001002", "75201", headers=fresh)
    assert locked == 429
    assert "Retry-After" in headers
    other_order, _, _, _ = await portal(client, "W2001001", "11201", headers=fresh)
    assert other_order == 200


async def test_failure_counters_expire_with_the_window(
    service_with: Any, seeded: Registry, redis_client: aioredis.Redis
) -> None:
    """Each counter is a Redis key that expires within the configured window."""
    client = await service_with(portal_failure_window_s=120, portal_client_ip_header="X-Forwarded-For")
    await portal(client, "W2001001", "00000")
    keys = sorted(k.decode() for k in await redis_client.keys(f"{failure_key_prefix}*"))
    assert keys == [f"{failure_key_prefix}{{client:127.0.0.1}}", f"{failure_key_prefix}{{order:W2001001}}"]
    for key in keys:
        assert 0 < await redis_client.ttl(key) <= 120
        assert await redis_client.get(key) == b"1"


async def test_successes_do_not_count(
    service_with: Any, seeded: Registry, redis_client: aioredis.Redis
) -> None:
    """A customer checking their own order again and again is never limited."""
    client = await service_with(portal_max_failures=2)
    for _ in range(4):
        status, _, _, _ = await portal(client, "W2001002", "75201")
        assert status == 200
    assert await redis_client.keys(f"{failure_key_prefix}*") == []


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("11201", "11201"), ("11201-1234", "11201"), ("112011234", "11201"), (" k1a 0b1 ", "K1A0B1"),
     ("SW1A 1AA", "SW1A1AA"), ("1234", "1234"), ("12345-678", "12345678")],
)
def test_postal_codes_normalize(raw: str, normal: str) -> None:
    """Spaces and dashes go, letters are upper-cased, a ZIP+4 is cut to its ZIP."""
    assert normalize_postal_code(raw) == normal


def test_postal_code_compare_needs_a_code_on_record() -> None:
    """Any code on record may match; nothing on record matches nothing."""
    assert postal_code_matches("11201", ["75201", "11201"])
    assert not postal_code_matches("11201", ["75201"])
    assert not postal_code_matches("", [])
