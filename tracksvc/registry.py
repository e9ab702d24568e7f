"""
The registry in Redis: shipments, orders, the references that lead to them,
and the index of labels no carrier has scanned yet.

Keys (every multi-key story stays single-key per command, so the layout
works on Redis Cluster; the braces are hash tags)::

    tracksvc:shipment:{s:<shipment_id>}          JSON ShipmentRecord
    tracksvc:order:{o:<order_number>}            JSON OrderRecord
    tracksvc:order:{o:<order_number>}:shipments  SET of shipment ids
    tracksvc:ref:{r:<reference>}                 JSON {"kind", "id"}: what a reference names
    tracksvc:labels:unscanned                    ZSET shipment id -> label time (epoch s)
    tracksvc:labels:unscanned:<origin>           the same, per warehouse or store

Writes go out in one pipeline without MULTI (cross-slot transactions are
not allowed on a cluster); every write is idempotent, so a retried PUT heals
a partial one.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

import orjson
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from tracksvc import references
from tracksvc.errors import InvalidReference, RegistryUnavailable
from tracksvc.records import OrderRecord, ShipmentRecord

UNSCANNED = "tracksvc:labels:unscanned"


def shipment_key(shipment_id: str) -> str:
    """Key of one shipment record."""
    return f"tracksvc:shipment:{{s:{shipment_id}}}"


def order_key(order_number: str) -> str:
    """Key of one order record."""
    return f"tracksvc:order:{{o:{order_number}}}"


def order_shipments_key(order_number: str) -> str:
    """Key of the set of an order's shipment ids (same slot as the order)."""
    return f"{order_key(order_number)}:shipments"


def ref_key(reference: str) -> str:
    """Key of what a reference names."""
    return f"tracksvc:ref:{{r:{reference}}}"


def unscanned_key(origin: str | None = None) -> str:
    """The unscanned-labels index, overall or for one origin."""
    return UNSCANNED if origin is None else f"{UNSCANNED}:{origin}"


class RefKind(StrEnum):
    """What a registered reference names."""

    order = "order"
    shipment = "shipment"
    replaced = "replaced"  # an earlier order number, re-placed as ``id``


@dataclass(frozen=True)
class Resolution:
    """A reference resolved through the registry."""

    order: OrderRecord | None
    order_number: str | None
    shipments: list[ShipmentRecord]
    #: The earlier order number the reference was, when the order was re-placed.
    replaced_from: str | None = None


def reference_keys(raw: str) -> list[str]:
    """The forms a reference is registered under: as normalized, and compact (no dashes)."""
    normal = references.normalize(raw)
    compact = references.compact(normal)
    return [normal] if compact == normal or not compact else [normal, compact]


def _refs_of(record: ShipmentRecord) -> Iterable[str]:
    yield record.shipment_id
    yield record.tracking_number
    if record.internal_shipping_number:
        yield record.internal_shipping_number
    yield from record.aliases


def _encode_cursor(score: float, member: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([score, member])).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        score, member = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(score), str(member)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidReference("the cursor is not one this service handed out") from exc


