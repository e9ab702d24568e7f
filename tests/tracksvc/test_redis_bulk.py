"""The bulk command path (tracksvc.core.redis_bulk) and the batch writes of the import built on it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from carriers.sandbox.scenarios import ups_number
from tracksvc.core import redis_bulk
from tracksvc.core.redis import redis_client
from tracksvc.core.redis_bulk import score, send_all
from tracksvc.dev.redis_server import RedisServer
from tracksvc.domain.records import STORED, ShipmentRecord
from tracksvc.registry.store import REFRESH_DUE, Registry, shipment_key


def record(sid: str = "blk-1", **fields: Any) -> ShipmentRecord:
    """A valid UPS shipment record."""
    data: dict[str, Any] = {
        "shipment_id": sid, "carrier": "ups", "tracking_number": ups_number(700_000),
        "label_created_at": "2026-11-01T08:00:00Z", "order_number": "W-BLK0",
    }
    data.update(fields)
    return ShipmentRecord.model_validate(data)


async def test_replies_come_back_in_order_and_raw(redis_client: aioredis.Redis) -> None:
    """Every command runs in order; GET gives bytes, counters stay integers, ZSCORE reads the score sent."""
    replies = await send_all(redis_client, [
        ("SET", "k1", "v1"),
        ("HSET", "h1", "f", "a"),
        ("HSET", "h1", "f", "b"),
        ("ZADD", "z1", score(1762000000.125), "m"),
        ("GET", "k1"),
        ("GET", "missing"),
        ("HGET", "h1", "f"),
        ("ZSCORE", "z1", "m"),
    ])
    assert replies[:4] == [b"OK", 1, 0, 1]
    assert replies[4:7] == [b"v1", None, b"b"]
    assert float(replies[7]) == 1762000000.125
    assert await send_all(redis_client, []) == []


async def test_more_commands_than_one_chunk(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch longer than one socket write is sent in chunks; all replies arrive, in order."""
    monkeypatch.setattr(redis_bulk, "CHUNK_COMMANDS", 3)
    monkeypatch.setattr(redis_bulk, "REPLIES_PER_TIMER", 2)
    replies = await send_all(redis_client, [("INCR", "n") for _ in range(10)])
    assert replies == list(range(1, 11))


async def test_a_refused_command_raises_after_the_others_ran(redis_client: aioredis.Redis) -> None:
    """WRONGTYPE surfaces as ResponseError; the commands after it still ran; the connection stays usable."""
    await redis_client.set("text", "x")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await send_all(redis_client, [
            ("SET", "before", "1"), ("HSET", "text", "f", "v"), ("SET", "after", "2"),
        ])
    assert [await redis_client.get("before"), await redis_client.get("after")] == [b"1", b"2"]
    for _ in range(3):  # every pooled connection answers its own command, not a left-over reply
        assert await send_all(redis_client, [("GET", "after"), ("GET", "before")]) == [b"2", b"1"]


@pytest.mark.single_redis
async def test_a_paused_server_times_out_as_a_redis_error(redis_server: RedisServer) -> None:
    """No reply within the socket timeout raises redis' TimeoutError (a RedisError), not a bare one."""
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=0.2, retry=Retry(NoBackoff(), 0))
    other = redis_client(redis_server.url)
    await client.ping()  # connected before the pause
    await other.execute_command("CLIENT", "PAUSE", "3000", "ALL")
    try:
        with pytest.raises(RedisTimeoutError):
            await send_all(client, [("GET", "k")])
    finally:
        await other.execute_command("CLIENT", "UNPAUSE")
        await client.aclose()
        await other.aclose()


def test_a_stored_record_is_loaded_without_detecting_its_number_again() -> None:
    """With the STORED context the number is taken as stored; the JSON structure is still checked."""
    raw = record().model_dump_json()
    odd = orjson.dumps({**orjson.loads(raw), "tracking_number": "1ZTRKSVC0100000025"})  # bad check digit
    with pytest.raises(ValueError, match="not a valid ups tracking number"):
        ShipmentRecord.model_validate_json(odd)
    assert ShipmentRecord.model_validate_json(odd, context=STORED).tracking_number == "1ZTRKSVC0100000025"
    assert ShipmentRecord.model_validate_json(raw, context=STORED) == record()
    wrong_carrier = orjson.dumps({**orjson.loads(raw), "carrier": "dhl"})
    with pytest.raises(ValueError, match="carrier"):
        ShipmentRecord.model_validate_json(wrong_carrier, context=STORED)


async def test_registry_reads_give_back_what_was_stored(redis_client: aioredis.Redis) -> None:
    """get_shipment and get_shipments load stored records; a corrupt one reads as missing."""
    registry = Registry(redis_client)
    await registry.put_shipments([record("blk-1"), record("blk-2", aliases=["RMA-B2"])])
    await redis_client.set(shipment_key("blk-bad"), b'{"shipment_id": "blk-bad"}')
    assert await registry.get_shipment("blk-1") == record("blk-1")
    assert await registry.get_shipments(["blk-2", "blk-none", "blk-bad"]) == [
        record("blk-2", aliases=["RMA-B2"]), None, None,
    ]


async def test_one_batch_schedules_a_shipment_as_its_rows_would_one_by_one(
    redis_client: aioredis.Redis,
) -> None:
    """Within one batch the last of void / un-void decides, and NX keeps a schedule already set."""
    registry = Registry(redis_client)
    await registry.put_shipments([record("blk-v", voided=True), record("blk-v")])
    assert (await registry.refresh_due_times(["blk-v"]))[0] is not None
    await registry.put_shipments([record("blk-w"), record("blk-w", voided=True)])
    assert await registry.refresh_due_times(["blk-w"]) == [None]
    await redis_client.zadd(REFRESH_DUE, {"blk-v": 42.0})
    await registry.put_shipments([record("blk-v"), record("blk-v")], previous={"blk-v": record("blk-v")})
    assert await registry.refresh_due_times(["blk-v"]) == [42.0]
    renumbered = record("blk-v", tracking_number=ups_number(700_001))
    await registry.put_shipments([record("blk-v"), renumbered], previous={"blk-v": record("blk-v")})
    assert (await registry.refresh_due_times(["blk-v"]))[0] != 42.0


async def test_shipments_of_one_order_in_one_batch_all_resolve(redis_client: aioredis.Redis) -> None:
    """Rows sharing an order number in one batch: the order resolves to every one of them."""
    registry = Registry(redis_client)
    await registry.put_shipments([
        record("blk-o1", order_number="W-BLK"),
        record("blk-o2", order_number="W-BLK", tracking_number=ups_number(700_002)),
    ])
    resolution = await registry.resolve("w-blk")
    assert resolution is not None
    assert resolution.matched == "order_number"
    assert [s.shipment_id for s in resolution.shipments] == ["blk-o1", "blk-o2"]
