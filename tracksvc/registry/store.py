"""
The registry in Redis: shipments, orders, the references that lead to them,
and the index of labels no carrier has scanned yet (outbound, not voided:
the warehouse list) with when a carrier was last asked about each.

Keys (every multi-key story stays single-key per command, so the layout
works on Redis Cluster; the braces are hash tags)::

    tracksvc:shipment:{s:<shipment_id>}          JSON ShipmentRecord
    tracksvc:shipment:{s:<shipment_id>}:checked  when a carrier last answered about it (epoch s)
    tracksvc:shipment:{s:<shipment_id>}:voided   the first void of its label: who, when (JSON)
    tracksvc:order:{o:<order_number>}            JSON OrderRecord
    tracksvc:order:{o:<order_number>}:shipments  SET of shipment ids
    tracksvc:ref:{r:<reference>}                 HASH kind -> id: what a reference names
    tracksvc:labels:unscanned                    ZSET shipment id -> label time (epoch s)
    tracksvc:labels:unscanned:<origin>           the same, per warehouse or store
    tracksvc:labels:unchecked                    ZSET shipment id -> label time: labels on the
                                                 list no carrier answered about yet
    tracksvc:labels:origins                      SET of origins that ever had a listed label
    tracksvc:refresh:due                         ZSET shipment id -> when the refresher looks next
                                                 (epoch s); registered shipments still worth
                                                 polling (tracksvc.freshness.refresher drops finished ones)

Writes go out in one round trip without MULTI (cross-slot transactions are
not allowed on a cluster): a pipeline, or for shipments and batch reads the
leaner :func:`tracksvc.redis_bulk.send_all`. Every write is idempotent, so a
retried PUT heals a partial one; an import batch sends one ZADD/ZREM per
label index and per refresh-schedule mode rather than one per row. Records
read back are not re-checked against carrier formats
(:data:`tracksvc.records.STORED`): they were when they were written.

A reference may name several things at once (an order number that is also
another shipment's alias). Each kind is its own field of the reference's
hash, so no write overwrites another kind, and :data:`REF_PRECEDENCE`
decides at read time, whatever the order the records were written in.
Within one kind there is one owner: a shipment whose id, internal number or
alias has a lookup key (as normalized, or compact) another shipment holds,
or an order number with another order's key, is refused
(:class:`Conflict`, 409 ``identifier_conflict``), checked before the write
(two writers racing for one key in the same instant are not serialized).
A shipment that leaves an order leaves its set; an order number left with
no shipment and never registered as an order loses its reference.
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError

from tracksvc.core.errors import (
    IdentifierConflict,
    InvalidReference,
    LabelPickedUp,
    RegistryUnavailable,
    ValidationFailed,
)
from tracksvc.core.redis import RedisClient
from tracksvc.core.redis_budget import redis_step
from tracksvc.core.redis_bulk import Command, score, send_all
from tracksvc.core.redis_keys import (
    CHECKED_SUFFIX,
    ORDER_KEY_PREFIX,
    ORIGINS,
    REF_KEY_PREFIX,
    REFRESH_DUE,
    SHIPMENT_KEY_PREFIX,
    UNCHECKED,
    UNSCANNED,
    VOIDED_SUFFIX,
)
from tracksvc.domain import changes, references
from tracksvc.domain.records import STORED, Direction, OrderRecord, ShipmentRecord


def shipment_key(shipment_id: str) -> str:
    """Key of one shipment record."""
    return f"{SHIPMENT_KEY_PREFIX}{{s:{shipment_id}}}"


def checked_key(shipment_id: str) -> str:
    """When a carrier last answered about a shipment (same slot as its record)."""
    return f"{shipment_key(shipment_id)}{CHECKED_SUFFIX}"


def voided_key(shipment_id: str) -> str:
    """Who voided a shipment's label and when (same slot as its record)."""
    return f"{shipment_key(shipment_id)}{VOIDED_SUFFIX}"


def on_warehouse_list(record: ShipmentRecord) -> bool:
    """
    Whether a label belongs on the warehouse list once past the grace period.

    An outbound label, not voided, that no carrier has scanned: a return label
    waits on the customer, not on the warehouse.
    """
    return not record.voided and record.first_scan_at is None and record.direction is Direction.outbound


def order_key(order_number: str) -> str:
    """Key of one order record."""
    return f"{ORDER_KEY_PREFIX}{{o:{order_number}}}"


def order_shipments_key(order_number: str) -> str:
    """Key of the set of an order's shipment ids (same slot as the order)."""
    return f"{order_key(order_number)}:shipments"


def ref_key(reference: str) -> str:
    """Key of what a reference names."""
    return f"{REF_KEY_PREFIX}{{r:{reference}}}"


def unscanned_key(origin: str | None = None) -> str:
    """The unscanned-labels index, overall or for one origin."""
    return UNSCANNED if origin is None else f"{UNSCANNED}:{origin}"


class RefKind(StrEnum):
    """What a registered reference names (the value is the ``matched`` field of the answer)."""

    replaced = "replaced_order"  # an earlier order number, re-placed as order ``id``
    order = "order_number"
    shipment = "shipment_id"
    internal = "internal_shipping_number"
    alias = "alias"
    tracking = "tracking_number"


#: When one reference names several things, the first kind here wins. An
#: earlier order number leads to the order that replaced it, even when the
#: earlier order itself is registered too.
REF_PRECEDENCE: tuple[RefKind, ...] = (
    RefKind.replaced,
    RefKind.order,
    RefKind.shipment,
    RefKind.internal,
    RefKind.alias,
    RefKind.tracking,
)

#: Kinds whose id is an order number (the others name a shipment id).
ORDER_KINDS = frozenset({RefKind.replaced, RefKind.order})