class Registry:
    """Shipments, orders and references in Redis."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    # -- writes ------------------------------------------------------------

    async def put_shipment(self, record: ShipmentRecord) -> ShipmentRecord:
        """
        Upsert a shipment; idempotent. Keeps what tracksvc learned (first scan).

        Returns:
            The record as stored.
        """
        existing = await self.get_shipment(record.shipment_id)
        if existing is not None and existing.first_scan_at and not record.first_scan_at:
            record = record.model_copy(update={"first_scan_at": existing.first_scan_at})
        await self.put_shipments([record], previous={record.shipment_id: existing})
        return record

    async def put_shipments(
        self,
        records: Sequence[ShipmentRecord],
        previous: dict[str, ShipmentRecord | None] | None = None,
    ) -> None:
        """Write many shipments in one pipeline (the import path)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for record in records:
                    self._queue_shipment(pipe, record, (previous or {}).get(record.shipment_id))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc

    def _queue_shipment(
        self, pipe: aioredis.client.Pipeline, record: ShipmentRecord, previous: ShipmentRecord | None
    ) -> None:
        sid = record.shipment_id
        pipe.set(shipment_key(sid), record.model_dump_json())
        target = orjson.dumps({"kind": RefKind.shipment.value, "id": sid})
        for reference in _refs_of(record):
            for key in _safe_reference_keys(reference):
                pipe.set(ref_key(key), target)
        if record.order_number:
            pipe.sadd(order_shipments_key(record.order_number), sid)
            order_ref = orjson.dumps({"kind": RefKind.order.value, "id": record.order_number})
            for key in _safe_reference_keys(record.order_number):
                pipe.set(ref_key(key), order_ref, nx=True)
        if previous is not None and previous.order_number and previous.order_number != record.order_number:
            pipe.srem(order_shipments_key(previous.order_number), sid)
        if previous is not None and previous.origin and previous.origin != record.origin:
            pipe.zrem(unscanned_key(previous.origin), sid)
        if record.voided or record.first_scan_at is not None:
            pipe.zrem(unscanned_key(), sid)
            if record.origin:
                pipe.zrem(unscanned_key(record.origin), sid)
        else:
            score = record.label_created_at.timestamp()
            pipe.zadd(unscanned_key(), {sid: score})
            if record.origin:
                pipe.zadd(unscanned_key(record.origin), {sid: score})

    async def put_order(self, record: OrderRecord) -> OrderRecord:
        """Upsert an order; its number and the numbers it replaced resolve to it."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(order_key(record.order_number), record.model_dump_json())
                own = orjson.dumps({"kind": RefKind.order.value, "id": record.order_number})
                for key in _safe_reference_keys(record.order_number):
                    pipe.set(ref_key(key), own)
                replaced = orjson.dumps({"kind": RefKind.replaced.value, "id": record.order_number})
                for earlier in record.replaces:
                    for key in _safe_reference_keys(earlier):
                        pipe.set(ref_key(key), replaced)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        return record

    async def mark_scanned(self, record: ShipmentRecord, scanned_at: float) -> None:
        """A carrier scanned the parcel: it leaves the unscanned-labels index."""
        updated = record.model_copy(
            update={"first_scan_at": datetime.fromtimestamp(scanned_at, tz=UTC)}
        )
        await self.put_shipments([updated], previous={record.shipment_id: record})

    # -- reads -------------------------------------------------------------

    async def get_shipment(self, shipment_id: str) -> ShipmentRecord | None:
        """One shipment record, or None."""
        raw = await self._get(shipment_key(shipment_id))
        return None if raw is None else _load(ShipmentRecord, raw)

    async def get_order(self, order_number: str) -> OrderRecord | None:
        """One order record, or None."""
        raw = await self._get(order_key(order_number))
        return None if raw is None else _load(OrderRecord, raw)

    async def order_shipments(self, order_number: str) -> list[ShipmentRecord]:
        """The shipments of an order, in shipment-id order."""
        try:
            members = await self.redis.smembers(order_shipments_key(order_number))
            ids = sorted(_text(m) for m in members)
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        records = [await self.get_shipment(sid) for sid in ids]
        return [r for r in records if r is not None]

    async def resolve(self, raw_reference: str) -> Resolution | None:
        """
        What a registered reference leads to: an order and its shipments.

        Returns:
            None when the reference is not registered.
        """
        target = None
        for key in reference_keys(raw_reference):
            raw = await self._get(ref_key(key))
            if raw is not None:
                target = orjson.loads(raw)
                break
        if target is None:
            return None
        kind, ident = RefKind(target["kind"]), str(target["id"])
        if kind is RefKind.shipment:
            shipment = await self.get_shipment(ident)
            if shipment is None:
                return None
            if shipment.order_number:
                return await self._order_resolution(shipment.order_number)
            return Resolution(order=None, order_number=None, shipments=[shipment])
        resolution = await self._order_resolution(ident)
        if kind is RefKind.replaced:
            return Resolution(
                order=resolution.order,
                order_number=resolution.order_number,
                shipments=resolution.shipments,
                replaced_from=references.normalize(raw_reference),
            )
        return resolution

    async def _order_resolution(self, order_number: str) -> Resolution:
        order = await self.get_order(order_number)
        shipments = await self.order_shipments(order_number)
        return Resolution(order=order, order_number=order_number, shipments=shipments)

    async def unscanned(
        self,
        *,
        before_ts: float,
        origin: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[ShipmentRecord], str | None]:
        """
        Labels no carrier has scanned, printed before ``before_ts``, oldest first.

        A range query on the sorted set, never a scan. ``cursor`` continues
        after the last label of the previous page.
        """
        key = unscanned_key(origin)
        low: str | float = "-inf"
        after: tuple[float, str] | None = None
        if cursor:
            after = _decode_cursor(cursor)
            low = after[0]
        picked: list[tuple[str, float]] = []
        offset = 0
        try:
            while len(picked) < limit + 1:
                batch = await self.redis.zrangebyscore(
                    key, low, before_ts, start=offset, num=limit + 1 + 16, withscores=True
                )
                if not batch:
                    break
                offset += len(batch)
                for item in batch:
                    member, raw_score = item  # type: ignore[str-unpack]  # redis-py types withscores loosely
                    sid, score = _text(member), float(raw_score)
                    if after is not None and (score, sid) <= after:
                        continue
                    picked.append((sid, score))
                if len(batch) < limit + 1 + 16:
                    break
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        page, more = picked[:limit], len(picked) > limit
        records = await self._get_many([sid for sid, _ in page])
        next_cursor = _encode_cursor(page[-1][1], page[-1][0]) if more and page else None
        return [r for r in records if r is not None], next_cursor

    async def get_shipments(self, shipment_ids: list[str]) -> list[ShipmentRecord | None]:
        """Several shipment records in one round trip (None where missing)."""
        return await self._get_many(shipment_ids)

    async def _get_many(self, shipment_ids: list[str]) -> list[ShipmentRecord | None]:
        if not shipment_ids:
            return []
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in shipment_ids:
                    pipe.get(shipment_key(sid))
                raws = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        return [None if raw is None else _load(ShipmentRecord, raw) for raw in raws]

    async def _get(self, key: str) -> bytes | None:
        try:
            value = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        return None if value is None else value if isinstance(value, bytes) else str(value).encode()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe_reference_keys(reference: str) -> list[str]:
    try:
        return reference_keys(reference)
    except InvalidReference:
        return []


M = TypeVar("M", ShipmentRecord, OrderRecord)


def _load(model: type[M], raw: bytes) -> M | None:
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        return None
