"""
The flags an answer carries, and the one table of rules that raises them.

A flag tells the agent what the status alone does not: the answer is stale,
our systems say shipped but the carrier never scanned it, the promised day
has passed. :class:`Flag` names every flag (``openapi.yaml`` ``Flag`` lists
the same values in the same order); :data:`RULES` says, for each flag, when
it is raised over one shipment's facts (:class:`ShipmentFacts`), over the
order's own facts (:class:`OrderFacts`), or both. An order's flags are its
shipments' flags (first seen first), then its own, each once. What each flag
says to people is in :mod:`tracksvc.domain.advice`. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tracksvc.core.models import TrackingStatus


class Flag(StrEnum):
    """Every flag an answer may carry, in the order an answer lists them."""

    #: The last known answer: the carrier could not be asked (down, budget, breaker).
    stale = "stale"
    #: A shipment's status is not_tendered: label printed, never scanned past the grace period.
    not_tendered = "not_tendered"
    #: A shipment's status is stalled: no scan for the stall limit.
    stalled = "stalled"
    #: Our systems say shipped; the carrier never scanned the parcel.
    internal_mismatch = "internal_mismatch"
    #: The reference was an order number that was cancelled and re-placed.
    replaced_order = "replaced_order"
    #: No label exists and the order's ship-by time has passed.
    ship_by_missed = "ship_by_missed"
    #: The promised delivery day is over and the parcel is not delivered.
    promise_missed = "promise_missed"
    #: The registry could not be read: a carrier number answered by its carrier alone.
    registry_unavailable = "registry_unavailable"
    #: Delivered, but the customer says it never arrived (``?claim=not_received``).
    delivered_disputed = "delivered_disputed"


#: What a customer may tell the agent, passed as ``?claim=`` on ``GET /v1/track/{reference}``.
CLAIM_NOT_RECEIVED = "not_received"
CLAIMS = frozenset({CLAIM_NOT_RECEIVED})

#: Carrier statuses that mean the carrier never had the parcel in hand.
NEVER_SCANNED = frozenset(
    {TrackingStatus.label_created, TrackingStatus.not_tendered, TrackingStatus.not_found}
)

#: Statuses after which a promised date no longer matters.
PROMISE_KEPT_OR_MOOT = frozenset(
    {TrackingStatus.delivered, TrackingStatus.cancelled, TrackingStatus.returned_to_sender}
)


@dataclass(frozen=True)
class ShipmentFacts:
    """
    What the shipment rules look at, for one shipment.

    Attributes:
        status: the shipment's status, classified with the clock.
        now: the current time (aware).
        stale: the answer is the last known one (freshness ``stale``).
        claims_shipped: our systems (the registry record) say it shipped.
        promised: the end of the promised delivery day, when one was promised.
    """

    status: TrackingStatus
    now: datetime
    stale: bool = False
    claims_shipped: bool = False
    promised: datetime | None = None


@dataclass(frozen=True)
class OrderFacts:
    """
    What the order rules look at, for the order as a whole.

    Attributes:
        status: the order's status, aggregated over its shipments.
        now: the current time (aware).
        has_shipments: at least one shipment (a label) exists.
        promised: the end of the order's promised delivery day, when one was promised.
        ship_by: when the order had to ship by, when the order says.
        replaced: the reference was an order number re-placed as this order.
        registry_unavailable: the registry could not be read for this lookup.
        claims: what the customer tells the agent (:data:`CLAIMS`).
    """

    status: TrackingStatus
    now: datetime
    has_shipments: bool
    promised: datetime | None = None
    ship_by: datetime | None = None
    replaced: bool = False
    registry_unavailable: bool = False
    claims: frozenset[str] = frozenset()


def promise_passed(facts: ShipmentFacts | OrderFacts) -> bool:
    """
    The one promise rule: the promised day is over, and the parcel is not
    delivered, cancelled or on its way back.
    """
    return (
        facts.promised is not None
        and facts.status not in PROMISE_KEPT_OR_MOOT
        and facts.now > facts.promised
    )


@dataclass(frozen=True)
class Rule:
    """When a flag is raised: over one shipment's facts, over the order's own, or both."""

    shipment: Callable[[ShipmentFacts], bool] | None = None
    order: Callable[[OrderFacts], bool] | None = None


#: The rules, one entry per flag, in :class:`Flag` order (which is the order
#: answers list them in).
RULES: Mapping[Flag, Rule] = {
    Flag.stale: Rule(shipment=lambda s: s.stale),
    # The two statuses that need chasing are flags too, so an order shows them
    # even when another shipment's status decides the order's.
    Flag.not_tendered: Rule(shipment=lambda s: s.status is TrackingStatus.not_tendered),
    Flag.stalled: Rule(shipment=lambda s: s.status is TrackingStatus.stalled),
    Flag.internal_mismatch: Rule(shipment=lambda s: s.claims_shipped and s.status in NEVER_SCANNED),
    Flag.replaced_order: Rule(order=lambda o: o.replaced),
    Flag.ship_by_missed: Rule(
        order=lambda o: not o.has_shipments and o.ship_by is not None and o.now > o.ship_by
    ),
    # One rule at two levels: each shipment against its own promise (its record's,
    # else the order's); an order with nothing shipped against the order's.
    Flag.promise_missed: Rule(
        shipment=promise_passed,
        order=lambda o: not o.has_shipments and promise_passed(o),
    ),
    Flag.registry_unavailable: Rule(order=lambda o: o.registry_unavailable),
    Flag.delivered_disputed: Rule(
        order=lambda o: CLAIM_NOT_RECEIVED in o.claims and o.status is TrackingStatus.delivered
    ),
}


def shipment_flags(facts: ShipmentFacts) -> list[Flag]:
    """
    The flags one shipment raises, in :class:`Flag` order.

    Args:
        facts: the shipment's status and facts.

    Returns:
        Every flag whose shipment rule holds.
    """
    return [flag for flag, rule in RULES.items() if rule.shipment is not None and rule.shipment(facts)]


def order_flags(shipments: Iterable[Iterable[Flag]], facts: OrderFacts) -> list[Flag]:
    """
    An order's flags: its shipments' flags (first seen first), then its own; each once.

    Args:
        shipments: each shipment's flags, in the order's shipment order.
        facts: the order's status and facts.

    Returns:
        The flags, without repeats.
    """
    seen = dict.fromkeys(flag for flags in shipments for flag in flags)
    seen.update(
        dict.fromkeys(
            flag for flag, rule in RULES.items() if rule.order is not None and rule.order(facts)
        )
    )
    return list(seen)