# Delete a hash field only while it still names what we think: another
# record may have claimed the reference since (one key: cluster-safe).
_HDEL_IF_SAME = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


@dataclass(frozen=True)
class Resolution:
    """A reference resolved through the registry."""

    order: OrderRecord | None
    order_number: str | None
    shipments: list[ShipmentRecord]
    #: The earlier order number the reference was, when the order was re-placed.
    replaced_from: str | None = None
    #: Which kind of reference matched (:class:`RefKind` value).
    matched: str | None = None


def reference_keys(raw: str) -> list[str]:
    """The forms a reference is registered under: as normalized, and compact (no dashes)."""
    normal = references.normalize(raw)
    compact = references.compact(normal)
    return [normal] if compact == normal or not compact else [normal, compact]


def _refs_of(record: ShipmentRecord) -> Iterable[tuple[RefKind, str]]:
    """Every (kind, registered key) a shipment answers to."""
    refs: list[tuple[RefKind, str]] = [
        (RefKind.shipment, record.shipment_id),
        (RefKind.tracking, record.tracking_number),
    ]
    if record.internal_shipping_number:
        refs.append((RefKind.internal, record.internal_shipping_number))
    refs.extend((RefKind.alias, alias) for alias in record.aliases)
    for kind, reference in refs:
        for key in _safe_reference_keys(reference):
            yield kind, key


def _tags_of(record: ShipmentRecord) -> set[str]:
    """The change tags of a shipment: every reference it answers to, its order's, its carrier answer."""
    tags = changes.reference_tags(
        record.shipment_id, record.tracking_number, record.internal_shipping_number,
        record.order_number, *record.aliases,
    )
    tags.add(changes.carrier_tag(record.carrier, record.tracking_number))
    return tags


def _ref_fields(record: ShipmentRecord) -> tuple[object, ...]:
    """What :func:`_refs_of` reads: records equal here answer to the same references."""
    return (record.shipment_id, record.tracking_number, record.internal_shipping_number, record.aliases)


def _encode_cursor(score: float, member: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([score, member])).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        score, member = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(score), str(member)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValidationFailed(
            "the cursor is not one this service handed out",
            details=[{"field": "cursor", "message": "not a cursor from next_cursor"}],
        ) from exc


# Record a check time only if it is later than the one stored (replicas may
# hold answers of different ages). One key: cluster-safe.
_SET_IF_LATER = """
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > stored then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

#: A check time is written again only when it moved by more than this (seconds):
#: a cached answer served a thousand times writes nothing.
CHECKED_RESOLUTION_S = 60.0

#: Check times each process remembers having written (oldest forgotten first).
CHECKED_MEMO_ENTRIES = 100_000


@dataclass(frozen=True)
class StalledLabel:
    """One row of the warehouse list: the label, and when a carrier was last asked about it."""

    record: ShipmentRecord
    #: When a carrier last answered about this label; None: nobody has checked it yet.
    checked_at: datetime | None


# Where the next page of an index starts, and its first window, in one
# atomic step: just past the cursor's label if it is still there with the
# same time, else at the first label with that time (the caller skips the
# ones at or before the cursor). Returns {start rank, flat member/score list}.
_RESUME_AT = """
local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
local window = tonumber(ARGV[3])
if rank and tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then
  rank = rank + 1
else
  rank = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[2])
