"""The registry: idempotent upserts, validation, roles, Cluster-safe keys, durability."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ResponseError

from tests.conftest import ADMIN, AGENT, INGEST, PORTAL, WAREHOUSE
from tests.tracksvc.registry_helpers import (
    hours_ago,
    now,
    number_of,
    put_order,
    put_shipment,
    register,
    shipment,
    track_ok,
)
from tracksvc.core.settings import Settings
from tracksvc.dev.redis_server import RedisServer
from tracksvc.domain.records import OrderRecord, ShipmentRecord
from tracksvc.registry import importer
from tracksvc.registry import store as registry_module
from tracksvc.registry.importer import ImportFormat
from tracksvc.registry.store import Registry, unscanned_key


async def test_put_shipment_twice_is_created_then_updated_with_the_same_record(service: Any) -> None:
    """The first PUT creates (201), the same PUT again updates (200) and stores the same record."""
    body = shipment("shp-1", "ups-label-5d", order_number="W1", origin="DAL1")
    first_status, first = await put_shipment(service, body)
    second_status, second = await put_shipment(service, body)
    assert (first_status, second_status) == (201, 200)
    assert first == second
    assert first["tracking_number"] == number_of("ups-label-5d")
    assert first["direction"] == "outbound"


async def test_put_order_twice_is_created_then_updated(service: Any) -> None:
    """Orders upsert the same way: 201, then 200 with the same record."""
    body = {"order_number": "W2", "ordered_at": hours_ago(5), "replaces": ["W1"]}
    first_status, first = await put_order(service, body)
    second_status, second = await put_order(service, body)
    assert (first_status, second_status) == (201, 200)
    assert first == second
    assert first["replaces"] == ["W1"]


async def test_tracking_number_is_stored_as_the_carrier_is_asked(service: Any) -> None:
    """Spaces and a USPS 420+ZIP routing prefix are removed; the record holds the number to ask."""
    usps = number_of("usps-in-transit")
    body = shipment("shp-usps", "usps-in-transit", tracking_number=f"420 11201 {usps[:4]} {usps[4:]}")
    status, stored = await put_shipment(service, body)
    assert status == 201
    assert stored["tracking_number"] == usps


async def test_naive_times_are_refused_and_offsets_are_stored_as_utc(service: Any) -> None:
    """A time without an offset is a 422 (never guessed); an offset is converted to UTC."""
    naive = shipment("shp-t", "ups-label-5d", label_created_at="2026-11-03T14:05:00")
    status, body = await put_shipment(service, naive)
    assert status == 422
    assert [d["field"] for d in body["error"]["details"]] == ["label_created_at"]
    assert "time zone" in body["error"]["details"][0]["message"]
    status, stored = await put_shipment(
        service, {**naive, "label_created_at": "2026-11-03T08:05:00-06:00"}
    )
    assert status == 201
    assert stored["label_created_at"] == "2026-11-03T14:05:00Z"


VALID = shipment("shp-v", "fedex-in-transit")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({k: v for k, v in VALID.items() if k != "carrier"}, ["carrier"]),
        ({**VALID, "carrier": "dhl"}, ["carrier"]),
        ({**VALID, "tracking_number": number_of("ups-in-transit")}, ["tracking_number"]),
        ({**VALID, "tracking_number": "790000000031"}, ["tracking_number"]),
        ({**VALID, "label_created_at": "yesterday"}, ["label_created_at"]),
        ({**VALID, "label_created_at": "2026-11-03T14:05:00"}, ["label_created_at"]),
        ({**VALID, "promised_delivery_date": "2026-02-30"}, ["promised_delivery_date"]),
        ({**VALID, "direction": "sideways"}, ["direction"]),
        ({**VALID, "colour": "red"}, ["colour"]),
        ({**VALID, "aliases": "RMA-1"}, ["aliases"]),
        ({**VALID, "tracking_number": ""}, ["tracking_number"]),
        ({**VALID, "shipment_id": "other"}, ["shipment_id"]),
        ({**VALID, "carrier": "dhl", "colour": "red"}, ["carrier", "colour"]),
    ],
    ids=[
        "missing-carrier", "unknown-carrier", "ups-number-for-fedex", "bad-check-digit",
        "not-a-date", "naive-date", "impossible-date", "bad-direction", "unknown-field",
        "aliases-not-a-list", "empty-number", "path-body-mismatch", "two-errors",
    ],
)
async def test_bad_shipment_bodies_are_422_with_field_errors(
    service: Any, body: dict[str, Any], fields: list[str]
) -> None:
    """Every invalid body is a 422 naming each field that failed, and nothing is stored."""
    status, answer = await put_shipment(service, body, path_id="shp-v")
    assert status == 422
    assert answer["error"]["code"] == "validation_failed"
    assert sorted(d["field"] for d in answer["error"]["details"]) == sorted(fields)
    assert all(d["message"] for d in answer["error"]["details"])
    response = await service.get(f"/v1/track/{VALID['tracking_number']}", headers=AGENT)
    assert (await response.json())["matched"] == "carrier_number"  # nothing was registered


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"order_number": "W9", "promised_ship_by": "2026-11-03T10:00:00"}, ["promised_ship_by"]),
        ({"order_number": "W9", "replaces": "W8"}, ["replaces"]),
        ({"order_number": "W9", "notes": "x"}, ["notes"]),
        ({"order_number": "W8"}, ["order_number"]),
    ],
    ids=["naive-ship-by", "replaces-not-a-list", "unknown-field", "path-body-mismatch"],
)
async def test_bad_order_bodies_are_422_with_field_errors(
    service: Any, body: dict[str, Any], fields: list[str]
) -> None:
    """Orders validate the same way."""
    status, answer = await put_order(service, body, path_number="W9")
    assert status == 422
    assert [d["field"] for d in answer["error"]["details"]] == fields


@pytest.mark.parametrize(
    ("raw", "status"), [(b"{not json", 400), (b"[1, 2]", 422), (b"", 422), (b'"text"', 422)]
)
async def test_body_that_is_not_a_json_object_is_a_clear_error(service: Any, raw: bytes, status: int) -> None:
    """Broken JSON is 400, JSON that is not an object 422; both in the JSON error shape."""
    response = await service.put(
        "/v1/shipments/shp-x", data=raw, headers={**INGEST, "Content-Type": "application/json"}
    )
    body = await response.json()
    from tests.contract import assert_matches

    assert_matches("/v1/shipments/{shipment_id}", "put", response.status, body)
    assert response.status == status
    assert body["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401), (AGENT, 403), (PORTAL, 403), (WAREHOUSE, 403),
     (INGEST, 201), (ADMIN, 201)],
)
async def test_only_ingest_and_admin_keys_may_write(
    service: Any, headers: dict[str, str], status: int
) -> None:
    """Shipment and order writes need the ingest (or admin) role."""
    got, _ = await put_shipment(service, shipment("shp-r", "ups-label-2h"), headers=headers)
    assert got == status
    got, _ = await put_order(service, {"order_number": "W-R"}, headers=headers)
    assert got == status


async def test_a_changed_alias_stops_resolving(service: Any) -> None:
    """Re-registering a shipment without an alias removes the alias; the new one resolves."""
    await register(service, shipment("shp-a", "ups-in-transit", order_number="W-A", aliases=["RMA-OLD"]))
    assert (await track_ok(service, "RMA-OLD"))["order_number"] == "W-A"
    await register(service, shipment("shp-a", "ups-in-transit", order_number="W-A", aliases=["RMA-NEW"]))
    response = await service.get("/v1/track/RMA-OLD", headers=AGENT)
    assert response.status == 404
    assert (await track_ok(service, "RMA-NEW"))["matched"] == "alias"


async def test_a_shipment_moved_to_another_order_leaves_the_first(service: Any) -> None:
    """Changing a shipment's order number moves it: the old order, known only through it, is gone."""
    await register(service, shipment("shp-m", "ups-in-transit", order_number="W-OLD"))
    await register(service, shipment("shp-m", "ups-in-transit", order_number="W-NEW"))
    assert [s["shipment_id"] for s in (await track_ok(service, "W-NEW"))["shipments"]] == ["shp-m"]
    response = await service.get("/v1/track/W-OLD", headers=AGENT)
    assert response.status == 404


