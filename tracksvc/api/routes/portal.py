"""
The customer portal: ``GET /v1/portal/orders/{order_number}?postal_code=``.

A customer proves the order is theirs with its destination postal code. The
answer is the customer-safe view (:class:`PortalView`): status, the
customer message, and per shipment the carrier, tracking number and link,
last event and estimated delivery; never agent advice, internal statuses,
notes, flags, origins or shipment ids.

Verification rules:

- only registered order numbers answer (an earlier order number that was
  re-placed answers with the new order); shipment ids, tracking numbers and
  aliases do not;
- the postal code is compared, in constant time, with the order's
  ``destination_postal_code`` and with those of its *outbound* shipments
  (a return's destination is our warehouse, which is no secret);
- postal codes are compared normalized (:func:`normalize_postal_code`):
  whitespace and dashes removed, upper case, a 9-digit US ZIP+4 cut to its
  5-digit ZIP; an order with no postal code on record never verifies;
- "no such order" and "wrong postal code" raise the same
  :class:`PortalNotFound` (same status, byte-identical body) after the same
  Redis work, no sooner than ``portal_failure_floor_s`` after the request
  began, and no carrier is asked before the code is verified;
- failed verifications are counted per order number and, when the real
  client is known, per client, in Redis (:class:`FailureLimiter`); past the
  limit the route answers 429 with ``Retry-After`` until the window expires.

Who the client is (:func:`client_address`): behind a portal backend every
request comes from the backend, so its address is never the client. Only
with ``portal_client_ip_header`` configured, and only from a peer in
``trusted_proxies``, is the header read: walked from the right, past
trusted proxies, the first other address is the client (what the nearest
trusted proxy saw), never an entry the client wrote further left. Without a
client, only the per-order limit applies, so failures on other orders never
lock a customer out of theirs. An IPv6 client counts by its /64.

The per-order limit is strict: a locked order answers 429 even to the right
postal code. Postal codes are few (about 42,000 US ZIPs), so letting the right
one through a full counter would let many clients guess one order without
end; the price is that someone who knows an order number can hold its
customer off for one window.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import time
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from tracksvc.api.keys import redis_key, registry_key, service_key, settings_key
from tracksvc.api.middlewares import error_response, requires
from tracksvc.api.routes.track import json_response
from tracksvc.core.errors import (
    PortalNotFound,
    PostalCodeRequired,
    RegistryUnavailable,
    TooManyAttempts,
)
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.core.redis import RedisClient
from tracksvc.core.redis_keys import failure_key_prefix
from tracksvc.domain import references
from tracksvc.domain.records import Direction
from tracksvc.domain.views import TrackView
from tracksvc.registry.store import Registry, Resolution
from tracksvc.service.lookup import TrackService, matched_field

#: Longest postal code accepted in a query (longer is a 400, not a lookup).
MAX_POSTAL_CODE_LENGTH = 32

#: What the registry fields a portal lookup may match (``matched_field`` values).
ORDER_MATCHES = frozenset({"order_number", "replaced_order"})

#: Compared against when there is nothing on record, so both paths do the same work.
_NOTHING_ON_RECORD = "\x00no-postal-code\x00"

#: IPv6 clients are counted by this prefix (one subscriber holds a whole /64).
IPV6_CLIENT_PREFIX = 64

#: Longest client text kept as a counter key (an entry that is not an address).
MAX_CLIENT_LENGTH = 64

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PortalEvent(_View):
    """The carrier's last event, in the carrier's public words."""

    occurred_at: datetime | None
    description: str
    location: str | None


class PortalShipment(_View):
    """One parcel of the order, as the customer sees it."""

    carrier: Carrier
    tracking_number: str
    tracking_url: str
    direction: str
    status: TrackingStatus
    last_event: PortalEvent | None
    estimated_delivery: date | None
    delivered_at: datetime | None


class PortalView(_View):
    """Answer of ``GET /v1/portal/orders/{order_number}``: the customer-safe view."""

    order_number: str
    status: TrackingStatus
    customer_message: str
    shipments: list[PortalShipment] = Field(default_factory=list)


def portal_view(view: TrackView) -> PortalView:
    """Project the agent view onto what a customer may see (an allow-list, field by field)."""
    shipments = [
        PortalShipment(
            carrier=s.carrier,
            tracking_number=s.tracking_number,
            tracking_url=s.tracking_url,
            direction=s.direction,
            status=s.status,
            last_event=(
                PortalEvent(
                    occurred_at=s.last_event.occurred_at,
                    description=s.last_event.description,
                    location=s.last_event.location,
                )
                if s.last_event is not None
                else None
            ),
            estimated_delivery=s.estimated_delivery,
            delivered_at=s.delivered_at,
        )
        for s in view.shipments
    ]
    return PortalView(
        order_number=view.order_number or view.reference,
        status=view.status,
        customer_message=view.customer_message,
        shipments=shipments,
    )


def normalize_postal_code(raw: str) -> str:
    """
    A postal code in the one form codes are compared in.

    Whitespace and dashes are removed and letters upper-cased (``"k1a 0b1"``
    is ``"K1A0B1"``); a US ZIP+4 (9 digits once the dash is gone) becomes
    its 5-digit ZIP, so ``"11201-1234"`` matches ``"11201"`` either way round.
    """
    text = "".join(raw.split()).replace("-", "").upper()
    if len(text) == 9 and text.isascii() and text.isdigit():
        return text[:5]
    return text


def postal_codes_on_record(resolution: Resolution) -> list[str]:
    """The normalized codes a customer may prove the order with: the order's and outbound shipments'."""
    found: list[str] = []
    if resolution.order is not None and resolution.order.destination_postal_code:
        found.append(resolution.order.destination_postal_code)
    for shipment in resolution.shipments:
        if shipment.direction is Direction.outbound and shipment.destination_postal_code:
            found.append(shipment.destination_postal_code)
    codes = [normalize_postal_code(c) for c in found]
    return [c for c in dict.fromkeys(codes) if c]


def postal_code_matches(given: str, on_record: Sequence[str]) -> bool:
    """Whether ``given`` (normalized) equals any code on record; every code is compared, in constant time."""
    matched = False
    for code in on_record or (_NOTHING_ON_RECORD,):
        matched |= hmac.compare_digest(given.encode(), code.encode())
    return matched and bool(on_record)


def _failure_key(subject: str) -> str:
    return f"{failure_key_prefix}{{{subject}}}"


class FailureLimiter:
    """
    Counts failed verifications per subject (a client, an order number) in Redis.

    Each counter is one key with an expiry set at its first failure (a fixed
    window); each MULTI touches a single key, so this works on a cluster.
    """

    def __init__(self, redis: RedisClient, *, max_failures: int, window_s: int) -> None:
        self.redis = redis
        self.max_failures = max_failures
        self.window_s = window_s

    async def retry_after_s(self, subjects: Iterable[str]) -> int | None:
        """Seconds to wait when any subject is at its limit, else None."""
        keys = [_failure_key(s) for s in subjects]
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                    pipe.ttl(key)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        waits = [
            max(1, int(ttl)) if int(ttl) > 0 else self.window_s
            for count, ttl in zip(replies[0::2], replies[1::2], strict=True)
            if count is not None and int(count) >= self.max_failures
        ]
        return max(waits) if waits else None

    async def record(self, subjects: Iterable[str]) -> None:
        """Count one failure against every subject."""
        try:
            for subject in subjects:
                key = _failure_key(subject)
                # SET NX EX starts the window at the first failure; INCR keeps the TTL.
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.set(key, 0, ex=self.window_s, nx=True)
                    pipe.incr(key)
                    await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc


async def resolve_for_portal(registry: Registry, reference: str) -> Resolution | None:
    """
    The order a portal order number names, or None; the same Redis work either way.

    A miss reads the (absent) order, its shipment set and a shipment too, as
    a hit does, so the two cannot be told apart by their time.
    """
    resolution = await registry.resolve(reference)
    if resolution is None:
        # What a hit costs: the order, its shipment set, one read of its shipments.
        await registry.get_order(reference)
        await registry.order_shipments(reference)
        await registry.get_shipments([reference])
        return None
    if (resolution.matched or matched_field(reference, resolution)) not in ORDER_MATCHES:
        return None
    return resolution


async def portal_lookup(
    service: TrackService,
    registry: Registry,
    limiter: FailureLimiter,
    *,
    order_number: str,
    postal_code: str | None,
    client: str | None,
    failure_floor_s: float = 0.0,
) -> PortalView:
    """
    The customer view of an order, once its postal code is verified.

    Raises:
        PostalCodeRequired: no postal code, or an absurd one.
        InvalidReference: the order number cannot be a reference at all.
        TooManyAttempts: this client (when known: ``client`` is not None) or this
            order number failed too often.
        PortalNotFound: no such order, or the postal code does not match (raised no
            sooner than ``failure_floor_s`` after the call began).
    """
    if postal_code is None or not postal_code.strip():
        raise PostalCodeRequired("send the order's delivery postal code as ?postal_code=")
    if len(postal_code) > MAX_POSTAL_CODE_LENGTH:
        raise PostalCodeRequired(f"postal_code must be at most {MAX_POSTAL_CODE_LENGTH} characters")
    started = time.monotonic()
    reference = references.normalize(order_number)
    # One counter per order however it is spelled (W-2001001 and w2001001 alike).
    subjects = [f"order:{references.compact(reference)}"]
    if client is not None:
        subjects.append(f"client:{client}")
    wait_s = await limiter.retry_after_s(subjects)
    if wait_s is not None:
        raise TooManyAttempts(wait_s)
    resolution = await resolve_for_portal(registry, reference)
    on_record = postal_codes_on_record(resolution) if resolution is not None else []
    verified = postal_code_matches(normalize_postal_code(postal_code), on_record)
    if resolution is None or not verified:
        await limiter.record(subjects)
        # Both failures answer no sooner than the floor, so leftover differences in work
        # (record parsing, Redis round trips under load) do not show in the time.
        await asyncio.sleep(max(0.0, failure_floor_s - (time.monotonic() - started)))
        raise PortalNotFound()
    return portal_view(await service.resolved_view(reference, resolution))


@functools.lru_cache(maxsize=16)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """The ``trusted_proxies`` setting as networks (validated by the settings)."""
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _address(text: str) -> IPAddress | None:
    """An address as forwarded-for entries write it (``[v6]:port``, ``v4:port`` too); None otherwise."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_trusted(ip: IPAddress | None, trusted: Sequence[IPNetwork]) -> bool:
    return ip is not None and any(ip.version == n.version and ip in n for n in trusted)


