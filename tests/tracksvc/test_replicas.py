"""
Several service processes on one Redis: three real ``python -m tracksvc serve`` processes
(each its own event loop, its own memory), one real redis-server (the ``redis_server``
fixture's URL, so the same tests can run against a cluster's startup node), the sandbox.

What replicas share must hold across processes: one carrier call per number, one webhook
delivery per change, one budget, and no shipment polled twice by the refresher in a period.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest

from carriers.sandbox.scenarios import fedex_number, ups_number
from tests.conftest import ON_CLUSTER, Sandbox
from tests.tracksvc.processes import ROOT, carriers_at, clean_env, wait_for_port
from tests.tracksvc.test_push import ALERT_NUMBER, Receiver, alert
from tests.tracksvc.test_push import receiver as receiver  # the fixture, shared
from tracksvc.core.models import Carrier
from tracksvc.core.redis import redis_client
from tracksvc.core.redis_keys import UNCHECKED
from tracksvc.dev.redis_server import RedisServer, free_port
from tracksvc.domain.records import ShipmentRecord
from tracksvc.registry.store import Registry

KEY = "replica-agent-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
UPS_KEY = "ups-webhook-replicas-key"


def _start(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tracksvc", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@contextmanager
def _stopped_at_exit(processes: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    try:
        yield
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def replicas(
    redis_server: RedisServer, sandbox: Sandbox, cli_env: Any
) -> Callable[..., Any]:
    """
    ``async with replicas(3, TRACKSVC_X="y") as urls``: that many ``tracksvc serve`` processes
    on one Redis (flushed by ``cli_env``) and the sandbox, stopped after.
    """

    @asynccontextmanager
    async def start(count: int, **settings: str) -> AsyncIterator[list[str]]:
        env = clean_env(
            TRACKSVC_REDIS_URL=redis_server.url,
            TRACKSVC_REDIS_CLUSTER=str(ON_CLUSTER).lower(),
            TRACKSVC_API_KEYS=f"agent:{KEY},ingest:{KEY}-ingest",
            TRACKSVC_LOG_LEVEL="warning",
            TRACKSVC_REFRESHER_ENABLED="false",
            **carriers_at(sandbox.url),
        )
        env.update(settings)
        ports = [free_port() for _ in range(count)]
        processes = [_start(port, env) for port in ports]
        with _stopped_at_exit(processes):
            for port, process in zip(ports, processes, strict=True):
                await wait_for_port(port, process)
            yield [f"http://127.0.0.1:{port}" for port in ports]

    return start


async def _get(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(url, headers=AUTH) as response:
        await response.read()
        return response.status


async def test_concurrent_lookups_over_three_processes_make_one_carrier_call_per_number(
    replicas: Callable[..., Any], sandbox: Sandbox
) -> None:
    """Every number asked at once through each of three processes: the carrier hears of it once."""
    sandbox.state.latency_s = 0.2  # the fetches overlap
    numbers = [ups_number(810_000 + i) for i in range(12)] + [fedex_number(810_000 + i) for i in range(12)]
    async with replicas(3) as urls, aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(
            *(_get(session, f"{url}/v1/track/{number}") for number in numbers for url in urls)
        )
    assert set(statuses) == {200}
    assert sandbox.state.numbers_asked["ups"] == 12
    assert sandbox.state.numbers_asked["fedex"] == 12
    assert sandbox.state.calls["ups:track"] == 12
    assert sandbox.state.largest_batch["fedex"] <= 30


async def _push(session: aiohttp.ClientSession, url: str, body: bytes) -> int:
    headers = {"x-api-key": UPS_KEY, "Content-Type": "application/json"}
    async with session.post(f"{url}/v1/carrier-events/ups", data=body, headers=headers) as response:
        await response.read()
        return response.status


async def test_a_status_change_seen_by_three_processes_is_delivered_once(
    replicas: Callable[..., Any], receiver: Receiver
) -> None:
    """The delivery event reaches all three replicas at once (UPS retrying, say): one webhook POST."""
    push = {
        "TRACKSVC_UPS_WEBHOOK_KEY": UPS_KEY,
        "TRACKSVC_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "TRACKSVC_WEBHOOK_POLL_S": "0.05",
    }
    async with replicas(3, **push) as urls, aiohttp.ClientSession() as session:
        assert await _push(session, urls[0], orjson.dumps(alert("out_for_delivery"))) == 200
        async with session.post(
            f"{urls[1]}/v1/subscriptions", headers=AUTH,
            json={"callback_url": receiver.url, "reference": ALERT_NUMBER},
        ) as response:
            assert response.status == 201, await response.text()
            assert (await response.json())["status"] == "out_for_delivery"
        delivery = orjson.dumps(alert("delivery"))
        assert set(await asyncio.gather(*(_push(session, url, delivery) for url in urls))) == {200}
        deadline = time.monotonic() + 15
        while not receiver.received and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # time for a second delivery, were one coming
    assert len(receiver.received) == 1
    payload = orjson.loads(receiver.received[0].body)
    assert (payload["previous_status"], payload["status"]) == ("out_for_delivery", "delivered")


async def test_three_processes_share_one_budget(
    replicas: Callable[..., Any], sandbox: Sandbox
) -> None:
    """UPS allows 10 calls an hour: 30 numbers spread over three processes make exactly 10 calls."""
    budget = {
        "TRACKSVC_UPS_QUOTA_PER_SECOND": "0",
        "TRACKSVC_UPS_QUOTA_PER_HOUR": "10",
        "TRACKSVC_QUOTA_RESERVED_SHARE": "0",  # the agent's lookups may use all of it
        "TRACKSVC_QUOTA_PER_KEY_SHARE": "1",
    }
    numbers = [ups_number(820_000 + i) for i in range(30)]
    async with replicas(3, **budget) as urls, aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(
            *(_get(session, f"{urls[i % 3]}/v1/track/{number}") for i, number in enumerate(numbers))
        )
    assert set(statuses) == {200}  # refused by the budget: "unknown", with when to come back
    assert sandbox.state.calls["ups:track"] == 10


async def test_refreshers_in_three_processes_poll_each_shipment_once_per_period(
    replicas: Callable[..., Any], sandbox: Sandbox, redis_server: RedisServer
) -> None:
    """
    Three serving processes refreshing (12 cycles each per 8 s period, no cache to hide a second
    poll): within one period every shipment is polled, and none twice.
    """
    client = redis_client(redis_server.url, cluster=ON_CLUSTER)
    label_at = datetime.now(UTC) - timedelta(hours=100)
    records = [
        ShipmentRecord(shipment_id=f"R-{i}", order_number=f"O-R-{i}", carrier=Carrier.ups,
                       tracking_number=ups_number(830_000 + i), label_created_at=label_at)
        for i in range(60)
    ]
    await Registry(client).put_shipments(records)
    refreshing = {
        "TRACKSVC_REFRESHER_ENABLED": "true",
        "TRACKSVC_REFRESHER_PERIOD_S": "8",
        "TRACKSVC_REFRESHER_REVISIT_S": "0",
        "TRACKSVC_CACHE_TTL_NOT_FOUND_S": "0",
        "TRACKSVC_CACHE_HARD_TTL_NOT_FOUND_S": "0",
        "TRACKSVC_UPS_QUOTA_PER_SECOND": "0",
        "TRACKSVC_UPS_QUOTA_PER_HOUR": "0",
    }
    try:
        async with replicas(3, **refreshing):
            deadline = time.monotonic() + 30
            while await client.zcard(UNCHECKED) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            first_all_checked = time.monotonic()
            assert await client.zcard(UNCHECKED) == 0
            # Stay within the period that began with the first polls: nobody polls again.
            await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - first_all_checked)))
            asked = sandbox.state.numbers_asked["ups"]
    finally:
        await client.aclose()
    assert asked == len(records)