end
return {rank, redis.call('ZRANGE', KEYS[1], rank, rank + window - 1, 'WITHSCORES')}
"""


def _pairs(items: Sequence[Any]) -> list[tuple[str, float]]:
    """(member, score) pairs from redis-py's tuples or a script's flat list."""
    if items and not isinstance(items[0], list | tuple):
        return [(_text(items[i]), float(items[i + 1])) for i in range(0, len(items), 2)]
    return [(_text(member), float(score)) for member, score in items]


class _WriteBatch:
    """
    The commands that write a batch of shipments, in the order they must run.

    Each row's record, references and order set are written as they come
    (two rows may touch the same reference). The label indexes and the
    refresh schedule get one command per key and kind for the whole batch,
    with the same outcome as one command per row.
    """

    def __init__(self) -> None:
        self.rows: list[Command] = []
        #: Order references already written by this batch (same key, field and value).
        self.order_refs: set[str] = set()
        #: Label-index key -> shipment id -> label time, or None to remove (the last row wins).
        self.index: dict[str, dict[str, float | None]] = {}
        #: Shipment id -> (when due, or None to stop polling; only if not scheduled yet).
        self.due: dict[str, tuple[float | None, bool]] = {}
        #: Shipment id -> its record as this batch leaves it (rows of one shipment apply in order).
        self.latest: dict[str, ShipmentRecord] = {}
        #: Order numbers a shipment of this batch left (they may have none left).
        self.left_orders: set[str] = set()
        #: What this batch changes, for every replica's kept answers (:mod:`tracksvc.domain.changes`).
        self.tags: set[str] = set()
        #: Origins of the listed labels of this batch (the warehouse chart's rows).
        self.origins: set[str] = set()

    def add_shipment(self, record: ShipmentRecord, previous: ShipmentRecord | None) -> None:
        """
        Queue one shipment's writes; ``previous`` is the stored record it replaces.

        A second row of the same shipment replaces the first one's record, not the
        stored one: the aliases and order of the earlier row stop leading to it.
        """
        rows = self.rows
        sid = record.shipment_id
        previous = self.latest.get(sid, previous)
        self.latest[sid] = record
        self.tags |= _tags_of(record)
        if previous is not None:
            self.tags |= _tags_of(previous)
        rows.append(("SET", shipment_key(sid), record.model_dump_json()))
        refs = set(_refs_of(record))
        rows.extend(("HSET", ref_key(key), kind.value, sid) for kind, key in refs)
        if previous is not None and _ref_fields(previous) != _ref_fields(record):
            # References the shipment no longer has (a changed alias) stop leading to it.
            rows.extend(
                ("EVAL", _HDEL_IF_SAME, "1", ref_key(key), kind.value, sid)
                for kind, key in set(_refs_of(previous)) - refs
            )
        if record.order_number:
            rows.append(("SADD", order_shipments_key(record.order_number), sid))
            if record.order_number not in self.order_refs:
                self.order_refs.add(record.order_number)
                rows.extend(
                    ("HSET", ref_key(key), RefKind.order.value, record.order_number)
                    for key in _safe_reference_keys(record.order_number)
                )
        if previous is not None and previous.order_number and previous.order_number != record.order_number:
            rows.append(("SREM", order_shipments_key(previous.order_number), sid))
            self.left_orders.add(previous.order_number)
        index = self.index
        if previous is not None and previous.origin and previous.origin != record.origin:
            index.setdefault(unscanned_key(previous.origin), {})[sid] = None
        listed = on_warehouse_list(record)
        label_ts = record.label_created_at.timestamp() if listed else None
        index.setdefault(unscanned_key(), {})[sid] = label_ts
        if record.origin:
            index.setdefault(unscanned_key(record.origin), {})[sid] = label_ts
            if listed:
                self.origins.add(record.origin)
        # A new label, or a new number, has not been asked about: its check time goes.
        renumbered = previous is not None and (
            (previous.carrier, previous.tracking_number) != (record.carrier, record.tracking_number)
        )
        if renumbered:
            rows.append(("DEL", checked_key(sid)))
        if not listed or previous is None or renumbered:
            index.setdefault(UNCHECKED, {})[sid] = label_ts
        self._schedule(record, previous)

    def _schedule(self, record: ShipmentRecord, previous: ShipmentRecord | None) -> None:
        # A new shipment is due at once; a changed number or an un-voided label is
        # due again; otherwise the refresher's schedule stands (NX). A voided
        # label is never polled.
        sid = record.shipment_id
        if record.voided:
            self.due[sid] = (None, False)
            return
        renewed = previous is not None and (
            previous.voided
            or (previous.carrier, previous.tracking_number) != (record.carrier, record.tracking_number)
        )
        step = (time.time(), not renewed)
        earlier = self.due.get(sid)
        if earlier is None or not step[1]:
            self.due[sid] = step  # the first step, or a plain ZADD: it decides
        elif earlier[0] is None:
            self.due[sid] = (step[0], False)  # ZADD NX right after a ZREM always adds
        # else ZADD NX after a ZADD of this batch changes nothing

    def commands(self) -> list[Command]:
        """Every command of the batch, the change's announcement last."""
        commands = self.rows
        for key, members in self.index.items():
            _queue_zset(commands, key, members, nx=False)
        if self.origins:
            commands.append(("SADD", ORIGINS, *sorted(self.origins)))
        for nx in (False, True):
            due = {sid: at for sid, (at, only_new) in self.due.items() if only_new is nx}
            _queue_zset(commands, REFRESH_DUE, due, nx=nx)
        if self.tags:
            commands.append(("PUBLISH", changes.CHANGES_CHANNEL, changes.encode(self.tags)))
        return commands


def _queue_zset(commands: list[Command], key: str, members: dict[str, float | None], *, nx: bool) -> None:
    """One ZADD for the members with a score, one ZREM for those with None."""
    added: list[str] = []
    removed: list[str] = []
    for member, at in members.items():
        if at is None:
            removed.append(member)
        else:
            added += (score(at), member)
    if added:
        commands.append(("ZADD", key, "NX", *added) if nx else ("ZADD", key, *added))
    if removed:
        commands.append(("ZREM", key, *removed))


#: Kinds whose id is a shipment that holds the reference as one of its own identifiers
#: (its tracking number is the carrier's, and may be shared, e.g. by a return label).
SHIPMENT_IDENTIFIER_KINDS: tuple[RefKind, ...] = (RefKind.shipment, RefKind.internal, RefKind.alias)
#: The reference-hash fields a write reads to find conflicts.
_CLAIM_KINDS: tuple[RefKind, ...] = (*SHIPMENT_IDENTIFIER_KINDS, RefKind.order)
_CLAIM_FIELDS: tuple[str, ...] = tuple(kind.value for kind in _CLAIM_KINDS)


#: How a conflict names the identifier the other record holds ("" for the record's own id).
_CONFLICT_ROLES: Mapping[str, str] = {
    RefKind.shipment.value: "",
    RefKind.order.value: "",
    RefKind.internal.value: "the internal shipping number of ",
    RefKind.alias.value: "an alias of ",
}


@dataclass(frozen=True)
class Conflict:
    """
    An identifier refused because another record holds the same lookup key.

    Attributes:
        field: The refused record's field (``shipment_id``, ``aliases.1``, ``order_number``).
        value: Its text.
        other: The shipment id or order number of the record that holds the key.
        other_kind: ``shipment`` or ``order``.
        other_field: Which identifier of that record holds it (a :class:`RefKind` value).
    """

    field: str
    value: str
    other: str
    other_kind: str
    other_field: str

    @property
    def message(self) -> str:
        """The conflict in words, naming the other record."""
        role = _CONFLICT_ROLES.get(self.other_field, "")
        held = f"{role}{self.other_kind} {self.other!r}"
        return (
            f"{self.field} {self.value!r} is already {held}: the same lookup key (case, spaces, a "
            "leading '#' and the separators - . ( ) do not count); use that text or another identifier"
        )

    def details(self) -> dict[str, str]:
        """The conflict as data, for the error's ``details`` and import row errors."""
        return {
            "field": self.field, "value": self.value, "conflicts_with": self.other,
            "conflicts_with_kind": self.other_kind, "conflicts_with_field": self.other_field,
        }

    def error(self) -> IdentifierConflict:
        """The 409 this conflict answers."""
        return IdentifierConflict(self.message, details=self.details())