# -- Redis Cluster: hash tags, one slot per command -------------------------------


class _RecordingConnection(aioredis.Connection):
    """A real connection that notes every command it writes, however it was packed."""

    recorded: list[tuple[Any, ...]]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        reader = hiredis.Reader()
        reader.feed(command if isinstance(command, bytes | str) else b"".join(command))
        while (args := reader.gets()) is not False:
            self.recorded.append(tuple(args))
        await super().send_packed_command(command, check_health)


class RecordingRedis(aioredis.Redis):
    """A real client that notes every command it sends (directly, in a pipeline or in bulk)."""

    recorded: list[tuple[Any, ...]]
    transactions: list[bool]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Any:
        self.transactions.append(transaction)
        return super().pipeline(transaction, shard_hint)


async def _keys_of(client: aioredis.Redis, args: tuple[Any, ...]) -> list[bytes]:
    try:
        keys = await client.command_getkeys(*args)
    except ResponseError:  # a command without keys (SCRIPT LOAD, PING)
        return []
    return [k if isinstance(k, bytes) else str(k).encode() for k in keys]


@pytest.mark.single_redis
async def test_every_registry_command_stays_in_one_cluster_slot(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """Writes, resolution, imports and the list never send a command spanning two slots or MULTI."""
    client = RecordingRedis.from_url(redis_server.url, connection_class=_RecordingConnection)
    client.recorded, client.transactions = [], []
    _RecordingConnection.recorded = client.recorded
    registry = Registry(client)
    moment = now()
    records = [
        ShipmentRecord.model_validate(shipment(
            f"shp-{i}", scenario, order_number=f"W-{i % 2}", origin=f"DAL{i % 2}", aliases=[f"RMA-{i}"],
            internal_shipping_number=f"SN-{i}",
        ))
        for i, scenario in enumerate(["ups-label-5d", "fedex-label-5d", "usps-label-5d", "ups-label-17d"])
    ]
    await registry.put_order(OrderRecord(order_number="W-0", replaces=["OLD-0"], ordered_at=moment))
    await registry.put_order(
        OrderRecord(order_number="W-0", replaces=["OLD-1"], ordered_at=moment),
        previous=OrderRecord(order_number="W-0", replaces=["OLD-0"], ordered_at=moment),
    )
    for record in records:
        await registry.put_shipment(record)
    moved = records[0].model_copy(update={"aliases": ["RMA-X"], "origin": "OAK1", "order_number": "W-9"})
    await registry.put_shipment(moved)
    await registry.mark_scanned(records[1], moment.timestamp())

    async def lines() -> Any:
        yield b'{"shipment_id": "imp-1", "carrier": "ups", "tracking_number": "1ZTRKSVC0100000024", ' \
              b'"label_created_at": "2026-11-01T00:00:00Z", "order_number": "W-0"}'

    await importer.import_lines(lines(), ImportFormat.ndjson, registry)
    for reference in ["W-0", "OLD-1", "SN-2", "RMA-3", "shp-2", records[2].tracking_number]:
        assert await registry.resolve(reference) is not None
    _, cursor = await registry.unscanned(before_ts=moment.timestamp(), limit=1)
    assert cursor is not None
    await registry.unscanned(before_ts=moment.timestamp(), limit=1, cursor=cursor, origin="DAL1")

    assert len(client.recorded) > 50
    assert client.transactions
    assert not any(client.transactions), "MULTI is not allowed across slots"
    for args in client.recorded:
        name = (args[0].decode() if isinstance(args[0], bytes) else str(args[0])).upper()
        assert name not in {"MULTI", "EXEC", "KEYS", "SCAN"}, args
        slots = {key_slot(key) for key in await _keys_of(redis_client, args)}
        assert len(slots) <= 1, f"{args[:4]} spans slots {slots}"
    await client.aclose()


@pytest.mark.single_redis
async def test_every_key_of_one_record_is_hash_tagged(service: Any, redis_client: aioredis.Redis) -> None:
    """Record and reference keys carry a {...} hash tag; the label indexes are single keys."""
    await register(
        service,
        shipment("shp-k", "ups-label-5d", order_number="W-K", origin="DAL1", aliases=["RMA-K"],
                 internal_shipping_number="SN-K"),
        order={"order_number": "W-K", "replaces": ["W-K0"]},
    )
    keys = sorted(k.decode() for k in await redis_client.keys("*"))
    indexes = {unscanned_key(), unscanned_key("DAL1")}
    assert indexes <= set(keys)
    # Only the registry's own keys (other features keep theirs beside them).
    tagged = [k for k in keys if k.startswith(("tracksvc:shipment:", "tracksvc:order:", "tracksvc:ref:"))]
    assert len(tagged) >= 8
    for key in tagged:
        assert re.fullmatch(r"tracksvc:[a-z]+:\{[^{}]+\}(:[a-z]+)?", key), key
    order_keys = [k for k in tagged if k.startswith("tracksvc:order:")]
    assert len({key_slot(k.encode()) for k in order_keys}) == 1  # an order and its shipment set


def test_registry_code_uses_no_multi_key_commands() -> None:
    """The registry and importer source name no cross-slot command (MGET, MSET, RENAME, set algebra)."""
    banned = re.compile(
        r"\.(mget|mset|msetnx|rename|renamenx|sunion|sinter|sdiff|zunion|zinter|zdiff|"
        r"sunionstore|sinterstore|sdiffstore|zunionstore|zinterstore|smove|copy|blmove|lmove|"
        r"rpoplpush|keys|scan|scan_iter)\("
        r"|transaction=True|\.multi\("
    )
    for module in (registry_module, importer):
        source = Path(str(module.__file__)).read_text()
        assert not banned.findall(source), (module.__name__, banned.findall(source))


# -- durability ---------------------------------------------------------------


@pytest.mark.single_redis
async def test_every_acknowledged_record_survives_a_redis_crash(
    service: Any, redis_server: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    """Records the service acknowledged are all there after redis-server is killed and started again."""
    acknowledged: list[str] = []
    for i in range(40):
        status, _ = await put_shipment(
            service,
            shipment(f"shp-d{i}", "fedex-label-5d", order_number=f"W-D{i // 4}", aliases=[f"RMA-D{i}"]),
        )
        assert status == 201
        acknowledged.append(f"shp-d{i}")
    status, _ = await put_order(service, {"order_number": "W-D0", "replaces": ["W-OLD"]})
    assert status == 201
    redis_server.kill()  # SIGKILL: no shutdown save, only what appendfsync wrote
    response = await service.put(
        "/v1/shipments/shp-lost", json=shipment("shp-lost", "ups-label-2h"), headers=INGEST
    )
    assert response.status == 503  # not acknowledged while Redis is down
    assert (await response.json())["error"]["code"] == "registry_unavailable"
    redis_server.start()

    fresh = aioredis.Redis.from_url(redis_server.url)
    registry = Registry(fresh)
    found = await registry.get_shipments(acknowledged)
    assert [r.shipment_id if r else None for r in found] == acknowledged
    assert await registry.get_shipment("shp-lost") is None
    resolution = await registry.resolve("W-OLD")
    assert resolution is not None
    assert resolution.order_number == "W-D0"
    assert [s.shipment_id for s in resolution.shipments] == acknowledged[:4]
    alias = await registry.resolve("RMA-D39")
    assert alias is not None
    assert [s.shipment_id for s in alias.shipments] == acknowledged[36:]
    assert await fresh.zcard(unscanned_key()) == 40
    await fresh.aclose()


@pytest.mark.single_redis
async def test_the_service_answers_again_after_a_redis_restart(
    service: Any, redis_server: RedisServer
) -> None:
    """After a clean restart the running service resolves what it registered before."""
    promised = (now() + timedelta(days=3)).date().isoformat()
    await register(service, shipment("shp-rs", "ups-in-transit", order_number="W-RS"),
                   order={"order_number": "W-RS", "promised_delivery_date": promised})
    redis_server.restart()
    body = await track_ok(service, "W-RS")
    assert body["matched"] == "order_number"
    assert [s["shipment_id"] for s in body["shipments"]] == ["shp-rs"]
