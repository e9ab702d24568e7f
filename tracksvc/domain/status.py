"""
Status classification: carrier facts plus time give one shipment status.

Pure functions, no I/O. The carrier parsers say what the carrier data alone
means (``label_created``, ``in_transit``, ...); the rules here add what only
a clock can tell: a label older than the tender grace period is
``not_tendered``; a parcel in transit with no scan for too long is
``stalled``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracksvc.core.models import TrackingResult, TrackingStatus


@dataclass(frozen=True)
class Clocks:
    """The times the rules compare against, gathered once per shipment."""

    now: datetime
    label_created_at: datetime | None
    last_scan_at: datetime | None


@dataclass(frozen=True)
class AgeRule:
    """``status`` becomes ``becomes`` once ``since(clocks)`` is older than the limit."""

    since: Callable[[Clocks], datetime | None]
    limit_setting: str
    becomes: TrackingStatus


#: Time-based rules, keyed by the status the carrier data gives.
AGE_RULES: Mapping[TrackingStatus, AgeRule] = {
    # Label printed, carrier never scanned it: past the grace period it was never tendered.
    TrackingStatus.label_created: AgeRule(
        lambda c: c.label_created_at, "tender_grace_hours", TrackingStatus.not_tendered
    ),
    # Scanned and moving, but no new scan for too long.
    TrackingStatus.in_transit: AgeRule(
        lambda c: c.last_scan_at, "stalled_after_hours", TrackingStatus.stalled
    ),
}


@dataclass(frozen=True)
class Limits:
    """The configured limits, in hours (``TRACKSVC_TENDER_GRACE_HOURS`` ...)."""

    tender_grace_hours: float = 48.0
    stalled_after_hours: float = 72.0


@dataclass(frozen=True)
class Classified:
    """A shipment's normalized status and since when the deciding clock runs."""

    status: TrackingStatus
    since: datetime | None


def classify(
    result: TrackingResult,
    *,
    now: datetime,
    limits: Limits,
    label_created_at: datetime | None = None,
) -> Classified:
    """
    The shipment status from the carrier result and the clock.

    Args:
        result: what the carrier said.
        now: the current time (aware).
        limits: grace and stall limits.
        label_created_at: the registry's label time; it wins over the
            carrier's label event because the warehouse knows when it printed.

    Returns:
        The status, and the time its clock started (label time or last scan).
    """
    clocks = Clocks(
        now=now,
        label_created_at=label_created_at or result.label_created_at,
        last_scan_at=result.last_physical_scan_at,
    )
    return apply_age_rule(result.status, clocks, limits)


def apply_age_rule(status: TrackingStatus, clocks: Clocks, limits: Limits) -> Classified:
    """Apply the age rule for ``status``, if it has one."""
    rule = AGE_RULES.get(status)
    if rule is None:
        return Classified(status, None)
    since = rule.since(clocks)
    if since is None:
        return Classified(status, None)
    limit = timedelta(hours=float(getattr(limits, rule.limit_setting)))
    if clocks.now - since > limit:
        return Classified(rule.becomes, since)
    return Classified(status, since)


def next_age_change(status: TrackingStatus, since: datetime | None, limits: Limits) -> datetime | None:
    """
    When ``status`` turns into another by the clock alone (label_created -> not_tendered,
    in_transit -> stalled), from the time its clock started; None when it never does.
    """
    rule = AGE_RULES.get(status)
    if rule is None or since is None:
        return None
    return since + timedelta(hours=float(getattr(limits, rule.limit_setting)))


#: Statuses that need somebody to act; the order shows the most urgent (first) one.
NEEDS_ACTION: tuple[TrackingStatus, ...] = (
    TrackingStatus.not_tendered,
    TrackingStatus.exception,
    TrackingStatus.returned_to_sender,
    TrackingStatus.stalled,
    TrackingStatus.not_found,
)

#: How far along a shipment is; with nothing to act on, the least advanced wins.
PROGRESS: Mapping[TrackingStatus, int] = {
    TrackingStatus.unknown: 0,
    TrackingStatus.awaiting_shipment: 1,
    TrackingStatus.label_created: 2,
    TrackingStatus.in_transit: 3,
    TrackingStatus.delivery_attempted: 4,
    TrackingStatus.available_for_pickup: 5,
    TrackingStatus.out_for_delivery: 6,
    TrackingStatus.delivered: 7,
    TrackingStatus.cancelled: 8,
}


def aggregate(statuses: list[TrackingStatus]) -> TrackingStatus:
    """
    One order status over its shipments' statuses.

    Any shipment needing action makes the order need action (the most urgent
    wins); otherwise the least advanced live shipment wins. Cancelled labels
    only count when every shipment is cancelled; ``delivered`` only when all
    live shipments are delivered.
    """
    if not statuses:
        return TrackingStatus.awaiting_shipment
    for urgent in NEEDS_ACTION:
        if urgent in statuses:
            return urgent
    live = [s for s in statuses if s is not TrackingStatus.cancelled] or statuses
    return min(live, key=lambda s: PROGRESS.get(s, 0))
