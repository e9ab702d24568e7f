"""
The Redis Cluster failover drill (a cluster of its own: a master is SIGKILLed),
and the write confirmation of ``TRACKSVC_REDIS_WRITE_REPLICAS``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.cluster import RedisCluster

from tests.conftest import AGENT, INGEST, Sandbox, serve_on_loopback
from tests.tracksvc.registry_helpers import put_shipment, shipment
from tracksvc.app import create_app
from tracksvc.core.redis import redis_client
from tracksvc.core.settings import Settings
from tracksvc.dev.failover_drill import run_drill
from tracksvc.dev.redis_cluster import RedisClusterProcesses
from tracksvc.dev.redis_server import RedisServer
from tracksvc.domain import changes
from tracksvc.service.answers import AnswerCache


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterProcesses]:
    """A Redis Cluster of this test alone: the drill kills one of its masters."""
    with RedisClusterProcesses() as cluster:
        yield cluster


@pytest.fixture
async def cluster_client(own_cluster: RedisClusterProcesses) -> AsyncIterator[RedisCluster]:
    client = redis_client(own_cluster.url, cluster=True)
    assert isinstance(client, RedisCluster)
    await client.initialize()
    yield client
    await client.aclose()


async def _serve(settings: Settings) -> tuple[str, web.AppRunner]:
    runner, url = await serve_on_loopback(create_app(settings))
    return url, runner


async def test_a_killed_master_is_survived_and_no_acknowledged_write_is_lost(
    sandbox: Sandbox,
    own_cluster: RedisClusterProcesses,
    cluster_client: RedisCluster,
    make_settings: Callable[..., Settings],
) -> None:
    """
    Under lookups and writes, SIGKILL a master: carrier numbers keep answering 200,
    registered ones 200 or 503 (never 404) and recover on their own once a replica is
    promoted; /readyz says degraded meanwhile; every write acknowledged with
    WRITE_REPLICAS=1 is there afterwards.
    """
    settings = make_settings(
        sandbox.url, redis_url=own_cluster.url, redis_cluster=True, redis_write_replicas=1,
        # Lookups go to Redis every time: nothing kept in memory hides the outage.
        answer_cache_ttl_s=0, cache_local_ttl_s=0,
    )
    url, runner = await _serve(settings)
    try:
        report = await run_drill(url, own_cluster, cluster_client, agent=AGENT, ingest=INGEST)
    finally:
        await runner.cleanup()
    print("failover drill:", report.summary())

    assert report.recovery_s is not None, report.summary()
    assert report.recovery_s < 20, report.summary()
    assert report.promotion_s is not None, report.summary()
    # Carrier numbers never needed Redis to answer.
    assert set(report.statuses("carrier")) == {200}, report.summary()
    # Registered lookups: the outage was felt, as 503, never as "not found".
    registered = report.statuses("registered")
    assert set(registered) <= {200, 503}, report.summary()
    assert registered[503] > 0, "the kill was never felt: the drill proved nothing"
    outage = report.of("readyz", after=report.killed_at, before=report.recovered_at)
    assert any(a.status == 503 for a in outage), report.summary()
    assert report.of("readyz")[-1].status == 200
    # Writes: acknowledged or refused (503), before, during and after.
    assert set(report.statuses("write")) <= {200, 201, 503}, report.summary()
    assert [a for a in report.of("write", before=report.killed_at) if a.status in (200, 201)]
    assert [a for a in report.of("write", after=report.restarted_at) if a.status in (200, 201)]
    assert report.lost == [], report.summary()


async def test_a_write_no_replica_confirmed_is_503_not_acknowledged(
    sandbox: Sandbox, own_redis: RedisServer, make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    """One server has no replica: with WRITE_REPLICAS=1 a write is applied but answered 503, clearly."""
    client = await aiohttp_client(create_app(make_settings(
        sandbox.url, redis_url=own_redis.url, redis_write_replicas=1, redis_write_replicas_timeout_s=0.2,
    )))
    status, answer = await put_shipment(client, shipment("shp-w", "ups-label-5d"))
    assert status == 503
    assert answer["error"]["code"] == "write_not_replicated"
    assert "0 confirmed it" in answer["error"]["message"]
    assert "send it again" in answer["error"]["message"]
    # Lookups are not writes: they answer as usual.
    response = await client.get("/v1/track/shp-w", headers=AGENT)
    assert response.status == 200


async def test_writes_on_the_cluster_are_acknowledged_once_replicas_have_them(
    sandbox: Sandbox,
    own_cluster: RedisClusterProcesses,
    cluster_client: RedisCluster,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
) -> None:
    """Every master has a replica: WRITE_REPLICAS=1 acknowledges, and the record is on the replica too."""
    client = await aiohttp_client(create_app(make_settings(
        sandbox.url, redis_url=own_cluster.url, redis_cluster=True, redis_write_replicas=1,
    )))
    status, answer = await put_shipment(client, shipment("shp-r", "ups-label-5d"))
    assert status == 201, answer
    key = "tracksvc:shipment:{s:shp-r}"
    master = next(n for n in own_cluster.masters() if n.port == cluster_client.get_node_from_key(key).port)
    replica = own_cluster.replicas_of(master)[0]
    plain = aioredis.Redis(port=replica.port, single_connection_client=True)
    try:
        await plain.execute_command("READONLY")
        assert await plain.exists(key) == 1
    finally:
        await plain.aclose()


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_the_change_listener_follows_its_node_to_the_promoted_replica(
    own_cluster: RedisClusterProcesses, cluster_client: RedisCluster
) -> None:
    """The node the kept answers' subscription is on dies: it resubscribes on its successor, unprompted."""
    answers = AnswerCache(ttl_s=10, max_entries=10, redis=cluster_client)
    heard: list[set[str]] = []
    listener = asyncio.create_task(answers.listen(heard=heard.append))
    try:
        await _until(lambda: answers.listening, 5, "never subscribed")
        port = cluster_client.get_node_from_key(changes.CHANGES_CHANNEL).port
        own_cluster.kill(next(n for n in own_cluster.nodes if n.port == port))
        await _until(lambda: not answers.listening, 10, "the dead node was never noticed")
        # No other command runs here: the listener itself must find the promoted replica.
        await _until(lambda: answers.listening, 20, "never subscribed again")
        publisher = redis_client(own_cluster.url, cluster=True)
        try:
            await publisher.publish(changes.CHANGES_CHANNEL, changes.encode({"r:AFTER"}))
        finally:
            await publisher.aclose()
        await _until(lambda: {"r:AFTER"} in heard, 5, "the change after the failover was not heard")
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