def _client_key(ip: IPAddress | None, text: str) -> str:
    """The counter subject of a client: its address, an IPv6 one by its /64."""
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    if ip is not None:
        return str(ip)
    return text.strip()[:MAX_CLIENT_LENGTH].lower()


def forwarded_client(entries: Sequence[str], trusted: Sequence[IPNetwork]) -> str | None:
    """
    The client in a forwarded-for chain: right to left, the first entry not a trusted proxy.

    Entries to its left were written by the client and are never used. None
    when every entry is a trusted proxy (or there are none).
    """
    for entry in reversed(entries):
        if not entry.strip():
            continue
        ip = _address(entry)
        if not _is_trusted(ip, trusted):
            return _client_key(ip, entry)
    return None


def client_address(request: web.Request, header: str, trusted: Sequence[IPNetwork] = ()) -> str | None:
    """
    The real client for the per-client limit, or None when it cannot be known.

    Args:
        request: the portal request.
        header: ``portal_client_ip_header`` (empty: none configured, so no client: the peer
            is the portal backend, and keying on it would lock every customer out at once).
        trusted: ``trusted_proxies``; the header is read only when the peer is one.

    Returns:
        The client's counter subject; the peer itself when it is not a trusted proxy;
        None without a header setting, or from a trusted peer that sent no client.
    """
    if not header:
        return None
    peer = _address(request.remote or "")
    if not _is_trusted(peer, trusted):
        return _client_key(peer, request.remote or "unknown")
    entries = [e for value in request.headers.getall(header, []) for e in value.split(",")]
    return forwarded_client(entries, trusted)


@requires("portal")
async def portal_order(request: web.Request) -> web.Response:
    """``GET /v1/portal/orders/{order_number}?postal_code=``: the customer-safe view."""
    settings = request.app[settings_key]
    limiter = FailureLimiter(
        request.app[redis_key],
        max_failures=settings.portal_max_failures,
        window_s=settings.portal_failure_window_s,
    )
    try:
        view = await portal_lookup(
            request.app[service_key],
            request.app[registry_key],
            limiter,
            order_number=request.match_info["order_number"],
            postal_code=request.query.get("postal_code"),
            client=client_address(
                request,
                settings.portal_client_ip_header,
                trusted_networks(tuple(settings.trusted_proxies)),
            ),
            failure_floor_s=settings.portal_failure_floor_s,
        )
    except TooManyAttempts as exc:
        response = error_response(exc.http_status, exc.code, exc.message)
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    response = json_response(view)
    response.headers["Cache-Control"] = "no-store"
    return response


def add_portal_routes(app: web.Application) -> None:
    """Register the customer portal route."""
    # any one path segment, as the registry routes take it: an order number with braces is found too
    app.router.add_get("/v1/portal/orders/{order_number:[^/]+}", portal_order)
