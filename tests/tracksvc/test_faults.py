"""
Faults end to end: the real service against the sandbox's injected faults
and a real redis-server that is killed and restarted. tracksvc never
answers 500; it answers live, stale or unknown, and says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from carriers.sandbox.scenarios import CATALOGUE
from tests.conftest import AGENT, INGEST, Sandbox
from tests.contract import assert_matches
from tracksvc.core.models import Carrier
from tracksvc.dev.redis_server import RedisServer

TRACK = "/v1/track/{reference}"
UPS_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "ups-in-transit")
UPS_DELIVERED = next(s.number for s in CATALOGUE if s.name == "ups-delivered")
FEDEX_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "fedex-in-transit")
USPS_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "usps-in-transit")
LABEL_AT = "2024-05-01T10:00:00Z"


async def shipment(client: Any, reference: str) -> dict[str, Any]:
    """GET /v1/track/{reference}: must be 200 and match the contract; its first shipment."""
    response = await client.get(f"/v1/track/{reference}", headers=AGENT)
    body = await response.json()
    assert response.status == 200, body
    assert_matches(TRACK, "get", 200, body)
    first: dict[str, Any] = body["shipments"][0]
    return first


def calls(sandbox: Sandbox, carrier: Carrier) -> int:
    return sandbox.state.calls[f"{carrier.value}:track"]


async def test_500s_then_success_answers_live(service_with: Callable[..., Any], sandbox: Sandbox) -> None:
    """Two 500s, then the carrier answers: the retries absorb them and the answer is live."""
    client = await service_with(carrier_retry_attempts=3)
    sandbox.state.queue_fault(Carrier.ups, "500", 2)
    answer = await shipment(client, UPS_IN_TRANSIT)
    assert answer["freshness"] == "live"
    assert answer["status"] == "in_transit"
    assert calls(sandbox, Carrier.ups) == 3


async def test_429_with_short_retry_after_is_waited_through(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A 429 asking for one second is honoured, then the carrier answers."""
    client = await service_with(carrier_retry_attempts=2)
    sandbox.state.queue_fault(Carrier.usps, "429", 1, retry_after_s=1)
    answer = await shipment(client, USPS_IN_TRANSIT)
    assert answer["freshness"] == "live"
    assert calls(sandbox, Carrier.usps) == 2


