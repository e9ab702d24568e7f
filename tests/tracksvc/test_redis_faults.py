"""
Redis trouble never becomes a false answer (issue 8, item 4), against a
redis-server of each test's own, stopped or frozen (SIGSTOP) while the
service runs: a reference that may be registered answers 503
``registry_unavailable`` with ``Retry-After``, never 404; a carrier number is
still answered by its carrier, within the request's Redis budget, and the
service finds the registry again by itself once Redis is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from carriers.sandbox.scenarios import CATALOGUE
from tests.conftest import AGENT, INGEST, Sandbox
from tests.contract import assert_matches
from tracksvc.app import STARTUP_SLOT_MAP_S, create_app
from tracksvc.core.redis import Connection, redis_client
from tracksvc.core.settings import Settings
from tracksvc.dev.redis_server import RedisServer, free_port

TRACK = "/v1/track/{reference}"
UPS_IN_TRANSIT = next(s.number for s in CATALOGUE if s.name == "ups-in-transit")
UPS_OUT_FOR_DELIVERY = next(s.number for s in CATALOGUE if s.name == "ups-out-for-delivery")
UPS_DELIVERED = next(s.number for s in CATALOGUE if s.name == "ups-delivered")
SHIPMENT_ID = "shp-redis-fault-1"

#: The issue's bound: with Redis hung, lookups answer within this (the budget is 1 s).
HUNG_REDIS_BOUND_S = 3.0


@pytest.fixture
async def client(
    own_redis: RedisServer, sandbox: Sandbox, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> Any:
    """The service on ``own_redis``, with one registered shipment."""
    # Kept answers off: these tests are about reading the registry while Redis fails (a kept
    # answer, see test_answers.py, would answer before the registry is asked).
    settings = make_settings(sandbox.url, redis_url=own_redis.url, answer_cache_ttl_s=0)
    service = await aiohttp_client(create_app(settings))
    put = await service.put(
        f"/v1/shipments/{SHIPMENT_ID}",
        json={
            "carrier": "ups",
            "tracking_number": UPS_DELIVERED,
            "order_number": "W-REDIS-FAULT-1",
            "label_created_at": "2024-05-01T10:00:00Z",
        },
        headers=INGEST,
    )
    assert put.status == 201, await put.text()
    return service


async def get(client: Any, reference: str) -> tuple[int, dict[str, Any], Any, float]:
    """GET /v1/track/{reference}: status, body (checked against the contract), headers, seconds."""
    started = time.monotonic()
    response = await client.get(f"/v1/track/{reference}", headers=AGENT)
    body = await response.json()
    elapsed = time.monotonic() - started
    assert_matches(TRACK, "get", response.status, body)
    return response.status, body, response.headers, elapsed


def assert_registry_unavailable(status: int, body: dict[str, Any], headers: Any) -> None:
    """503 registry_unavailable with a Retry-After in whole seconds."""
    assert status == 503, body
    assert body["error"]["code"] == "registry_unavailable"
    assert int(headers["Retry-After"]) >= 1


async def until_answered(client: Any, reference: str, within_s: float = 10.0) -> dict[str, Any]:
    """Poll GET /v1/track/{reference} until it answers 200 (Redis back), within ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        status, body, _, _ = await get(client, reference)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return body
        await asyncio.sleep(0.2)


async def test_redis_stopped_registered_reference_is_503_never_404(
    client: Any, own_redis: RedisServer
) -> None:
    """Redis stopped: a registered shipment id is 503 with Retry-After; a carrier number still answers."""
    status, body, _, _ = await get(client, SHIPMENT_ID)
    assert status == 200
    own_redis.stop()
    status, body, headers, _ = await get(client, SHIPMENT_ID)
    assert_registry_unavailable(status, body, headers)
    status, body, _, _ = await get(client, UPS_IN_TRANSIT)
    assert status == 200, body
    assert body["status"] == "in_transit"
    assert body["shipments"][0]["freshness"] == "live"
    assert "registry_unavailable" in body["flags"]
    own_redis.start()
    body = await until_answered(client, SHIPMENT_ID)
    assert body["matched"] == "shipment_id"
    assert body["shipments"][0]["shipment_id"] == SHIPMENT_ID


