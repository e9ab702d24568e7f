"""
Carrier push events (UPS Track Alert): merge one event into what tracksvc
knows, store it and tell the listeners, without asking the carrier.

:func:`merge_event` is pure; :func:`apply_event` does the Redis side
through the tracker (cache and listeners) and the service (a scan takes a
label off the unscanned list). No aiohttp.web here.

A push never outranks the carrier's own answer. Its event is refused when
dated more than :data:`MAX_FUTURE_S` ahead (:func:`future_event_problem`),
and the merged answer is stored marked ``pushed``: fresh for the active TTL
at most, counted from the first push since the carrier was last asked
(later pushes do not extend it). The next lookup past that asks the carrier,
and the carrier's answer replaces the pushed one, whatever the event dates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import structlog

from tracksvc.core.errors import RegistryUnavailable
from tracksvc.core.models import Carrier, TrackingEvent, TrackingResult, TrackingStatus
from tracksvc.economy.cache import CachedAnswer
from tracksvc.economy.tracker import Lookup, Tracker
from tracksvc.service.lookup import TrackService

log = structlog.get_logger("carrier_events")

_OLDEST = datetime.min.replace(tzinfo=UTC)

#: A pushed event may be dated at most this far ahead of our clock (clock skew), in seconds.
MAX_FUTURE_S = 15 * 60


def future_event_problem(event: TrackingEvent, now: datetime) -> str | None:
    """Why a pushed event cannot be taken because of its date, or None (no time counts as none)."""
    if event.occurred_at is None:
        return None
    limit = now + timedelta(seconds=MAX_FUTURE_S)
    if event.occurred_at > limit:
        return (
            f"the event is dated {event.occurred_at:%Y-%m-%dT%H:%M:%SZ}, more than "
            f"{MAX_FUTURE_S // 60} minutes after now ({now.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ})"
        )
    return None


def _same_event(a: TrackingEvent, b: TrackingEvent) -> bool:
    return (a.occurred_at, a.code, a.description) == (b.occurred_at, b.code, b.description)


def _is_latest(event: TrackingEvent, newest: TrackingEvent | None) -> bool:
    """Whether the pushed event is at least as new as the newest known one (unknown times count as new)."""
    if newest is None or event.occurred_at is None or newest.occurred_at is None:
        return True
    return event.occurred_at >= newest.occurred_at


def merge_event(
    cached: CachedAnswer | None,
    carrier: Carrier,
    number: str,
    event: TrackingEvent,
    *,
    received_at: float,
    scheduled_delivery: date | None = None,
) -> CachedAnswer:
    """
    The cached answer after one pushed event.

    The event joins the known events (newest first, duplicates once). When
    it is the newest, the status, code and words come from it (an event the
    tables could not map never overrides a known status); an older event
    arriving late only adds to the history. Without a cached result, the
    result is built from the event alone.

    The answer is marked ``pushed`` and keeps the time its freshness counts
    from: a cached pushed answer's, else ``received_at``; so pushes arriving
    one after another never keep it fresh without the carrier being asked.

    Args:
        cached: what the cache holds for the number (None: nothing).
        carrier: the pushing carrier.
        number: the tracking number the event is about.
        event: the parsed event.
        received_at: epoch seconds the event arrived.
        scheduled_delivery: the carrier's scheduled delivery date, when it sent one.
    """
    base = cached.result if cached is not None else None
    known = list(base.events) if base is not None else []
    newest = known[0] if known else None
    latest = _is_latest(event, newest)
    if not any(_same_event(event, e) for e in known):
        known.append(event)
    # A stable sort keeps the carrier's order among events at the same time.
    events = sorted(known, key=lambda e: e.occurred_at or _OLDEST, reverse=True)
    take_event = base is None or (latest and event.status is not TrackingStatus.unknown)
    status = event.status if take_event or base is None else base.status
    delivered_at = base.delivered_at if base is not None else None
    if status is TrackingStatus.delivered and take_event:
        delivered_at = event.occurred_at or delivered_at
    estimated = base.estimated_delivery if base is not None else None
    if take_event and scheduled_delivery is not None and status is not TrackingStatus.delivered:
        estimated = scheduled_delivery
    label_created_at = base.label_created_at if base is not None else None
    if label_created_at is None and event.status is TrackingStatus.label_created:
        label_created_at = event.occurred_at
    result = TrackingResult(
        carrier=carrier,
        tracking_number=number,
        status=status,
        carrier_status_code=event.code if take_event else (base.carrier_status_code if base else None),
        status_detail=(event.description or None) if take_event else (base.status_detail if base else None),
        events=events,
        label_created_at=label_created_at,
        estimated_delivery=estimated,
        delivered_at=delivered_at,
        parse_warnings=list(base.parse_warnings) if base is not None else [],
    )
    fetched_at = cached.fetched_at if cached is not None and cached.pushed else received_at
    return CachedAnswer(result=result, message=None, fetched_at=fetched_at, pushed=True)


async def apply_event(
    tracker: Tracker,
    service: TrackService,
    carrier: Carrier,
    number: str,
    event: TrackingEvent,
    *,
    received_at: float,
    scheduled_delivery: date | None = None,
) -> Lookup:
    """
    Merge a pushed event into the cache, notify the listeners, and learn a first scan.

    Returns:
        The lookup as it now stands (served from the cache: no carrier call).

    Raises:
        RegistryUnavailable: the cache (Redis) could not store the event.
    """
    cached = await tracker.cache.get(carrier, number)
    merged = merge_event(
        cached, carrier, number, event, received_at=received_at, scheduled_delivery=scheduled_delivery
    )
    if not await tracker.store(carrier, number, merged, previous=cached):
        raise RegistryUnavailable("the cache (Redis) is not reachable; the event was not stored")
    lookup = await tracker.lookup(carrier, number)
    await _learn(service, carrier, number, lookup)
    log.info(
        "carrier_event_applied",
        carrier=carrier.value,
        tracking_number=number,
        status=merged.result.status.value if merged.result is not None else None,
        event_code=event.code,
    )
    return lookup


async def _learn(service: TrackService, carrier: Carrier, number: str, lookup: Lookup) -> None:
    """A registered label this event scanned leaves the unscanned list."""
    if service.registry is None:
        return
    try:
        resolution = await service.registry.resolve(number)
    except RegistryUnavailable as exc:
        log.warning("registry_unavailable", error=str(exc))
        return
    if resolution is None:
        return
    for record in resolution.shipments:
        if record.carrier is carrier and record.tracking_number == number:
            await service.learn(record, lookup)