@dataclass
class _Claimant:
    """Another order a write found holding a key: registered, and its shipments."""

    registered: bool = False
    members: set[str] = field(default_factory=set)


def _identifier_claims(record: ShipmentRecord) -> list[tuple[str, str, tuple[str, ...]]]:
    """(field, text, lookup keys) of each identifier a shipment holds as its own."""
    named: list[tuple[str, str | None]] = [
        ("shipment_id", record.shipment_id),
        ("internal_shipping_number", record.internal_shipping_number),
        *((f"aliases.{i}", alias) for i, alias in enumerate(record.aliases)),
    ]
    return [(name, text, _safe_reference_keys(text)) for name, text in named if text]


def _holding_field(record: ShipmentRecord, key: str) -> str | None:
    """Which of a shipment's own identifiers has lookup key ``key`` (a RefKind value), if any."""
    kinds = {"shipment_id": RefKind.shipment, "internal_shipping_number": RefKind.internal}
    for name, _, keys in _identifier_claims(record):
        if key in keys:
            return kinds.get(name, RefKind.alias).value
    return None


def _shipment_conflict(
    sid: str,
    claim: list[tuple[str, str, tuple[str, ...]]],
    owners: dict[str, dict[RefKind, str]],
    claimed: dict[str, set[str]],
    latest: dict[str, ShipmentRecord | None],
) -> Conflict | None:
    """The first identifier of shipment ``sid`` that another shipment still holds."""
    for name, text, keys in claim:
        for key in keys:
            stored = {o for kind, o in owners.get(key, {}).items() if kind in SHIPMENT_IDENTIFIER_KINDS}
            for other in sorted(stored | claimed.get(key, set())):
                record = latest.get(other) if other != sid else None
                held = None if record is None else _holding_field(record, key)
                if held is not None:
                    return Conflict(name, text, other, "shipment", held)
    return None


def _order_conflict(
    record: ShipmentRecord,
    owners: dict[str, dict[RefKind, str]],
    numbered: dict[str, set[str]],
    orders: dict[str, _Claimant],
    latest: dict[str, ShipmentRecord | None],
) -> Conflict | None:
    """Another live order (registered, or with a shipment besides this one) under the same key."""
    number = record.order_number
    if not number:
        return None
    for key in _safe_reference_keys(number):
        stored = owners.get(key, {}).get(RefKind.order)
        for other in sorted(({stored} if stored else set()) | numbered.get(key, set())):
            if other == number:
                continue
            claimant = orders.get(other, _Claimant())
            live = [
                sid for sid in claimant.members
                if sid != record.shipment_id
                and (sid not in latest or ((r := latest[sid]) is not None and r.order_number == other))
            ]
            if claimant.registered or live:
                return Conflict("order_number", number, other, "order", RefKind.order.value)
    return None


def _keep_void(record: ShipmentRecord, previous: ShipmentRecord | None) -> ShipmentRecord:
    """
    A warehouse's void of a label stays when the order system sends the same label again.

    A new number (carrier or tracking number changed) is a new label: the void does not carry.
    """
    if (
        previous is None or previous.voided_at is None or record.voided_at is not None
        or (previous.carrier, previous.tracking_number) != (record.carrier, record.tracking_number)
    ):
        return record
    return record.model_copy(update={
        "voided": True, "voided_at": previous.voided_at, "voided_by": previous.voided_by,
    })


@dataclass(frozen=True)
class VoidOutcome:
    """What ``void_label`` did: the record as stored, and whether this call voided it."""

    record: ShipmentRecord
    newly_voided: bool