async def test_429_with_long_retry_after_answers_with_the_reason(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A 429 asking for two minutes: no 500, the reason, and no further call to that carrier."""
    client = await service_with(carrier_retry_attempts=3)
    sandbox.state.queue_fault(Carrier.ups, "429", 1, retry_after_s=120)
    answer = await shipment(client, UPS_IN_TRANSIT)
    assert answer["status"] == "unknown"
    assert answer["freshness"] == "unavailable"
    assert answer["carrier_problem"]["kind"] == "rate_limited"
    assert "rate limit" in answer["carrier_problem"]["detail"]
    assert answer["reason"].startswith("UPS asked tracksvc to slow down; asked at ")
    other = await shipment(client, UPS_DELIVERED)
    assert other["status"] == "unknown"
    assert other["carrier_problem"]["kind"] == "rate_limited"
    assert "asked us to wait" in other["carrier_problem"]["detail"]
    assert "asked us to wait" not in other["reason"]
    assert calls(sandbox, Carrier.ups) == 1


async def test_malformed_json_serves_the_last_answer_stale(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A body that is not JSON: the cached answer, flagged stale, with why."""
    client = await service_with(cache_ttl_active_s=0, cache_hard_ttl_active_s=0, carrier_retry_attempts=1)
    first = await shipment(client, UPS_IN_TRANSIT)
    sandbox.state.queue_fault(Carrier.ups, "malformed", 1)
    stale = await shipment(client, UPS_IN_TRANSIT)
    assert stale["freshness"] == "stale"
    assert "stale" in stale["flags"]
    assert stale["status"] == first["status"]
    assert stale["as_of"] == first["as_of"]
    assert "malformed" in stale["carrier_problem"]["detail"]
    assert stale["carrier_problem"]["kind"] == "malformed"
    assert stale["reason"].startswith("showing the answer from ")
    assert "UPS's tracking service sent an answer tracksvc could not read" in stale["reason"]
    assert "JSON" not in stale["reason"]


async def test_timeout_answers_unknown_with_the_reason(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A carrier that hangs past the timeout: status unknown, reason said, no 500."""
    client = await service_with(carrier_timeout_s=0.3, carrier_retry_attempts=1)
    sandbox.state.hang_s = 0.6
    sandbox.state.queue_fault(Carrier.fedex, "hang", 1)
    answer = await shipment(client, FEDEX_IN_TRANSIT)
    assert answer["status"] == "unknown"
    assert answer["freshness"] == "unavailable"
    assert answer["carrier_problem"]["kind"] == "timeout"
    assert "no answer within" in answer["carrier_problem"]["detail"]
    assert "FedEx's tracking service did not answer in time" in answer["reason"]
    assert calls(sandbox, Carrier.fedex) == 1


async def test_connection_reset_is_retried(service_with: Callable[..., Any], sandbox: Sandbox) -> None:
    """TCP resets mid-request are retried; the third attempt answers."""
    client = await service_with(carrier_retry_attempts=3)
    # Two resets: aiohttp itself retries a reset on a reused keep-alive connection once,
    # so only the second one is sure to reach our retry policy.
    sandbox.state.queue_fault(Carrier.ups, "reset", 2)
    answer = await shipment(client, UPS_IN_TRANSIT)
    assert answer["freshness"] == "live"
    assert calls(sandbox, Carrier.ups) == 3


async def test_connection_reset_without_retries_says_so(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """With no retry left, a reset is an unknown status with the reason, never a 500."""
    client = await service_with(carrier_retry_attempts=1)
    sandbox.state.queue_fault(Carrier.ups, "reset", 2)
    answer = await shipment(client, UPS_IN_TRANSIT)
    assert answer["status"] == "unknown"
    assert answer["carrier_problem"]["kind"] == "unavailable"
    assert "connection failed" in answer["carrier_problem"]["detail"]
    assert answer["reason"].startswith("UPS's tracking service is failing; asked at ")


async def test_token_revoked_mid_run_is_replaced(service: Any, sandbox: Sandbox) -> None:
    """The carrier drops our token between lookups: one new token, the lookup still answers."""
    await shipment(service, UPS_IN_TRANSIT)
    assert sandbox.state.revoke_tokens(Carrier.ups) == 1
    answer = await shipment(service, UPS_DELIVERED)
    assert answer["freshness"] == "live"
    assert sandbox.state.calls["ups:token"] == 2


async def test_token_that_expires_is_renewed(service: Any, sandbox: Sandbox) -> None:
    """A token that lives one second is renewed before use; lookups keep answering."""
    sandbox.state.token_ttl_s = 1
    await shipment(service, UPS_IN_TRANSIT)
    await asyncio.sleep(1.1)
    answer = await shipment(service, UPS_DELIVERED)
    assert answer["freshness"] == "live"
    assert sandbox.state.calls["ups:token"] == 2


@pytest.mark.single_redis
async def test_redis_killed_and_restarted_under_load(
    service: Any, sandbox: Sandbox, redis_server: RedisServer
) -> None:
    """
    Redis dies under load: lookups keep answering from the carriers, /readyz
    says degraded, writes are refused (never acknowledged); once Redis is back
    the service reconnects by itself and acknowledged registry data is there.
    """
    put = await service.put(
        "/v1/shipments/shp-fault-1",
        json={"carrier": "ups", "tracking_number": UPS_IN_TRANSIT, "label_created_at": LABEL_AT,
              "order_number": "W-FAULT-1"},
        headers=INGEST,
    )
    assert put.status == 201
    numbers = [s.number for s in CATALOGUE if s.carrier is Carrier.ups and s.fault is None][:6]
    statuses: list[int] = []
    stop = asyncio.Event()

    async def load() -> None:
        i = 0
        while not stop.is_set():
            response = await service.get(f"/v1/track/{numbers[i % len(numbers)]}", headers=AGENT)
            statuses.append(response.status)
            await response.read()
            i += 1

    workers = [asyncio.create_task(load()) for _ in range(4)]
    try:
        await asyncio.sleep(0.2)
        redis_server.kill()
        answered_before = len(statuses)
        ready = await service.get("/readyz")
        body = await ready.json()
        assert ready.status == 503
        assert_matches("/readyz", "get", 503, body)
        assert body["redis"] == "unreachable"
        refused = await service.put(
            "/v1/shipments/shp-fault-2",
            json={"carrier": "ups", "tracking_number": UPS_DELIVERED, "label_created_at": LABEL_AT,
                  "order_number": "W-FAULT-2"},
            headers=INGEST,
        )
        assert refused.status == 503
        await asyncio.sleep(0.5)
        assert len(statuses) > answered_before  # lookups went on while Redis was down
        redis_server.start()
        for _ in range(100):
            if (await service.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.05)
        ready = await service.get("/readyz")
        assert ready.status == 200
        await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        if redis_server.process is None:
            redis_server.start()
    assert statuses
    assert set(statuses) == {200}
    registered = await service.get("/v1/track/shp-fault-1", headers=AGENT)
    assert registered.status == 200
    body = await registered.json()
    assert body["matched"] == "shipment_id"
    assert body["shipments"][0]["shipment_id"] == "shp-fault-1"
