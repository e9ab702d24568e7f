"""
Spent budgets answer at once, and carrier budgets are shared out (issue 8,
item 5): half of each budget is kept for registered shipments, and each API
key may use a quarter of the rest for unregistered numbers. The real service
against the sandbox's call counters, USPS at 4 calls an hour: the ad-hoc part
is 2 calls, each key's share 1.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from carriers.sandbox.scenarios import Scenario, Step, ups_number, usps_number
from tests.conftest import AGENT, INGEST, Sandbox
from tests.contract import assert_matches
from tracksvc.core.models import Carrier, TrackingStatus

TRACK = "/v1/track/{reference}"
AGENT_TWO = {"Authorization": "Bearer agent-two-key"}
KEYS = (
    "agent:agent-key,agent:agent-two-key,ingest:ingest-key,admin:admin-key,"
    "portal:portal-key,warehouse:warehouse-key"
)
#: What "answers at once" means here (the issue's bound).
AT_ONCE_S = 0.5
NEXT_CALL = re.compile(r"next call allowed at (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d UTC")


def in_transit(number: str) -> Scenario:
    """A USPS parcel in transit for two days."""
    return Scenario(
        Carrier.usps, number, f"usps-{number}", TrackingStatus.in_transit,
        ((Step.label, timedelta(days=2)), (Step.pickup, timedelta(days=1))),
    )


def numbers(sandbox: Sandbox, first: int, count: int) -> list[str]:
    """``count`` USPS numbers the sandbox knows as in transit."""
    made = [usps_number(first + i) for i in range(count)]
    for number in made:
        sandbox.state.add(in_transit(number))
    return made


def usps_calls(sandbox: Sandbox) -> int:
    return sandbox.state.calls["usps:track"]


async def shipment(client: Any, reference: str, headers: dict[str, str]) -> tuple[dict[str, Any], float]:
    """GET /v1/track/{reference}: 200 and the contract; its first shipment and the seconds it took."""
    started = time.monotonic()
    response = await client.get(f"/v1/track/{reference}", headers=headers)
    body = await response.json()
    elapsed = time.monotonic() - started
    assert response.status == 200, body
    assert_matches(TRACK, "get", 200, body)
    first: dict[str, Any] = body["shipments"][0]
    return first, elapsed


def assert_spent_at_once(answer: dict[str, Any], elapsed: float) -> None:
    """Answered at once, saying the USPS budget is spent and when the next call is allowed."""
    assert elapsed < AT_ONCE_S
    problem = answer["carrier_problem"]
    assert problem["kind"] == "budget_spent"
    assert "USPS call budget" in problem["detail"]
    assert NEXT_CALL.search(problem["detail"]), problem["detail"]
    assert "tracksvc has used its allowance of USPS calls for now; not asked at" in answer["reason"]


async def usps_budget(service_with: Callable[..., Any], per_hour: float, **overrides: Any) -> Any:
    return await service_with(
        api_keys=KEYS, usps_quota_per_hour=per_hour, usps_quota_per_second=0, **overrides
    )


async def test_ad_hoc_lookups_past_their_share_answer_at_once(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """Past its key's share, an unregistered USPS number answers unknown at once with the reason; no call."""
    client = await usps_budget(service_with, 4)
    first, second = numbers(sandbox, 9100, 2)
    answered, _ = await shipment(client, first, AGENT)
    assert answered["status"] == "in_transit"
    refused, elapsed = await shipment(client, second, AGENT)
    assert refused["status"] == "unknown"
    assert_spent_at_once(refused, elapsed)
    assert "API key" in refused["carrier_problem"]["detail"]
    assert usps_calls(sandbox) == 1


async def test_each_key_has_its_own_share(service_with: Callable[..., Any], sandbox: Sandbox) -> None:
    """A second agent key still gets its own call after the first key spent its share."""
    client = await usps_budget(service_with, 4)
    first, second, third = numbers(sandbox, 9200, 3)
    await shipment(client, first, AGENT)
    refused, _ = await shipment(client, second, AGENT)
    assert refused["status"] == "unknown"
    other, _ = await shipment(client, second, AGENT_TWO)
    assert other["status"] == "in_transit"
    assert usps_calls(sandbox) == 2
    again, elapsed = await shipment(client, third, AGENT_TWO)
    assert again["status"] == "unknown"
    assert_spent_at_once(again, elapsed)
    assert usps_calls(sandbox) == 2