class Registry:
    """Shipments, orders and references in Redis."""

    def __init__(self, redis: RedisClient, *, on_change: Callable[[set[str]], None] | None = None) -> None:
        self.redis = redis
        self._resume_at = redis.register_script(_RESUME_AT)
        #: Told the tags of every write this replica makes, once it is stored (its own kept
        #: answers go at once; other replicas hear the same tags over pub/sub).
        self.on_change = on_change
        #: (shipment id, tracking number) -> the check time this process last wrote
        #: (:meth:`note_checked`); a new number is a new label to check.
        self._checked: dict[tuple[str, str], float] = {}

    def _changed(self, tags: set[str]) -> None:
        if tags and self.on_change is not None:
            self.on_change(tags)

    # -- writes ------------------------------------------------------------

    async def put_shipment(self, record: ShipmentRecord) -> ShipmentRecord:
        """
        Upsert a shipment; idempotent. Keeps what tracksvc learned (first scan).

        Returns:
            The record as stored.

        Raises:
            IdentifierConflict: one of its identifiers (or its order number) has the
                lookup key of another shipment's (another order's).
            RegistryUnavailable: Redis failed.
        """
        [outcome] = await self.put_shipments_checked([record])
        if isinstance(outcome, Conflict):
            raise outcome.error()
        return outcome

    async def put_shipments_checked(
        self, records: Sequence[ShipmentRecord]
    ) -> list[ShipmentRecord | Conflict]:
        """
        Write shipments in order, each after the ones before (one import batch, or one PUT).

        A row is refused, and nothing of it written, when one of its identifiers
        (shipment id, internal shipping number, alias) has the lookup key of another
        shipment's identifier, or its order number that of another order
        (:class:`Conflict`). Rows of one shipment apply in order: the last row's
        aliases and order stay, the earlier rows' stop leading to it. What tracksvc
        learned (the first scan) is kept. An order number that lost its last
        shipment and was never registered as an order stops resolving.

        Returns:
            Per row, the record as stored, or the conflict that refused it.

        Raises:
            RegistryUnavailable: Redis failed; rows may be partly written (every
                write is idempotent: writing them again heals them).
        """
        claims = [_identifier_claims(record) for record in records]
        shipment_keys = {key for claim in claims for _, _, keys in claim for key in keys}
        order_keys = {key for r in records if r.order_number for key in _safe_reference_keys(r.order_number)}
        keys = sorted(shipment_keys | order_keys)
        ids = list(dict.fromkeys(r.shipment_id for r in records))
        replies = await self._write(
            [("GET", shipment_key(sid)) for sid in ids]
            + [("HMGET", ref_key(key), *_CLAIM_FIELDS) for key in keys]
        )
        latest: dict[str, ShipmentRecord | None] = {
            sid: None if raw is None else _load(ShipmentRecord, raw)
            for sid, raw in zip(ids, replies[:len(ids)], strict=True)
        }
        owners: dict[str, dict[RefKind, str]] = {
            key: {kind: _text(v) for kind, v in zip(_CLAIM_KINDS, values, strict=True) if v is not None}
            for key, values in zip(keys, replies[len(ids):], strict=True)
        }
        orders = await self._claimants(records, claims, owners, latest)
        batch = _WriteBatch()
        claimed: dict[str, set[str]] = {}  # lookup key -> shipments of this batch holding it
        numbered: dict[str, set[str]] = {}  # lookup key -> order numbers of this batch under it
        outcomes: list[ShipmentRecord | Conflict] = []
        for record, claim in zip(records, claims, strict=True):
            sid = record.shipment_id
            conflict = _shipment_conflict(sid, claim, owners, claimed, latest) or _order_conflict(
                record, owners, numbered, orders, latest
            )
            if conflict is not None:
                outcomes.append(conflict)
                continue
            previous = latest.get(sid)
            if previous is not None and previous.first_scan_at and not record.first_scan_at:
                record = record.model_copy(update={"first_scan_at": previous.first_scan_at})
            record = _keep_void(record, previous)
            batch.add_shipment(record, previous)
            latest[sid] = record
            for _, _, field_keys in claim:
                for key in field_keys:
                    claimed.setdefault(key, set()).add(sid)
            if record.order_number:
                orders.setdefault(record.order_number, _Claimant()).members.add(sid)
                for key in _safe_reference_keys(record.order_number):
                    numbered.setdefault(key, set()).add(record.order_number)
            outcomes.append(record)
        await self._write(batch.commands())
        self._changed(batch.tags)
        await self._forget_orphan_orders(batch.left_orders)
        return outcomes

    async def put_shipments(
        self,
        records: Sequence[ShipmentRecord],
        previous: dict[str, ShipmentRecord | None] | None = None,
    ) -> None:
        """
        Write many shipments in one round trip, unchecked (records tracksvc itself updates).

        Rows of one shipment apply in order. ``previous`` holds the stored records
        they replace, when the caller has read them.
        """
        batch = _WriteBatch()
        for record in records:
            batch.add_shipment(record, (previous or {}).get(record.shipment_id))
        await self._write(batch.commands())
        self._changed(batch.tags)
        await self._forget_orphan_orders(batch.left_orders)

    async def _claimants(
        self,
        records: Sequence[ShipmentRecord],
        claims: list[list[tuple[str, str, tuple[str, ...]]]],
        owners: dict[str, dict[RefKind, str]],
        latest: dict[str, ShipmentRecord | None],
    ) -> dict[str, _Claimant]:
        """
        Load the other shipments and orders that hold a key the records want.

        Adds those shipments to ``latest``; returns, for each other order named,
        whether it is registered and its shipments.
        """
        others = sorted({
            owner
            for claim in claims
            for _, _, keys in claim for key in keys
            for kind, owner in owners.get(key, {}).items()
            if kind is not RefKind.order and owner not in latest
        })
        numbers = sorted({
            owner
            for r in records if r.order_number
            for key in _safe_reference_keys(r.order_number)
            if (owner := owners.get(key, {}).get(RefKind.order)) is not None and owner != r.order_number
        })
        if not others and not numbers:
            return {}
        replies = await self._write(
            [("GET", shipment_key(sid)) for sid in others]
            + [("EXISTS", order_key(n)) for n in numbers]
            + [("SMEMBERS", order_shipments_key(n)) for n in numbers]
        )
        for sid, raw in zip(others, replies, strict=False):
            latest[sid] = None if raw is None else _load(ShipmentRecord, raw)
        registered = replies[len(others):len(others) + len(numbers)]
        members = replies[len(others) + len(numbers):]
        return {
            n: _Claimant(registered=bool(exists), members={_text(m) for m in found})
            for n, exists, found in zip(numbers, registered, members, strict=True)
        }

    async def _forget_orphan_orders(self, numbers: set[str]) -> None:
        """
        Order numbers that lost their last shipment, and were never registered, stop resolving.

        A shipment written meanwhile under one of them gets its reference back.
        """
        if not numbers:
            return
        ordered = sorted(numbers)
        replies = await self._write(
            [("EXISTS", order_key(n)) for n in ordered]
            + [("SMEMBERS", order_shipments_key(n)) for n in ordered]
        )
        unregistered = {
            n: sorted(_text(m) for m in found)
            for n, exists, found in zip(ordered, replies, replies[len(ordered):], strict=False)
            if not exists
        }
        member_ids = sorted({sid for found in unregistered.values() for sid in found})
        raws = await self._write([("GET", shipment_key(sid)) for sid in member_ids])
        stored = {sid: None if raw is None else _load(ShipmentRecord, raw)
                  for sid, raw in zip(member_ids, raws, strict=True)}
        commands: list[Command] = []
        orphans: list[str] = []
        for number, found in unregistered.items():
            gone = [sid for sid in found if (r := stored.get(sid)) is None or r.order_number != number]
            if len(gone) < len(found):
                continue  # a shipment is still in this order
            orphans.append(number)
            if gone:
                commands.append(("SREM", order_shipments_key(number), *gone))
            commands.extend(
                ("EVAL", _HDEL_IF_SAME, "1", ref_key(key), RefKind.order.value, number)
                for key in _safe_reference_keys(number)
            )
        if not orphans:
            return
        await self._write(commands)
        again = await self._write(
            [("EXISTS", order_key(n)) for n in orphans] + [("SCARD", order_shipments_key(n)) for n in orphans]
        )
        await self._write([
            ("HSET", ref_key(key), RefKind.order.value, number)
            for number, exists, count in zip(orphans, again, again[len(orphans):], strict=False)
            if exists or count
            for key in _safe_reference_keys(number)
        ])

    async def _write(self, commands: Sequence[Command]) -> list[Any]:
        try:
            return await send_all(self.redis, commands)
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc

    async def put_order(self, record: OrderRecord, previous: OrderRecord | None = None) -> OrderRecord:
        """
        Upsert an order; its number and the numbers it replaced resolve to it.

        Args:
            record: the order as it is now.
            previous: the stored order, when the caller has read it: earlier
                numbers it no longer replaces stop leading to it.
        """
        number = record.order_number
        await self._check_order_number(number)
        replaced = {key for earlier in record.replaces for key in _safe_reference_keys(earlier)}
        dropped = set() if previous is None else {
            key for earlier in previous.replaces for key in _safe_reference_keys(earlier)
        } - replaced
        tags = changes.reference_tags(number, *record.replaces, *(previous.replaces if previous else ()))
        # send_all, not a pipeline: a cluster pipeline refuses PUBLISH (send_all sends it last).
        await self._write([
            ("SET", order_key(number), record.model_dump_json()),
            *[("HSET", ref_key(key), RefKind.order.value, number) for key in _safe_reference_keys(number)],
            *[("HSET", ref_key(key), RefKind.replaced.value, number) for key in replaced],
            *[("EVAL", _HDEL_IF_SAME, "1", ref_key(key), RefKind.replaced.value, number) for key in dropped],
            ("PUBLISH", changes.CHANGES_CHANNEL, changes.encode(tags)),
        ])
        self._changed(tags)
        return record

    async def _check_order_number(self, number: str) -> None:
        """Refuse an order number with the lookup key of another order (``w-1`` beside ``W-1``)."""
        keys = _safe_reference_keys(number)
        held = await self._write([("HGET", ref_key(key), RefKind.order.value) for key in keys])
        others = sorted({_text(v) for v in held if v is not None} - {number})
        if not others:
            return
        replies = await self._write(
            [("EXISTS", order_key(n)) for n in others] + [("SCARD", order_shipments_key(n)) for n in others]
        )
        for other, exists, count in zip(others, replies, replies[len(others):], strict=False):
            if exists or count:
                raise Conflict("order_number", number, other, "order", RefKind.order.value).error()

    async def mark_scanned(self, record: ShipmentRecord, scanned_at: float) -> None:
        """A carrier scanned the parcel: it leaves the unscanned-labels index."""
        updated = record.model_copy(
            update={"first_scan_at": datetime.fromtimestamp(scanned_at, tz=UTC)}
        )
        await self.put_shipments([updated], previous={record.shipment_id: record})

    async def note_checked(self, record: ShipmentRecord, checked_at: datetime) -> bool:
        """
        A carrier answered about a label on the warehouse list at ``checked_at``.

        One round trip, and only when the time moved by more than
        :data:`CHECKED_RESOLUTION_S` since this process last wrote it: serving a
        cached answer again writes nothing. The stored time never goes back.
        Shipments off the list (scanned, voided, returns) are not recorded.

        Returns:
            Whether Redis was written.

        Raises:
            RegistryUnavailable: Redis failed.
        """
        sid = record.shipment_id
        at = checked_at.timestamp()
        memo = (sid, record.tracking_number)
        known = self._checked.get(memo)
        if not on_warehouse_list(record) or (known is not None and at < known + CHECKED_RESOLUTION_S):
            return False
        await self._write([
            ("EVAL", _SET_IF_LATER, "1", checked_key(sid), score(at)),
            ("ZREM", UNCHECKED, sid),
        ])
        self._checked.pop(memo, None)
        if len(self._checked) >= CHECKED_MEMO_ENTRIES:
            del self._checked[next(iter(self._checked))]
        self._checked[memo] = at
        return True

    async def void_label(self, shipment_id: str, *, by: str, at: datetime) -> VoidOutcome | None:
        """
        Mark a shipment's label voided, with who and when; idempotent.

        The first void of a label wins (``SET NX`` on its audit key, same slot as the
        record): a second call, or two at once, store and answer the same who and when.
        The label leaves the warehouse list and the labels to void (both read the
        unscanned index it is removed from) and is no longer polled. A label voided
        by the order system (``voided`` without ``voided_at``) is answered as it is.

        Returns:
            None when no such shipment is registered.

        Raises:
            LabelPickedUp: a carrier scanned the parcel (it is not voided).
            RegistryUnavailable: Redis failed (the void may be partly written: call again).
        """
        record = await self.get_shipment(shipment_id)
        if record is None:
            return None
        if record.voided:
            return VoidOutcome(record, newly_voided=False)
        if record.first_scan_at is not None:
            raise LabelPickedUp(
                f"{record.carrier.value.upper()} scanned this parcel at "
                f"{record.first_scan_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC: it is on its way "
                "and its label can no longer be voided",
            )
        key = voided_key(shipment_id)
        ours = {"tracking_number": record.tracking_number, "at": at.astimezone(UTC).isoformat(), "by": by}
        written, stored = await self._write([("SET", key, orjson.dumps(ours), "NX"), ("GET", key)])
        newly = written is not None
        audit = _audit(stored)
        if audit is None or audit.get("tracking_number") != record.tracking_number:
            # An audit of an earlier label under this shipment id (renumbered since): ours replaces it.
            await self._write([("SET", key, orjson.dumps(ours))])
            audit, newly = ours, True
        voided = record.model_copy(update={
            "voided": True,
            "voided_at": datetime.fromisoformat(str(audit["at"])),
            "voided_by": str(audit["by"]),
        })
        await self.put_shipments([voided], previous={shipment_id: record})
        return VoidOutcome(voided, newly_voided=newly)

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
        records = await self._get_many(ids)
        # A shipment moved to another order since keeps no claim on this one.
        return [r for r in records if r is not None and r.order_number == order_number]

    async def resolve(self, raw_reference: str) -> Resolution | None:
        """
        What a registered reference leads to: an order and its shipments.

        Every read counts against the request's Redis budget
        (:mod:`tracksvc.core.redis_budget`): past it, the registry is unavailable.

        Returns:
            None when the reference is not registered.

        Raises:
            RegistryUnavailable: the registry could not be read (in full) within the budget.
        """
        try:
            async with redis_step("registry resolve"):
                return await self._resolve(raw_reference)
        except (RedisError, OSError) as exc:  # the budget ran out between two reads
            raise RegistryUnavailable(f"the registry (Redis) did not answer in time: {exc}") from exc

    async def owners(self, keys: Sequence[str]) -> list[dict[str, str]]:
        """
        What each reference key names (kind value -> id; empty when nothing is registered under it).

        One round trip of single-key ``HMGET`` commands, one per key (each key in its own hash
        slot, no multi-key command: fine on Redis Cluster), within the request's Redis budget.
        Its cost is the number of keys, never the size of the registry.

        Raises:
            RegistryUnavailable: Redis failed or the budget ran out.
        """
        if not keys:
            return []
        fields = [kind.value for kind in REF_PRECEDENCE]
        try:
            async with redis_step("registry owners"):
                replies = await send_all(self.redis, [("HMGET", ref_key(key), *fields) for key in keys])
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        return [
            {name: _text(value) for name, value in zip(fields, values, strict=True) if value is not None}
            for values in replies
        ]

    async def _resolve(self, raw_reference: str) -> Resolution | None:
        fields = [kind.value for kind in REF_PRECEDENCE]
        keys = reference_keys(raw_reference)
        try:
            found: list[list[bytes | str | None]]
            if len(keys) == 1:
                # The common case (no dashes): one plain command, no pipeline overhead.
                found = [await self.redis.hmget(ref_key(keys[0]), fields)]
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.hmget(ref_key(key), fields)
                    found = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        # The exact form first (dashes kept), then the compact one; by precedence within each.
        for values in found:
            for kind, value in zip(REF_PRECEDENCE, values, strict=True):
                if value is None:
                    continue
                resolution = await self._resolve_target(kind, _text(value), raw_reference)
                if resolution is not None:
                    return resolution
        return None

    async def _resolve_target(self, kind: RefKind, ident: str, raw_reference: str) -> Resolution | None:
        if kind not in ORDER_KINDS:
            shipment = await self.get_shipment(ident)
            if shipment is None:
                return None
            if shipment.order_number:
                resolution = await self._order_resolution(shipment.order_number)
                return replace(resolution, matched=kind.value)
            return Resolution(order=None, order_number=None, shipments=[shipment], matched=kind.value)
        resolution = await self._order_resolution(ident)
        if kind is RefKind.replaced:
            return replace(resolution, replaced_from=references.normalize(raw_reference),
                           matched=kind.value)
        return replace(resolution, matched=kind.value)

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
        after the last label of the previous page: at the rank just past it,
        found atomically in Redis, so labels with equal label times are
        neither repeated nor skipped, and a page costs the same however deep
        it is.
        """
        page, next_cursor = await self._unscanned_page(before_ts, origin, limit, cursor)
        records = await self._get_many([sid for sid, _ in page])
        return [r for r in records if r is not None], next_cursor

    async def stalled(
        self,
        *,
        before_ts: float,
        origin: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[StalledLabel], str | None]:
        """
        The warehouse list: :meth:`unscanned` with when a carrier last answered about each label.

        Records and check times come in one round trip. A label that left the
        list since the index was read (scanned, voided, a return) is left out.
        """
        page, next_cursor = await self._unscanned_page(before_ts, origin, limit, cursor)
        return await self._with_checked([sid for sid, _ in page]), next_cursor

    async def unscanned_between(
        self, *, low_ts: float, high_ts: float, origin: str | None = None, limit: int
    ) -> tuple[list[StalledLabel], bool]:
        """
        Listed labels printed between two times (inclusive), oldest first, at most ``limit``.

        Returns:
            The labels with their check times, and whether more were left out.
        """
        page = await self._zrange(unscanned_key(origin), low_ts, high_ts, limit + 1)
        labels = await self._with_checked([sid for sid, _ in page[:limit]])
        return labels, len(page) > limit

    async def unscanned_counts(self, bounds: Sequence[tuple[float, float]]) -> dict[str | None, list[int]]:
        """
        How many listed labels were printed in each time range (``(low, high]``), per origin.

        One ZCOUNT per origin and range, each on one key. Origins come from the set every
        write of a listed label adds to; ``None`` counts the labels of no origin (the whole
        index less the origins'), so the counts always add up to the whole list.
        """
        try:
            members = await self.redis.smembers(ORIGINS)
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        origins: list[str | None] = [None, *sorted(_text(m) for m in members)]
        replies = await self._write([
            ("ZCOUNT", unscanned_key(origin), f"({score(low)}", score(high))
            for origin in origins for low, high in bounds
        ])
        width = len(bounds)
        counts = {o: [int(c) for c in replies[i * width:(i + 1) * width]] for i, o in enumerate(origins)}
        whole = counts.pop(None)
        rest = [total - sum(c[i] for c in counts.values()) for i, total in enumerate(whole)]
        return {**counts, None: [max(0, n) for n in rest]}

    async def _with_checked(self, ids: list[str]) -> list[StalledLabel]:
        """Records and check times of listed labels in one round trip; labels off the list are left out."""
        try:
            replies = await send_all(
                self.redis,
                [("GET", shipment_key(sid)) for sid in ids] + [("GET", checked_key(sid)) for sid in ids],
            )
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        rows: list[StalledLabel] = []
        for raw, checked in zip(replies[:len(ids)], replies[len(ids):], strict=True):
            record = None if raw is None else _load(ShipmentRecord, raw)
            if record is None or not on_warehouse_list(record):
                continue
            at = None if checked is None else datetime.fromtimestamp(float(_text(checked)), tz=UTC)
            rows.append(StalledLabel(record, at))
        return rows

    async def _unscanned_page(
        self, before_ts: float, origin: str | None, limit: int, cursor: str | None
    ) -> tuple[list[tuple[str, float]], str | None]:
        """One page of the unscanned index (id, label time) and the cursor past it."""
        key = unscanned_key(origin)
        after = _decode_cursor(cursor) if cursor else None
        window = limit + 1
        picked: list[tuple[str, float]] = []
        try:
            if after is None:
                start = 0
                batch = _pairs(await self.redis.zrange(key, 0, window - 1, withscores=True))
            else:
                start_raw, flat = await self._resume_at(
                    keys=[key], args=[after[1], repr(after[0]), window]
                )
                start = int(start_raw)
                batch = _pairs(flat)
            while True:
                for sid, score in batch:
                    if score > before_ts:
                        break
                    if after is not None and (score, sid) <= after:
                        continue  # same label time, at or before the cursor's label
                    picked.append((sid, score))
                else:
                    if len(batch) == window and len(picked) < window:
                        start += window
                        batch = _pairs(
                            await self.redis.zrange(key, start, start + window - 1, withscores=True)
                        )
                        continue
                break
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        page, more = picked[:limit], len(picked) > limit
        return page, _encode_cursor(page[-1][1], page[-1][0]) if more and page else None

    async def get_shipments(self, shipment_ids: list[str]) -> list[ShipmentRecord | None]:
        """Several shipment records in one round trip (None where missing)."""
        return await self._get_many(shipment_ids)

    # -- the refresher's schedule (tracksvc.freshness.refresher) ------------------------

    async def unscanned_ids(self, low_ts: float, high_ts: float, limit: int) -> list[str]:
        """Ids of unscanned labels printed between two times, oldest first."""
        return [sid for sid, _ in await self._zrange(UNSCANNED, low_ts, high_ts, limit)]

    async def unchecked_ids(
        self, low_ts: float, high_ts: float, limit: int, *, newest_first: bool = False
    ) -> list[str]:
        """Ids of listed labels no carrier has answered about, printed between two times, oldest first."""
        return [sid for sid, _ in await self._zrange(UNCHECKED, low_ts, high_ts, limit, reverse=newest_first)]

    async def due_for_refresh(self, now_ts: float, limit: int) -> list[tuple[str, float]]:
        """Shipments due for a refresh by ``now_ts``, most overdue first, with their due times."""
        return await self._zrange(REFRESH_DUE, float("-inf"), now_ts, limit)

    async def refresh_due_times(self, shipment_ids: list[str]) -> list[float | None]:
        """When each shipment is due (None: not scheduled, i.e. not polled)."""
        if not shipment_ids:
            return []
        try:
            scores = await self.redis.zmscore(REFRESH_DUE, shipment_ids)
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        return [None if s is None else float(s) for s in scores]

    async def schedule_refresh(self, due: dict[str, float | None]) -> None:
        """
        Set when shipments are due next; None stops polling one.

        Only shipments still scheduled are moved (XX): a void written meanwhile stays.
        """
        if not due:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, at in due.items():
                    if at is None:
                        pipe.zrem(REFRESH_DUE, sid)
                    else:
                        pipe.zadd(REFRESH_DUE, {sid: at}, xx=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc

    async def _zrange(
        self, key: str, low: float, high: float, limit: int, *, reverse: bool = False
    ) -> list[tuple[str, float]]:
        try:
            if reverse:
                items = await self.redis.zrevrangebyscore(key, high, low, start=0, num=limit, withscores=True)
            else:
                items = await self.redis.zrangebyscore(key, low, high, start=0, num=limit, withscores=True)
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        return _pairs(items)

    async def _get_many(self, shipment_ids: list[str]) -> list[ShipmentRecord | None]:
        if not shipment_ids:
            return []
        try:
            raws = await send_all(self.redis, [("GET", shipment_key(sid)) for sid in shipment_ids])
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


def _audit(raw: object) -> dict[str, Any] | None:
    """A stored void audit (JSON object), or None when missing or unreadable."""
    if raw is None:
        return None
    try:
        loaded = orjson.loads(raw if isinstance(raw, bytes | str) else str(raw))
    except orjson.JSONDecodeError:
        return None
    if not isinstance(loaded, dict) or not all(name in loaded for name in ("at", "by")):
        return None
    return loaded


@functools.lru_cache(maxsize=16384)  # a write batch asks for the same keys several times
def _safe_reference_keys(reference: str) -> tuple[str, ...]:
    try:
        return tuple(reference_keys(reference))
    except InvalidReference:
        return ()


M = TypeVar("M", ShipmentRecord, OrderRecord)


def _load(model: type[M], raw: bytes | str) -> M | None:
    # What tracksvc stored was validated on the way in: the tracking number is
    # not detected again (records.STORED), the rest of the JSON is checked.
    try:
        return model.model_validate_json(raw, context=STORED)
    except ValidationError:
        return None
