"""
The lookup flow of design.md section 1: normalize, resolve, ask the carriers
(through :class:`~tracksvc.tracker.Tracker`), classify, aggregate, and build
the agent view. No aiohttp.web here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from tracksvc import references
from tracksvc.advice import CARRIER_NAMES, advice_for, humanize_age
from tracksvc.errors import ReferenceNotFound
from tracksvc.models import TrackingEvent, TrackingStatus
from tracksvc.settings import Settings
from tracksvc.status import Limits, aggregate, classify
from tracksvc.summary import summarize
from tracksvc.tracker import Freshness, Lookup, Tracker
from tracksvc.views import EventView, ShipmentView, TrackView, location_text

#: Statuses whose shipment counts as needing the warehouse's attention in advice texts.
_STALE_FLAG = "stale"


def event_view(event: TrackingEvent) -> EventView:
    """A carrier event as shown to people."""
    return EventView(
        occurred_at=event.occurred_at,
        status=event.status,
        code=event.code,
        description=event.description,
        location=location_text(event.location),
    )


def _reason(lookup: Lookup) -> str | None:
    message = lookup.message
    if message is None:
        return None
    if lookup.freshness is Freshness.stale:
        return f"showing the answer from {lookup.as_of:%Y-%m-%d %H:%M} UTC: {message.message}"
    return message.message or message.outcome.value


def shipment_view(
    lookup: Lookup,
    *,
    now: datetime,
    limits: Limits,
    shipment_id: str | None = None,
    label_created_at: datetime | None = None,
    direction: str = "outbound",
) -> ShipmentView:
    """
    One shipment as the agent sees it, classified with the clock.

    Args:
        lookup: what the carrier (or cache) said.
        now: the current time.
        limits: grace and stall limits.
        shipment_id: the registry's id, when registered.
        label_created_at: the registry's label time, when registered.
        direction: outbound or return.
    """
    flags: list[str] = []
    if lookup.freshness is Freshness.stale:
        flags.append(_STALE_FLAG)
    base = dict(
        shipment_id=shipment_id,
        carrier=lookup.carrier,
        tracking_number=lookup.number,
        tracking_url=references.tracking_url(lookup.carrier, lookup.number),
        direction=direction,
        as_of=lookup.as_of,
        freshness=lookup.freshness.value,
        reason=_reason(lookup),
    )
    result = lookup.result
    if result is None:
        status = TrackingStatus.not_found if lookup.carrier_denies_it else TrackingStatus.unknown
        message = lookup.message
        return ShipmentView(
            **base,
            status=status,
            status_detail=message.message if message else None,
            carrier_status_code=message.code if message and message.code else None,
            label_created_at=label_created_at,
            flags=flags,
        )
    classified = classify(result, now=now, limits=limits, label_created_at=label_created_at)
    if classified.status in (TrackingStatus.not_tendered, TrackingStatus.stalled):
        flags.append(classified.status.value)
    events = [event_view(e) for e in result.events]
    return ShipmentView(
        **base,
        status=classified.status,
        status_detail=result.status_detail,
        carrier_status_code=result.carrier_status_code,
        label_created_at=label_created_at or result.label_created_at,
        status_since=classified.since,
        last_event=events[0] if events else None,
        events=events,
        estimated_delivery=result.estimated_delivery,
        delivered_at=result.delivered_at,
        flags=flags,
    )


def order_flags(shipments: list[ShipmentView]) -> list[str]:
    """The union of the shipments' flags, in first-seen order."""
    seen: dict[str, None] = {}
    for shipment in shipments:
        for flag in shipment.flags:
            seen.setdefault(flag, None)
    return list(seen)


def advice_facts(
    shipments: list[ShipmentView], status: TrackingStatus, now: datetime, settings: Settings
) -> dict[str, object]:
    """The facts the advice templates are filled with, from the shipment that decided."""
    decisive = next((s for s in shipments if s.status is status), shipments[0] if shipments else None)
    facts: dict[str, object] = {"grace_hours": settings.tender_grace_hours}
    if decisive is None:
        return facts
    last = decisive.last_event
    facts.update(
        carrier=CARRIER_NAMES[decisive.carrier],
        tracking_number=decisive.tracking_number,
        age=humanize_age(decisive.label_created_at, now),
        last_scan=humanize_age(decisive.status_since or (last.occurred_at if last else None), now),
        when=humanize_age(decisive.delivered_at, now),
        detail=decisive.status_detail or (last.description if last else "no details"),
        reason=decisive.reason or "no answer",
        origin="(unknown warehouse)",
    )
    return facts


class TrackService:
    """Answers ``GET /v1/track/{reference}``."""

    def __init__(
        self,
        tracker: Tracker,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tracker = tracker
        self.settings = settings
        self.limits = Limits(
            tender_grace_hours=settings.tender_grace_hours,
            stalled_after_hours=settings.stalled_after_hours,
        )
        self.clock = clock

    async def track(self, raw_reference: str) -> TrackView:
        """
        The agent view of any reference.

        Raises:
            InvalidReference: the input cannot be a reference.
            ReferenceNotFound: not registered and no carrier's format.
        """
        reference = references.normalize(raw_reference)
        candidates = references.candidates(reference)
        if not candidates:
            raise ReferenceNotFound(
                f"{reference!r} is not a registered order or shipment, and not a valid "
                "UPS, FedEx or USPS tracking number (format and check digit)."
            )
        lookup = await self.tracker.lookup_candidates(candidates)
        now = self.clock()
        shipments = [shipment_view(lookup, now=now, limits=self.limits)]
        return self.order_view(reference, None, shipments, now)

    def order_view(
        self,
        reference: str,
        order_number: str | None,
        shipments: list[ShipmentView],
        now: datetime,
        extra_flags: list[str] | None = None,
    ) -> TrackView:
        """Aggregate shipments into the order's status, summary and advice."""
        status = aggregate([s.status for s in shipments])
        flags = [*order_flags(shipments), *(extra_flags or [])]
        advice = advice_for(status, flags, advice_facts(shipments, status, now, self.settings))
        return TrackView(
            reference=reference,
            order_number=order_number,
            status=status,
            summary=summarize(shipments, now),
            flags=flags,
            agent_advice=advice.agent,
            customer_message=advice.customer,
            shipments=shipments,
        )