async def test_registered_shipment_gets_the_reserved_share(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """After ad-hoc lookups spent their whole part, a registered shipment's lookup still asks USPS."""
    client = await usps_budget(service_with, 4)
    first, second, third, registered = numbers(sandbox, 9300, 4)
    await shipment(client, first, AGENT)
    await shipment(client, second, AGENT_TWO)
    assert usps_calls(sandbox) == 2
    put = await client.put(
        "/v1/shipments/shp-share-1",
        json={
            "carrier": "usps",
            "tracking_number": registered,
            "order_number": "W-SHARE-1",
            "label_created_at": "2024-05-01T10:00:00Z",
        },
        headers=INGEST,
    )
    assert put.status == 201, await put.text()
    ad_hoc, elapsed = await shipment(client, third, AGENT)
    assert ad_hoc["status"] == "unknown"
    assert_spent_at_once(ad_hoc, elapsed)
    answer, _ = await shipment(client, "shp-share-1", AGENT)
    assert answer["shipment_id"] == "shp-share-1"
    assert answer["status"] == "in_transit"
    assert answer["freshness"] == "live"
    assert usps_calls(sandbox) == 3


async def test_unlimited_budget_limits_nobody(service_with: Callable[..., Any], sandbox: Sandbox) -> None:
    """USPS unlimited (0): every ad-hoc lookup reaches USPS, while UPS at 4 calls an hour shares out."""
    client = await usps_budget(service_with, 0, ups_quota_per_hour=4, ups_quota_per_second=0)
    made = numbers(sandbox, 9400, 8)
    for number in made:
        answer, _ = await shipment(client, number, AGENT)
        assert answer["status"] == "in_transit"
        assert answer["freshness"] == "live"
    assert usps_calls(sandbox) == 8
    await shipment(client, ups_number(9400), AGENT)
    refused, elapsed = await shipment(client, ups_number(9401), AGENT)
    assert refused["status"] == "unknown"
    assert elapsed < AT_ONCE_S
    assert "UPS call budget of this API key spent" in refused["carrier_problem"]["detail"]
    assert sandbox.state.calls["ups:track"] == 1


async def test_expired_answer_is_served_stale_at_once_when_the_budget_is_spent(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A cached answer past its hard TTL, the key's share spent: served stale at once, with the reason."""
    client = await usps_budget(service_with, 4, cache_ttl_active_s=0, cache_hard_ttl_active_s=0)
    [number] = numbers(sandbox, 9500, 1)
    first, _ = await shipment(client, number, AGENT)
    assert first["freshness"] == "live"
    stale, elapsed = await shipment(client, number, AGENT)
    assert stale["freshness"] == "stale"
    assert "stale" in stale["flags"]
    assert stale["status"] == "in_transit"
    assert stale["as_of"] == first["as_of"]
    assert_spent_at_once(stale, elapsed)
    assert usps_calls(sandbox) == 1


async def test_contended_budget_never_waits_only_to_refuse(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """Ten lookups at once on 2 USPS calls a second: each gets a turn in time or is refused at once."""
    client = await service_with(
        api_keys=KEYS, usps_quota_per_second=2, usps_quota_per_hour=0, quota_reserved_share=0,
        quota_per_key_share=1, carrier_timeout_s=3.0,
    )
    made = numbers(sandbox, 9600, 10)
    answers = await asyncio.gather(*(shipment(client, number, AGENT) for number in made))
    answered = [a for a, _ in answers if a["status"] == "in_transit"]
    refused = [(a, elapsed) for a, elapsed in answers if a["status"] != "in_transit"]
    assert answered
    assert refused
    for answer, elapsed in refused:
        assert_spent_at_once(answer, elapsed)
    assert usps_calls(sandbox) == len(answered)


async def test_without_redis_each_process_keeps_the_shares(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """Redis unreachable: the budget falls back to this process with the same shares."""
    client = await usps_budget(service_with, 4, redis_url="redis://127.0.0.1:1/0")
    first, second = numbers(sandbox, 9700, 2)
    answered, _ = await shipment(client, first, AGENT)
    assert answered["status"] == "in_transit"
    refused, elapsed = await shipment(client, second, AGENT)
    assert refused["status"] == "unknown"
    assert_spent_at_once(refused, elapsed)
    assert usps_calls(sandbox) == 1
