"""
Outbound webhooks: "we will tell you the moment it moves".

A subscription names a reference (order number, shipment id, alias, tracking
number) and a callback URL. Whenever the order status of that reference
changes, the callback gets one HMAC-signed POST, at least once.

How a change is noticed:

- the tracker's listener hears every fresh carrier answer (lookups, the
  refresher, UPS pushes); a worker finds the subscriptions whose reference
  leads to that number and re-evaluates them (:meth:`Notifier.check_number`);
- each refresher cycle re-evaluates the subscriptions due for a look
  (:meth:`Notifier.sweep`), which catches changes the clock alone makes
  (``label_created`` -> ``not_tendered``, ``in_transit`` -> ``stalled``).

Evaluating is ``TrackService.track(reference)``. A status different from the
one last notified (or the baseline taken at subscription) moves the
subscription's state and writes the delivery into the outbox in one Redis
script, so a change is recorded exactly once across replicas and, once
recorded, is never lost: the sender claims due deliveries with a lease,
POSTs them, and on anything but 2xx retries with exponential backoff and
jitter until ``webhook_max_age_s``; a crash mid-send leaves the delivery to
be retried when its lease ends, by any replica. ``unknown`` (no carrier
could be asked) is never notified.

Every POST carries::

    Content-Type: application/json
    Idempotency-Key: <subscription id>:<status>:<hash>   same on every retry of one change
    X-Tracksvc-Timestamp: <unix seconds>                 of this attempt
    X-Tracksvc-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

Keys (all under one hash tag, so the scripts are Redis Cluster safe)::

    tracksvc:{webhooks}:sub:<id>         JSON Subscription
    tracksvc:{webhooks}:subs             SET of subscription ids
    tracksvc:{webhooks}:ref:<reference>  SET of subscription ids per normalized reference
    tracksvc:{webhooks}:state:<id>       order status last notified (or the baseline)
    tracksvc:{webhooks}:sweep            ZSET subscription id -> next re-evaluation (epoch s)
    tracksvc:{webhooks}:outbox           HASH delivery id -> JSON Delivery (body sent verbatim)
    tracksvc:{webhooks}:due              ZSET delivery id -> next attempt (epoch s; leased while sent)
    tracksvc:{webhooks}:dead             LIST of deliveries given up (newest first, capped)
    tracksvc:{webhooks}:owner:<hash>     SET of subscription ids of one API key (by its hash, never the key)

Where a callback may point is :mod:`tracksvc.freshness.netguard`'s rule, checked when
subscribing (422 ``callback_refused``) and again on every send: the
allow-list and the private opt-in of the *sending* process apply, and the
webhook session resolves names through :class:`~tracksvc.netguard.GuardedResolver`,
so the connection goes only to checked addresses. A delivery refused there
is given up at once (logged without the URL's query string). Redirects are
never followed: a 3xx is a failed attempt. One API key holds at most
``webhook_max_subscriptions_per_key`` subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis.exceptions import RedisError
from yarl import URL

from tracksvc.core.errors import (
    CallbackRefused,
    InvalidReference,
    RegistryUnavailable,
    RequestError,
    SubscriptionLimitReached,
)
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.core.redis import RedisClient
from tracksvc.core.redis_keys import webhooks_key_prefix as KEY_PREFIX
from tracksvc.core.settings import Settings
from tracksvc.core.tasks import cancel_and_wait
from tracksvc.domain import references
from tracksvc.domain.views import TrackView
from tracksvc.economy.cache import CachedAnswer
from tracksvc.freshness.netguard import (
    GuardedResolver,
    TargetPolicy,
    TargetRefused,
    check_target,
    redacted_url,
)
from tracksvc.freshness.netguard import host_allowed as host_allowed
from tracksvc.registry.store import Registry, Resolution, reference_keys
from tracksvc.service.lookup import TrackService

log = structlog.get_logger("webhooks")

SUBS = f"{KEY_PREFIX}subs"
SWEEP = f"{KEY_PREFIX}sweep"
OUTBOX = f"{KEY_PREFIX}outbox"
DUE = f"{KEY_PREFIX}due"
DEAD = f"{KEY_PREFIX}dead"

#: Deliveries kept in the dead list for inspection.
DEAD_KEEP = 1000

SIGNATURE_HEADER = "X-Tracksvc-Signature"
TIMESTAMP_HEADER = "X-Tracksvc-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"

#: Evaluations waiting for the workers; beyond this, news is dropped (the sweep catches up).
QUEUE_LIMIT = 10_000

#: Workers evaluating subscriptions after carrier answers.
WORKERS = 4

#: Deliveries claimed per sender pass, and sent at once.
SEND_BATCH = 50
SEND_CONCURRENCY = 16

#: Callback URLs are at most this long.
MAX_URL_LENGTH = 2048

#: Connections the webhook sender keeps open (across all receivers).
WEBHOOK_CONNECTIONS = 100


def sub_key(sub_id: str) -> str:
    """Key of one subscription."""
    return f"{KEY_PREFIX}sub:{sub_id}"


def ref_index_key(reference: str) -> str:
    """Key of the subscriptions of one normalized reference."""
    return f"{KEY_PREFIX}ref:{reference}"


def state_key(sub_id: str) -> str:
    """Key of the status last notified to one subscription."""
    return f"{KEY_PREFIX}state:{sub_id}"


def owner_key(owner: str) -> str:
    """Key of the subscriptions one API key holds (``owner`` is the key's hash)."""
    return f"{KEY_PREFIX}owner:{owner}"


def owner_of(api_key: str) -> str:
    """What a subscription records of the API key that made it: a hash, never the key."""
    return hashlib.sha256(f"tracksvc-webhook-owner:{api_key}".encode()).hexdigest()[:32]


# -- pure helpers -------------------------------------------------------------


def validate_callback_url(value: str) -> str:
    """
    A callback URL: absolute ``http`` or ``https`` with a host.

    Raises:
        ValueError: anything else, said plainly.
    """
    value = value.strip()
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        url = URL(value)
    except ValueError as exc:
        raise ValueError(f"is not a URL: {exc}") from exc
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not url.host:
        raise ValueError("must name a host")
    if url.user or url.password:
        raise ValueError("must not carry credentials; the signature authenticates tracksvc")
    return value


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether a received POST was signed with ``secret`` (what a receiver runs)."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    return hmac.compare_digest(sign(secret, stamp, body), signature)


def derive_secret(master: str, sub_id: str) -> str:
    """A subscription's signing secret derived from the configured master secret."""
    digest = hmac.new(master.encode(), f"tracksvc-webhook:{sub_id}".encode(), hashlib.sha256)
    return f"whsec_{digest.hexdigest()}"


def idempotency_key(sub_id: str, status: str, as_of: str | None) -> str:
    """The same key for every retry of one change: subscription, new status, answer time."""
    digest = hashlib.sha256(f"{sub_id}|{status}|{as_of or ''}".encode()).hexdigest()[:16]
    return f"{sub_id}:{status}:{digest}"


def backoff_s(attempt: int, base_s: float, cap_s: float, rand: Callable[[], float] = random.random) -> float:
    """Delay before retry ``attempt`` (1-based): doubling from ``base_s`` to ``cap_s``, jittered 50-100%."""
    delay = min(cap_s, base_s * 2.0 ** min(attempt - 1, 40))
    return delay * (0.5 + rand() / 2)


def _newest_as_of(view: TrackView) -> datetime | None:
    times = [s.as_of for s in view.shipments if s.as_of is not None]
    return max(times) if times else None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def event_payload(
    sub_id: str, view: TrackView, previous: str | None, detected_at: datetime
) -> dict[str, Any]:
    """The JSON body of one status-change POST (``WebhookEvent`` in openapi.yaml)."""
    as_of = _iso(_newest_as_of(view))
    return {
        "id": idempotency_key(sub_id, view.status.value, as_of),
        "type": "order.status_changed",
        "subscription_id": sub_id,
        "reference": view.reference,
        "order_number": view.order_number,
        "status": view.status.value,
        "previous_status": previous or None,
        "summary": view.summary,
        "customer_message": view.customer_message,
        "flags": view.flags,
        "as_of": as_of,
        "detected_at": _iso(detected_at),
        "shipments": [
            {
                "shipment_id": s.shipment_id,
                "carrier": s.carrier.value,
                "tracking_number": s.tracking_number,
                "tracking_url": s.tracking_url,
                "status": s.status.value,
                "status_detail": s.status_detail,
                "as_of": _iso(s.as_of),
                "freshness": s.freshness,
            }
            for s in view.shipments
        ],
    }


def resolution_references(number: str, resolution: Resolution | None) -> set[str]:
    """Every reference leading to ``number``'s order: the number, the order, its shipments' ids, aliases."""
    refs = {number}
    if resolution is not None:
        if resolution.order_number:
            refs.add(resolution.order_number)
        if resolution.order is not None:
            refs.update(resolution.order.replaces)
        for shipment in resolution.shipments:
            refs.update((shipment.shipment_id, shipment.tracking_number, *shipment.aliases))
            if shipment.internal_shipping_number:
                refs.add(shipment.internal_shipping_number)
    return refs


def index_forms(refs: Iterable[str]) -> set[str]:
    """The normalized forms (as typed, and compact) references are indexed under."""
    forms: set[str] = set()
    for ref in refs:
        try:
            forms.update(reference_keys(ref))
        except InvalidReference:
            continue  # not a reference at all: nothing can be filed under it
    return forms


# -- models --------------------------------------------------------------------


class SubscriptionRequest(BaseModel):
    """Body of ``POST /v1/subscriptions``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    callback_url: str = Field(min_length=1)
    reference: str = Field(min_length=1, max_length=64)

    _url = field_validator("callback_url")(validate_callback_url)


class Subscription(BaseModel):
    """A stored subscription."""

    model_config = ConfigDict(extra="ignore")

    id: str
    reference: str
    callback_url: str
    created_at: datetime
    #: The index keys it was filed under (normalized references and carrier numbers).
    index_keys: list[str] = Field(default_factory=list)
    #: The signing secret, kept only when it is not derived from ``webhook_secret``.
    secret: str | None = None
    #: The hash of the API key that subscribed (:func:`owner_of`), for the per-key cap.
    owner: str | None = None


class Delivery(BaseModel):
    """One POST to make, until the receiver answers 2xx or it is too old."""

    id: str
    subscription_id: str
    callback_url: str
    body: str
    created_at: float
    attempts: int = 0
    last_error: str | None = None


# -- Redis ---------------------------------------------------------------------

# Record a status change once: only if the state is still what the evaluator
# read (another replica may have moved it), and only while subscribed.
_TRANSITION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if redis.call('HSETNX', KEYS[3], ARGV[3], ARGV[4]) == 1 then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3])
end
return 1
"""

# Count a new subscription against its API key's cap, atomically: 1 taken, 0 the key is full.
_RESERVE = """
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""

# Take due members of a schedule and push them forward (a lease), atomically,
# so replicas never take the same one; returns the members (or outbox bodies).
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(ids) do
  if #KEYS == 1 then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    table.insert(out, id)
  else
    local body = redis.call('HGET', KEYS[2], id)
    if body then
      redis.call('ZADD', KEYS[1], ARGV[2], id)
      table.insert(out, body)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return out
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class WebhookStore:
    """Subscriptions, their states and the outbox in Redis."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._transition = redis.register_script(_TRANSITION)
        self._claim = redis.register_script(_CLAIM)
        self._reserve = redis.register_script(_RESERVE)

    async def reserve(self, owner: str, sub_id: str, limit: int) -> bool:
        """Count ``sub_id`` against ``owner``'s cap; False when the owner already holds ``limit``."""
        return bool(await self._reserve(keys=[owner_key(owner)], args=[sub_id, limit]))

    async def release(self, owner: str, sub_id: str) -> None:
        """Give back a reservation whose subscription was not made."""
        await self.redis.srem(owner_key(owner), sub_id)

    async def create(self, sub: Subscription, baseline: str, next_sweep: float) -> None:
        """Store a subscription, its index entries, its baseline status and its first sweep."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(sub_key(sub.id), sub.model_dump_json())
            pipe.sadd(SUBS, sub.id)
            for key in sub.index_keys:
                pipe.sadd(ref_index_key(key), sub.id)
            if baseline:
                pipe.set(state_key(sub.id), baseline)
            pipe.zadd(SWEEP, {sub.id: next_sweep})
            await pipe.execute()

    async def get(self, sub_id: str) -> Subscription | None:
        """One subscription, or None."""
        raw = await self.redis.get(sub_key(sub_id))
        if raw is None:
            return None
        try:
            return Subscription.model_validate_json(raw)
        except ValidationError:
            log.warning("webhook_subscription_unreadable", subscription_id=sub_id)
            return None

    async def delete(self, sub_id: str) -> bool:
        """Remove a subscription; False when there was none. Its pending deliveries are dropped when due."""
        sub = await self.get(sub_id)
        if sub is None:
            # Missing, or unreadable: then removing the record is all there is to do.
            return bool(await self.redis.delete(sub_key(sub_id)))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(sub_key(sub_id))
            pipe.srem(SUBS, sub_id)
            pipe.zrem(SWEEP, sub_id)
            pipe.delete(state_key(sub_id))
            for key in sub.index_keys:
                pipe.srem(ref_index_key(key), sub_id)
            if sub.owner:
                pipe.srem(owner_key(sub.owner), sub_id)
            await pipe.execute()
        return True

    async def count(self) -> int:
        """How many subscriptions exist."""
        return int(await self.redis.scard(SUBS))

    async def ids_for(self, index_keys: Iterable[str]) -> list[str]:
        """Subscriptions filed under any of these references (one SUNION: one slot)."""
        keys = [ref_index_key(k) for k in sorted(set(index_keys))]
        if not keys:
            return []
        return sorted(_text(m) for m in await self.redis.sunion(keys))

    async def state(self, sub_id: str) -> str:
        """The status last notified ('' when none)."""
        raw = await self.redis.get(state_key(sub_id))
        return "" if raw is None else _text(raw)

    async def transition(self, sub_id: str, expected: str, status: str, delivery: Delivery) -> int:
        """Move the state and enqueue the delivery: 1 done, 0 the state moved meanwhile, -1 unsubscribed."""
        result = await self._transition(
            keys=[sub_key(sub_id), state_key(sub_id), OUTBOX, DUE],
            args=[expected, status, delivery.id, delivery.model_dump_json(), delivery.created_at],
        )
        return int(result)

    async def claim_due(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        """Deliveries due by ``now``, leased until ``lease_until``."""
        raws = await self._claim(keys=[DUE, OUTBOX], args=[now, lease_until, limit])
        deliveries = []
        for raw in raws:
            try:
                deliveries.append(Delivery.model_validate_json(raw))
            except ValidationError:
                log.warning("webhook_delivery_unreadable")
        return deliveries

    async def complete(self, delivery_id: str) -> None:
        """Forget a delivered (or moot) delivery."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(OUTBOX, delivery_id)
            pipe.zrem(DUE, delivery_id)
            await pipe.execute()

    async def retry(self, delivery: Delivery, at: float) -> None:
        """Keep a failed delivery for another attempt at ``at``."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(OUTBOX, delivery.id, delivery.model_dump_json())
            pipe.zadd(DUE, {delivery.id: at})
            await pipe.execute()

    async def bury(self, delivery: Delivery) -> None:
        """Give a delivery up: out of the outbox, onto the (capped) dead list."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(OUTBOX, delivery.id)
            pipe.zrem(DUE, delivery.id)
            pipe.lpush(DEAD, delivery.model_dump_json())
            pipe.ltrim(DEAD, 0, DEAD_KEEP - 1)
            await pipe.execute()

    async def pending(self) -> int:
        """Deliveries not yet acknowledged."""
        return int(await self.redis.hlen(OUTBOX))

    async def claim_sweep(self, now: float, next_at: float, limit: int) -> list[str]:
        """Subscriptions due for a re-evaluation, pushed to ``next_at``."""
        return [_text(i) for i in await self._claim(keys=[SWEEP], args=[now, next_at, limit])]


# -- noticing changes ------------------------------------------------------------


class Notifier:
    """Creates subscriptions and turns status changes into outbox deliveries."""

    def __init__(
        self,
        store: WebhookStore,
        service: TrackService,
        registry: Registry | None,
        settings: Settings,
        *,
        on_enqueued: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.service = service
        self.registry = registry
        self.master_secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self.policy = TargetPolicy.from_settings(settings)
        self.max_per_key = settings.webhook_max_subscriptions_per_key
        self.resolve_timeout_s = settings.webhook_timeout_s
        self.sweep_every_s = settings.refresher_period_s
        self.sweep_batch = settings.refresher_batch_size
        self.on_enqueued = on_enqueued
        self.clock = clock
        self._queue: asyncio.Queue[tuple[Carrier, str]] = asyncio.Queue(QUEUE_LIMIT)
        self._workers: list[asyncio.Task[None]] = []

    # -- subscriptions

    def secret_for(self, sub: Subscription) -> str:
        """The signing secret of a subscription."""
        if sub.secret is not None:
            return sub.secret
        if self.master_secret is None:
            raise RuntimeError("subscription has no secret and TRACKSVC_WEBHOOK_SECRET is not set")
        return derive_secret(self.master_secret, sub.id)

    async def subscribe(
        self, request: SubscriptionRequest, *, owner: str | None = None
    ) -> tuple[Subscription, str, TrackView]:
        """
        Register a webhook for a reference; its current status is the baseline.

        Checks run cheapest first: the reference's text, the allow-list and a
        literal address (no DNS), the owner's cap, then the name's resolution.

        Args:
            request: the validated body.
            owner: the hash of the subscribing API key (:func:`owner_of`); None: no cap.

        Returns:
            The subscription, its signing secret, and the reference's current view.

        Raises:
            InvalidReference, ReferenceNotFound: the reference leads nowhere.
            CallbackRefused: the callback is off the allow-list, or its host is (or
                resolves to) an address webhooks may not reach, or does not resolve.
            SubscriptionLimitReached: the owner already holds as many as allowed.
        """
        references.normalize(request.reference)  # a reference that cannot be one: 400 before anything
        try:
            self.policy.check_url(request.callback_url)
        except TargetRefused as exc:
            raise _refused(exc) from exc
        sub_id = f"sub_{secrets.token_hex(12)}"
        if owner is not None and not await self.store.reserve(owner, sub_id, self.max_per_key):
            raise SubscriptionLimitReached(
                f"this API key already holds {self.max_per_key} webhook subscriptions "
                "(TRACKSVC_WEBHOOK_MAX_SUBSCRIPTIONS_PER_KEY); delete one first"
            )
        try:
            try:
                await check_target(request.callback_url, self.policy, timeout_s=self.resolve_timeout_s)
            except TargetRefused as exc:
                raise _refused(exc) from exc
            view = await self.service.track(request.reference)
            keys = index_forms([view.reference, *(s.tracking_number for s in view.shipments)])
            sub = Subscription(
                id=sub_id,
                reference=view.reference,
                callback_url=request.callback_url,
                created_at=self.clock(),
                index_keys=sorted(keys),
                secret=None if self.master_secret else f"whsec_{secrets.token_urlsafe(32)}",
                owner=owner,
            )
            baseline = "" if view.status is TrackingStatus.unknown else view.status.value
            await self.store.create(sub, baseline, next_sweep=time.time() + self.sweep_every_s)
        except BaseException:
            if owner is not None:
                with contextlib.suppress(RedisError, OSError):
                    await asyncio.shield(self.store.release(owner, sub_id))
            raise
        log.info("webhook_subscribed", subscription_id=sub_id, status=baseline or None)
        return sub, self.secret_for(sub), view

    async def unsubscribe(self, sub_id: str) -> bool:
        """Remove a subscription; False when unknown."""
        removed = await self.store.delete(sub_id)
        if removed:
            log.info("webhook_unsubscribed", subscription_id=sub_id)
        return removed

    # -- evaluation

    async def evaluate(self, sub_id: str) -> bool:
        """
        Re-evaluate one subscription; enqueue a delivery when its status changed.

        Returns:
            Whether a change was recorded.
        """
        for _ in range(3):
            sub = await self.store.get(sub_id)
            if sub is None:
                return False
            previous = await self.store.state(sub_id)
            try:
                view = await self.service.track(sub.reference)
            except RequestError as exc:
                log.info("webhook_reference_unresolved", subscription_id=sub_id, error=exc.message)
                return False
            if view.status is TrackingStatus.unknown or view.status.value == previous:
                return False
            detected = self.clock()
            payload = event_payload(sub_id, view, previous, detected)
            delivery = Delivery(
                id=payload["id"],
                subscription_id=sub_id,
                callback_url=sub.callback_url,
                body=orjson.dumps(payload).decode(),
                created_at=time.time(),
            )
            outcome = await self.store.transition(sub_id, previous, view.status.value, delivery)
            if outcome == 1:
                log.info(
                    "webhook_change_recorded",
                    subscription_id=sub_id,
                    status=view.status.value,
                    previous_status=previous or None,
                    delivery_id=delivery.id,
                )
                self.on_enqueued()
                return True
            if outcome == -1:
                return False
            # Another evaluator moved the state since we read it: look again.
        return False

    async def check_number(self, carrier: Carrier, number: str) -> int:
        """Re-evaluate the subscriptions whose reference leads to ``number``; returns how many changed."""
        if await self.store.count() == 0:
            return 0
        resolution: Resolution | None = None
        if self.registry is not None:
            try:
                resolution = await self.registry.resolve(number)
            except (RegistryUnavailable, InvalidReference):
                resolution = None
        ids = await self.store.ids_for(index_forms(resolution_references(number, resolution)))
        changed = 0
        for sub_id in ids:
            changed += await self.evaluate(sub_id)
        return changed

    async def sweep(self) -> int:
        """Re-evaluate the subscriptions due for a look (run by the refresher each cycle)."""
        now = time.time()
        try:
            ids = await self.store.claim_sweep(now, now + self.sweep_every_s, self.sweep_batch)
        except (RedisError, OSError) as exc:
            log.warning("webhook_sweep_failed", error=str(exc))
            return 0
        changed = 0
        for sub_id in ids:
            try:
                changed += await self.evaluate(sub_id)
            except (RedisError, OSError, RegistryUnavailable) as exc:
                log.warning("webhook_evaluation_failed", subscription_id=sub_id, error=str(exc))
        return changed

    # -- the tracker's listener and its workers

    async def on_answer(
        self, carrier: Carrier, number: str, previous: CachedAnswer | None, current: CachedAnswer
    ) -> None:
        """Tracker listener: queue a look at this number when its carrier status moved."""
        if previous is not None and _carrier_status(previous) == _carrier_status(current):
            return  # nothing new from the carrier; the clock's changes are the sweep's
        try:
            self._queue.put_nowait((carrier, number))
        except asyncio.QueueFull:
            log.warning("webhook_queue_full", dropped=number)

    def start(self) -> None:
        """Start the workers that evaluate after carrier answers."""
        if not self._workers:
            self._workers = [asyncio.create_task(self._work()) for _ in range(WORKERS)]

    async def stop(self) -> None:
        """Stop the workers (queued news is dropped; the sweep catches up)."""
        for task in self._workers:
            await cancel_and_wait(task)
        self._workers = []

    async def idle(self) -> None:
        """Wait until every queued number has been evaluated."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            carrier, number = await self._queue.get()
            try:
                await self.check_number(carrier, number)
            except (RedisError, OSError, RegistryUnavailable) as exc:
                log.warning("webhook_evaluation_failed", error=str(exc))
            except Exception:  # a worker must outlive any one evaluation
                log.exception("webhook_evaluation_failed")
            finally:
                self._queue.task_done()


def _refused(exc: TargetRefused) -> CallbackRefused:
    return CallbackRefused(
        f"callback_url may not be used for webhooks: {exc.reason}",
        details=[{"field": "callback_url", "message": exc.reason}],
    )


def _carrier_status(answer: CachedAnswer) -> str:
    if answer.result is not None:
        return answer.result.status.value
    return f"message:{answer.message.outcome.value}" if answer.message is not None else ""


# -- sending ---------------------------------------------------------------------


def webhook_session(settings: Settings) -> aiohttp.ClientSession:
    """
    The webhook sender's HTTP session: explicit timeout, and names resolved through the guard.

    Every connection it opens goes to an address :class:`~tracksvc.netguard.GuardedResolver`
    checked (literal addresses are checked by the sender before the request).
    """
    connector = aiohttp.TCPConnector(
        limit=WEBHOOK_CONNECTIONS, resolver=GuardedResolver(TargetPolicy.from_settings(settings))
    )
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_s), connector=connector
    )


def _target_refusal(exc: BaseException) -> TargetRefused | None:
    """The guard's refusal behind a client error, if that is what stopped the request."""
    if isinstance(exc, TargetRefused):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, TargetRefused):
        return exc.os_error
    cause = exc.__cause__
    return cause if isinstance(cause, TargetRefused) else None


class WebhookSender:
    """Sends due deliveries, at least once, with backoff; one per process, any number of replicas."""

    def __init__(
        self,
        store: WebhookStore,
        session: aiohttp.ClientSession,
        settings: Settings,
        secret_for: Callable[[Subscription], str],
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.session = session
        self.secret_for = secret_for
        #: Checked before every request (the session's resolver checks names again on connect).
        self.policy = TargetPolicy.from_settings(settings)
        self.retry_base_s = settings.webhook_retry_base_s
        self.retry_max_s = settings.webhook_retry_max_s
        self.max_age_s = settings.webhook_max_age_s
        self.poll_s = settings.webhook_poll_s
        #: A claimed delivery is retried by anyone once this lease ends (a crash mid-send).
        self.lease_s = settings.webhook_timeout_s * 2 + 5
        self.rand = rand
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A delivery was enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Send forever (cancel the task to stop)."""
        while True:
            self._wake.clear()
            try:
                sent = await self.deliver_due()
            except (RedisError, OSError) as exc:
                log.warning("webhook_outbox_unavailable", error=str(exc))
                sent = 0
            except Exception:  # keep sending whatever one pass met
                log.exception("webhook_send_failed")
                sent = 0
            if not sent:
                await self._nap()

    async def _nap(self) -> None:
        """Wait for a wake-up or the poll interval, whichever comes first."""
        # Not asyncio.timeout: on Python 3.11 it can swallow a cancel that lands
        # as it expires, and the sender would never stop.
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait([waiter], timeout=self.poll_s)
        finally:
            waiter.cancel()

    async def deliver_due(self) -> int:
        """Claim and attempt the deliveries due now; returns how many were attempted."""
        now = time.time()
        deliveries = await self.store.claim_due(now, now + self.lease_s, SEND_BATCH)
        semaphore = asyncio.Semaphore(SEND_CONCURRENCY)

        async def attempt(delivery: Delivery) -> None:
            async with semaphore:
                await self.attempt(delivery)

        await asyncio.gather(*(attempt(d) for d in deliveries))
        return len(deliveries)

    async def attempt(self, delivery: Delivery) -> bool:
        """POST one delivery; on failure schedule the retry or give up. Returns whether it landed."""
        sub = await self.store.get(delivery.subscription_id)
        if sub is None:
            await self.store.complete(delivery.id)
            log.info("webhook_dropped", delivery_id=delivery.id, reason="unsubscribed")
            return False
        body = delivery.body.encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tracksvc-webhooks/1",
            IDEMPOTENCY_HEADER: delivery.id,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self.secret_for(sub), stamp, body),
        }
        attempt_no = delivery.attempts + 1
        try:
            self.policy.check_url(delivery.callback_url)
            # Never follow a redirect: its target was never checked. A 3xx is a failed attempt.
            async with self.session.post(
                delivery.callback_url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await response.read()
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, ValueError, TargetRefused) as exc:
            refused = _target_refusal(exc)
            if refused is not None:
                await self._refuse(delivery, attempt_no, refused)
                return False
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except asyncio.CancelledError:
            # Shutting down mid-send: hand it back at once rather than when the lease ends.
            with contextlib.suppress(RedisError, OSError):
                await asyncio.shield(self.store.retry(delivery, time.time()))
            raise
        if error is None:
            await self.store.complete(delivery.id)
            log.info("webhook_delivered", delivery_id=delivery.id, attempt=attempt_no)
            return True
        failed = delivery.model_copy(update={"attempts": attempt_no, "last_error": error[:300]})
        now = time.time()
        if now - delivery.created_at >= self.max_age_s:
            await self.store.bury(failed)
            log.warning("webhook_abandoned", delivery_id=delivery.id, attempts=attempt_no, error=error)
            return False
        delay = backoff_s(attempt_no, self.retry_base_s, self.retry_max_s, self.rand)
        await self.store.retry(failed, now + delay)
        log.info("webhook_retry_scheduled", delivery_id=delivery.id, attempt=attempt_no,
                 error=error, retry_in_s=round(delay, 3))
        return False

    async def _refuse(self, delivery: Delivery, attempt_no: int, refused: TargetRefused) -> None:
        """The target may not be reached (now): give the delivery up at once, nothing was sent."""
        error = f"target refused: {refused.reason}"
        await self.store.bury(
            delivery.model_copy(update={"attempts": attempt_no, "last_error": error[:300]})
        )
        log.warning(
            "webhook_target_refused",
            delivery_id=delivery.id,
            subscription_id=delivery.subscription_id,
            callback=redacted_url(delivery.callback_url),
            reason=refused.reason,
        )
