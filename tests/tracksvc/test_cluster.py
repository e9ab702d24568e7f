"""
Redis Cluster: the client, the bulk path, and the one-slot rule checked on
what goes on the wire while every feature runs. Runs in the cluster pass
(``TRACKSVC_TEST_REDIS=cluster``), where ``redis_server`` is a six-node cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.cluster_recording import RecordingConnection
from tests.conftest import ADMIN, AGENT, INGEST, WAREHOUSE, Sandbox, serve_on_loopback
from tests.tracksvc.registry_helpers import number_of, put_order, register, shipment
from tracksvc.api.keys import redis_key, refresher_key
from tracksvc.core.redis import redis_client
from tracksvc.core.redis_bulk import send_all
from tracksvc.dev.redis_cluster import RedisClusterProcesses

pytestmark = pytest.mark.cluster_only


async def test_settings_make_a_cluster_client_and_keys_spread_over_the_masters(
    service: Any, redis_server: RedisClusterProcesses
) -> None:
    """TRACKSVC_REDIS_CLUSTER=true: the app's client is a cluster client; records land on every master."""
    app_redis = service.server.app[redis_key]
    assert isinstance(app_redis, RedisCluster)
    for i in range(12):
        await register(service, shipment(f"spread-{i}", "ups-label-5d", order_number=f"W-SPREAD-{i}"))
    holding = [
        node.port for node in redis_server.masters()
        if await app_redis.dbsize(target_nodes=app_redis.get_node(host="127.0.0.1", port=node.port))
    ]
    assert len(holding) == 3


async def test_send_all_spreads_a_batch_over_the_masters_and_keeps_its_order(
    redis_client: RedisCluster,
) -> None:
    """Replies come back in the order sent though the keys live on three masters; PUBLISH goes last."""
    keys = [f"bulk:{{{i}}}" for i in range(30)]
    assert len({redis_client.get_node_from_key(k).name for k in keys}) == 3
    replies = await send_all(
        redis_client,
        [("SET", k, str(i)) for i, k in enumerate(keys)] + [("PUBLISH", "tracksvc:test", "x")]
        + [("GET", k) for k in keys],
    )
    assert replies[:30] == [b"OK"] * 30
    assert replies[31:] == [str(i).encode() for i in range(30)]


async def test_send_all_refuses_a_script_of_two_slots(redis_client: RedisCluster) -> None:
    """An EVAL naming keys of two slots is refused before anything is sent."""
    with pytest.raises(ValueError, match="2 slots"):
        await send_all(redis_client, [("EVAL", "return 1", "2", "a", "b")])


async def test_an_unreachable_cluster_is_a_redis_connection_error() -> None:
    """No startup node answers: redis-py's exception becomes a ConnectionError (the fallbacks catch it)."""
    client = redis_client("redis://127.0.0.1:1", cluster=True)
    try:
        with pytest.raises(RedisConnectionError):
            await client.get("x")
        with pytest.raises(RedisConnectionError):
            await send_all(client, [("GET", "x")])
    finally:
        await client.aclose()


async def test_the_recorder_catches_a_command_of_two_slots(redis_client: RedisCluster) -> None:
    """The one-slot check is not vacuous: an MGET of two slots sent to one node is named."""
    recorder = RecordingConnection.recorder
    assert recorder is not None
    node = redis_client.get_primaries()[0]
    with pytest.raises(Exception, match="same slot"):
        await redis_client.execute_command("MGET", "a", "b", target_nodes=node)
    found = recorder.violations()
    assert found
    assert "MGET" in found[0]
    recorder.sent.clear()  # the test's own violation, shown; nothing else was sent


async def _receiver() -> tuple[str, web.AppRunner, list[bytes]]:
    received: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner, url = await serve_on_loopback(app)
    return f"{url}/hook", runner, received


async def test_every_feature_sends_only_one_slot_commands(
    sandbox: Sandbox, service_with: Callable[..., Any]
) -> None:
    """
    Registry, import, lookups on two replicas (cache, single flight and its pub/sub, budgets,
    breaker state), webhooks (subscribe, outbox, delivery), the refresher, the warehouse list
    and /readyz, all on the cluster: every command, MULTI block and script stays in one slot
    (checked by the autouse recorder after the test), and every kind was exercised.
    """
    recorder = RecordingConnection.recorder
    assert recorder is not None
    settings = {"webhook_allow_private_targets": True, "webhook_poll_s": 0.02, "refresher_enabled": False}
    a, b = await service_with(**settings), await service_with(**settings)
    url, runner, _ = await _receiver()
    try:
        await put_order(a, {"order_number": "W-ALL", "replaces": ["W-ALL-OLD"]})
        await register(a, shipment("all-1", "ups-in-transit", order_number="W-ALL", origin="DAL1"),
                       shipment("all-2", "fedex-label-5d", order_number="W-ALL", origin="DAL1"))
        lines = b'{"shipment_id": "all-3", "carrier": "usps", "tracking_number": "%s", ' \
                b'"label_created_at": "2026-11-01T00:00:00Z", "order_number": "W-ALL"}\n' % (
                    number_of("usps-in-transit").encode())
        imported = await a.post("/v1/shipments/import", data=lines,
                                headers={**INGEST, "Content-Type": "application/x-ndjson"})
        assert imported.status == 200
        sandbox.state.latency_s = 0.2  # both replicas ask at once: one flies, the other waits
        answers = await asyncio.gather(
            *(c.get(f"/v1/track/{number_of('usps-delivered')}", headers=AGENT) for c in (a, b))
        )
        assert [r.status for r in answers] == [200, 200]
        sandbox.state.latency_s = 0
        for client, reference in ((a, "W-ALL"), (b, "W-ALL-OLD"), (b, "all-2")):
            response = await client.get(f"/v1/track/{reference}", headers=AGENT)
            assert response.status == 200, await response.text()
        subscribed = await a.post("/v1/subscriptions", json={"callback_url": url, "reference": "W-ALL"},
                                  headers=AGENT)
        assert subscribed.status == 201, await subscribed.text()
        report = await a.server.app[refresher_key].run_cycle()
        assert report is not None
        listed = await b.get("/v1/labels/stalled?older_than_hours=1", headers=WAREHOUSE)
        assert listed.status == 200
        assert (await a.get("/readyz")).status == 200
        assert (await b.get("/metrics", headers=ADMIN)).status == 200
        sub_id = (await subscribed.json())["id"]
        assert (await a.delete(f"/v1/subscriptions/{sub_id}", headers=AGENT)).status == 204
    finally:
        await runner.cleanup()
    names = recorder.names()
    for name in ("EVALSHA", "MULTI", "EXEC", "SUBSCRIBE", "PUBLISH", "HSET", "ZADD", "SET", "GET"):
        assert names[name] > 0, f"{name} never sent: {sorted(names)}"
    assert not recorder.violations()