async def test_redis_stopped_batch_item_is_registry_unavailable(client: Any, own_redis: RedisServer) -> None:
    """Redis stopped: in POST /v1/track the registered id is an item error registry_unavailable."""
    own_redis.stop()
    response = await client.post(
        "/v1/track", json={"references": [SHIPMENT_ID, UPS_IN_TRANSIT]}, headers=AGENT
    )
    body = await response.json()
    assert response.status == 200, body
    assert_matches("/v1/track", "post", 200, body)
    registered, carrier_number = body["results"]
    assert registered["ok"] is False
    assert registered["error"]["code"] == "registry_unavailable"
    assert carrier_number["ok"] is True
    assert carrier_number["view"]["status"] == "in_transit"
    assert "registry_unavailable" in carrier_number["view"]["flags"]


async def test_redis_hung_lookups_answer_within_the_budget(client: Any, own_redis: RedisServer) -> None:
    """Redis frozen (SIGSTOP): carrier numbers answer their real status, the registered id 503, within 3 s."""
    assert own_redis.process is not None
    pid = own_redis.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        status, body, _, elapsed = await get(client, UPS_IN_TRANSIT)
        assert status == 200, body
        assert body["status"] == "in_transit"
        assert "registry_unavailable" in body["flags"]
        assert elapsed < HUNG_REDIS_BOUND_S
        status, body, headers, elapsed = await get(client, SHIPMENT_ID)
        assert_registry_unavailable(status, body, headers)
        assert elapsed < HUNG_REDIS_BOUND_S
        status, body, _, elapsed = await get(client, UPS_OUT_FOR_DELIVERY)
        assert status == 200, body
        assert body["status"] == "out_for_delivery"
        assert elapsed < HUNG_REDIS_BOUND_S
    finally:
        os.kill(pid, signal.SIGCONT)
    body = await until_answered(client, SHIPMENT_ID)
    assert body["shipments"][0]["shipment_id"] == SHIPMENT_ID
    assert "registry_unavailable" not in body["flags"]


async def test_a_frozen_redis_still_times_out_the_read_after_a_send_without_a_timer(
    own_redis: RedisServer,
) -> None:
    """
    tracksvc's connection sends without redis-py's per-command timer task, yet a
    Redis that stops answering is still noticed by the read's socket timeout.
    """
    client = redis_client(own_redis.url)
    try:
        await client.set("k", "v")
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises((RedisTimeoutError, RedisConnectionError)):
            await client.get("k")
        assert time.monotonic() - started < 5.0  # two reads of 2 s: the try and its one retry
        os.kill(own_redis.process.pid, signal.SIGCONT)
        assert await client.get("k") == b"v"
        connection = await client.connection_pool.get_connection()
        assert isinstance(connection, Connection)
        assert connection.socket_timeout == 2.0  # restored after each send
        await client.connection_pool.release(connection)
    finally:
        if own_redis.process is not None:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        await client.aclose()


async def test_a_cluster_unreachable_at_start_still_starts_and_answers_carrier_numbers(
    service_with: Callable[..., Any],
) -> None:
    """
    The start reads a cluster's slot map first, but a cluster nobody answers for does
    not stop it: carrier numbers are answered, flagged, within the Redis budget.
    """
    started = time.monotonic()
    client = await service_with(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_cluster=True)
    assert time.monotonic() - started < STARTUP_SLOT_MAP_S + 1.5
    status, body, _, _ = await get(client, UPS_IN_TRANSIT)
    assert status == 200, body
    assert body["status"] == "in_transit"
    assert "registry_unavailable" in body["flags"]
