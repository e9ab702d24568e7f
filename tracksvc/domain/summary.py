"""
One-line summaries of an order's shipments, in words an agent can read out.

Pure; the phrase per status is a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tracksvc.core.models import TrackingStatus
from tracksvc.domain import failures
from tracksvc.domain.advice import CARRIER_NAMES, humanize_age
from tracksvc.domain.views import ShipmentView

PHRASES: Mapping[TrackingStatus, str] = {
    TrackingStatus.not_tendered: "label printed {age}, never scanned by {carrier}",
    TrackingStatus.label_created: "label printed {age}, waiting for {carrier} to pick it up",
    TrackingStatus.in_transit: "in transit with {carrier}",
    TrackingStatus.stalled: "with {carrier}, no scan since {since}",
    TrackingStatus.out_for_delivery: "out for delivery with {carrier}",
    TrackingStatus.delivery_attempted: "{carrier} delivery attempted",
    TrackingStatus.available_for_pickup: "ready for pickup at {carrier}",
    TrackingStatus.delivered: "delivered {when}",
    TrackingStatus.exception: "{carrier} reports a problem: {detail}",
    TrackingStatus.returned_to_sender: "being returned to sender by {carrier}",
    TrackingStatus.cancelled: "label voided",
    TrackingStatus.not_found: "{carrier} has no record of {tracking_number}",
    TrackingStatus.unknown: "status unknown: {problem}",
    TrackingStatus.awaiting_shipment: "no label yet",
}


def phrase(shipment: ShipmentView, now: datetime) -> str:
    """What one shipment's status means, in words."""
    last = shipment.last_event
    facts = {
        "carrier": CARRIER_NAMES[shipment.carrier],
        "age": humanize_age(shipment.label_created_at or shipment.status_since, now),
        "since": humanize_age(shipment.status_since, now),
        "when": humanize_age(shipment.delivered_at, now),
        "detail": (shipment.status_detail or (last.description if last else "") or "see events"),
        "tracking_number": shipment.tracking_number,
        "problem": (
            failures.happened(shipment.carrier_problem)
            if shipment.carrier_problem is not None
            else f"no answer from {CARRIER_NAMES[shipment.carrier]}"
        ),
    }
    return PHRASES[shipment.status].format(**facts)


def summarize(shipments: Sequence[ShipmentView], now: datetime) -> str:
    """
    The order in one line, e.g. "2 of 3 packages delivered; 1 label printed 6 days ago,
    never scanned by UPS".
    """
    if not shipments:
        return "No shipments yet: the order has no label."
    total = len(shipments)
    if total == 1:
        return f"1 package: {phrase(shipments[0], now)}."
    delivered = [s for s in shipments if s.status is TrackingStatus.delivered]
    others = [s for s in shipments if s.status is not TrackingStatus.delivered]
    parts = []
    if delivered:
        parts.append(f"{len(delivered)} of {total} packages delivered")
    parts.extend(f"1 {phrase(s, now)}" if delivered else phrase(s, now) for s in others)
    if not delivered:
        parts.insert(0, f"{total} packages")
        return f"{parts[0]}: " + "; ".join(parts[1:]) + "."
    return "; ".join(parts) + "."
