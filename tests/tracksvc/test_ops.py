"""``GET /readyz`` and ``GET /metrics`` end to end (real Redis, real sandbox)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from carriers.sandbox.scenarios import CATALOGUE
from tests.conftest import ADMIN, AGENT, Sandbox
from tests.contract import assert_matches
from tracksvc.core.models import Carrier

UPS_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "ups-in-transit")


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return None


async def test_readyz_ready_with_every_carrier_closed(service: Any) -> None:
    """Redis up: 200 ready, each carrier's breaker closed; no key needed."""
    response = await service.get("/readyz")
    body = await response.json()
    assert response.status == 200
    assert_matches("/readyz", "get", 200, body)
    assert body == {
        "status": "ready",
        "redis": "ok",
        "carriers": {"ups": "closed", "fedex": "closed", "usps": "closed"},
    }


async def test_readyz_degraded_when_redis_is_unreachable(service_with: Callable[..., Any]) -> None:
    """Redis unreachable: 503 degraded, saying it is Redis."""
    client = await service_with(redis_url="redis://127.0.0.1:1/0")
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503
    assert_matches("/readyz", "get", 503, body)
    assert body["status"] == "degraded"
    assert body["redis"] == "unreachable"
    assert body["reasons"][0].startswith("redis unreachable")


async def test_readyz_reports_an_open_breaker(
    service_with: Callable[..., Any], sandbox: Sandbox
) -> None:
    """A carrier whose breaker opened shows as open; the replica stays ready."""
    client = await service_with(breaker_failure_threshold=1, carrier_retry_attempts=1)
    sandbox.state.queue_fault(Carrier.ups, "503", 1)
    assert (await client.get(f"/v1/track/{UPS_IN_TRANSIT}", headers=AGENT)).status == 200
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200
    assert body["carriers"]["ups"] == "open"


async def test_metrics_count_calls_cache_and_coalescing(service_with: Any, sandbox: Sandbox) -> None:
    """After lookups, /metrics shows the carrier call, the cache miss and hit, and the gauges."""
    # Kept answers off: the second lookup must reach the carrier cache to count as its hit.
    service = await service_with(answer_cache_ttl_s=0)
    assert (await service.get(f"/v1/track/{UPS_IN_TRANSIT}", headers=AGENT)).status == 200
    assert (await service.get(f"/v1/track/{UPS_IN_TRANSIT}", headers=AGENT)).status == 200
    response = await service.get("/metrics")
    text = await response.text()
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert sample(text, "tracksvc_carrier_calls_total", carrier="ups", outcome="ok") == 1.0
    assert sample(text, "tracksvc_carrier_call_seconds_count", carrier="ups") == 1.0
    assert sample(text, "tracksvc_cache_lookups_total", carrier="ups", result="miss") == 1.0
    assert sample(text, "tracksvc_cache_lookups_total", carrier="ups", result="hit") == 1.0
    assert sample(text, "tracksvc_carrier_batch_size_count", carrier="ups") == 1.0
    assert sample(text, "tracksvc_breaker_state", carrier="fedex") == 0.0
    assert sample(text, "tracksvc_refresher_lag_seconds") is not None
    assert "tracksvc_coalesced_waits_total" in text
    assert "tracksvc_quota_refusals_total" in text


async def test_metrics_of_two_apps_do_not_mix(service_with: Callable[..., Any]) -> None:
    """Each app has its own registry: one app's calls are not in the other's metrics."""
    first, second = await service_with(), await service_with()
    assert (await first.get(f"/v1/track/{UPS_IN_TRANSIT}", headers=AGENT)).status == 200
    text = await (await second.get("/metrics")).text()
    assert sample(text, "tracksvc_carrier_calls_total", carrier="ups", outcome="ok") is None


async def test_metrics_can_require_an_admin_key(service_with: Callable[..., Any]) -> None:
    """With metrics_require_admin, /metrics wants an admin key."""
    client = await service_with(metrics_require_admin=True)
    anonymous = await client.get("/metrics")
    assert anonymous.status == 401
    assert_matches("/metrics", "get", 401, await anonymous.json())
    agent = await client.get("/metrics", headers=AGENT)
    assert agent.status == 403
    admin = await client.get("/metrics", headers=ADMIN)
    assert admin.status == 200
    assert "tracksvc_carrier_calls" in await admin.text()
