"""
What to tell the agent and the customer, per situation: data tables of
templates, filled with the facts of one order. Pure; no I/O.

A situation is a status (:class:`TrackingStatus`), a flag (:class:`Flag`)
or a fact the clock adds (:class:`Clocked`: ``not_tendered_long``, a label
so old it will not ship). Every flag has one entry in :data:`ADVICE_BY_FLAG`
saying what it does to the advice: it has words of its own, it is said
first (``replaced_order``, never hiding the advice), it is a status whose
own advice speaks, or it only informs. When several situations apply,
:data:`PRECEDENCE` says which one speaks: the specific stories first, then
the statuses that need action, then a missed promise, then the plain status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.domain.flags import Flag
from tracksvc.domain.status import NEEDS_ACTION

CARRIER_NAMES: Mapping[Carrier, str] = {
    Carrier.ups: "UPS",
    Carrier.fedex: "FedEx",
    Carrier.usps: "USPS",
}


@dataclass(frozen=True)
class Advice:
    """One situation's words: what the agent does, what the customer reads."""

    agent: str
    customer: str


@dataclass(frozen=True)
class Preface:
    """A flag whose words are said before the advice, never instead of it."""

    advice: Advice


@dataclass(frozen=True)
class StatusSpeaks:
    """A flag that is a shipment status: that status's advice speaks for it, ranked as the status."""

    status: TrackingStatus


@dataclass(frozen=True)
class NoAdviceOfItsOwn:
    """A flag that only informs; the status's (or another flag's) advice speaks. ``why`` says why."""

    why: str


#: What one flag does to the advice.
FlagAdvice = Advice | Preface | StatusSpeaks | NoAdviceOfItsOwn


class Clocked(StrEnum):
    """Situations the clock adds to a status; not flags (answers never list them)."""

    #: not_tendered for :data:`LONG_NOT_TENDERED_HOURS` or more: lost, not late.
    not_tendered_long = "not_tendered_long"


#: Anything :data:`PRECEDENCE` can rank.
Situation = Flag | TrackingStatus | Clocked

#: A label never scanned for this long is lost, not late: cancel or refund now.
LONG_NOT_TENDERED_HOURS = 7 * 24

#: One entry per flag, in :class:`Flag` order: a flag without one fails the tests.
ADVICE_BY_FLAG: Mapping[Flag, FlagAdvice] = {
    Flag.stale: NoAdviceOfItsOwn(
        "the last known answer still holds: the shipment's freshness and reason say why it is "
        "stale, and the status's advice speaks"
    ),
    Flag.not_tendered: StatusSpeaks(TrackingStatus.not_tendered),
    Flag.stalled: StatusSpeaks(TrackingStatus.stalled),
    Flag.internal_mismatch: Advice(
        agent=(
            "Our system says this parcel shipped, but {carrier} never scanned it "
            "(tracking number {tracking_number}, label printed {age}). Do not quote the internal "
            "status. Offer a reship or a refund on this call; warehouse {origin} has been flagged."
        ),
        customer=(
            "Your parcel has not been handed to {carrier} yet. We are sorry for the delay; "
            "our team will contact you with a replacement or a refund."
        ),
    ),
    Flag.replaced_order: Preface(
        Advice(
            agent=(
                "Order {replaced_from} was cancelled and re-placed as order {order_number}: give "
                "the customer the new number. "
            ),
            customer="Your order {replaced_from} now has a new order number, {order_number}. ",
        )
    ),
    Flag.ship_by_missed: Advice(
        agent=(
            "This order was never shipped: no label exists and the ship-by date ({ship_by}) "
            "has passed. Escalate to the warehouse or offer a cancellation and refund now."
        ),
        customer="Your order has not shipped yet. We are sorry for the delay and are looking into it.",
    ),
    Flag.promise_missed: Advice(
        agent=(
            "The promised delivery date ({promised}) has passed. Apologise, give the latest "
            "{carrier} estimate, and offer the shipping refund our policy allows."
        ),
        customer="Your order is later than we promised. We are sorry; it is still on its way.",
    ),
    Flag.registry_unavailable: NoAdviceOfItsOwn(
        "the carrier's answer is whole and its status's advice holds; only the registry's "
        "facts (order, warehouse, promise) could not be read, and no advice can supply them"
    ),
    Flag.delivered_disputed: Advice(
        agent=(
            "{carrier} shows this parcel delivered {when}. Check the delivery location and "
            "neighbours with the customer; if it is still missing, open a {carrier} claim and "
            "offer a reship."
        ),
        customer="Your parcel was delivered {when}. If you cannot find it, contact us and we will help.",
    ),
}

#: Words for what the clock adds.
CLOCKED_ADVICE: Mapping[Clocked, Advice] = {
    Clocked.not_tendered_long: Advice(
        agent=(
            "{carrier} never received this package: the label was printed {age} and never "
            "scanned, so it will not ship now. Cancel the label and refund the customer now "
            "(or reship if they still want it); do not ask them to wait. Warehouse {origin} "
            "has been flagged."
        ),
        customer=(
            "Your parcel was never handed to {carrier}. We are sorry: we are cancelling this "
            "shipment and will refund you, or send a replacement if you prefer."
        ),
    ),
}

#: Flags and clock-derived situations that carry words of their own (read from the tables above).
FLAG_ADVICE: Mapping[Flag | Clocked, Advice] = {
    **{flag: said for flag, said in ADVICE_BY_FLAG.items() if isinstance(said, Advice)},
    **{clocked: said for clocked, said in CLOCKED_ADVICE.items()},
}

#: Flags said before the advice, never instead of it (read from :data:`ADVICE_BY_FLAG`).
PREFACE_ADVICE: Mapping[Flag, Advice] = {
    flag: said.advice for flag, said in ADVICE_BY_FLAG.items() if isinstance(said, Preface)
}

#: Advice per order status.
STATUS_ADVICE: Mapping[TrackingStatus, Advice] = {
    TrackingStatus.not_tendered: Advice(
        agent=(
            "{carrier} never received this package: the label was printed {age} and never "
            "scanned. Offer a reship or a refund on this call; warehouse {origin} has been flagged."
        ),
        customer=(
            "A shipping label was created for your parcel, but {carrier} has not received it yet. "
            "We are sorry; our team will arrange a replacement or a refund."
        ),
    ),
    TrackingStatus.label_created: Advice(
        agent=(
            "The label was printed {age}; {carrier} has not scanned it yet, which is normal "
            "within {grace_hours:g} hours. Ask the customer to check back tomorrow."
        ),
        customer="Your parcel is being prepared. Tracking updates once {carrier} picks it up.",
    ),
    TrackingStatus.in_transit: Advice(
        agent="Moving with {carrier}; last scan {last_scan}. Nothing to do; share the estimate.",
        customer="Your parcel is on its way with {carrier}.",
    ),
    TrackingStatus.stalled: Advice(
        agent=(
            "No {carrier} scan since {last_scan}. Open a trace with {carrier}; if the customer "
            "needs it soon, offer a reship now."
        ),
        customer=(
            "Your parcel is with {carrier} but has not moved recently. We are checking with "
            "{carrier} and will update you."
        ),
    ),
    TrackingStatus.out_for_delivery: Advice(
        agent="Out for delivery today with {carrier}. Nothing to do.",
        customer="Your parcel is out for delivery today.",
    ),
    TrackingStatus.delivery_attempted: Advice(
        agent=(
            "{carrier} tried to deliver and could not. Confirm the address and access with the "
            "customer; {carrier} will try again or hold it for pickup."
        ),
        customer="{carrier} tried to deliver your parcel. It will try again or hold it for pickup.",
    ),
    TrackingStatus.available_for_pickup: Advice(
        agent="Waiting for the customer at a {carrier} pickup point. Tell them where and until when.",
        customer="Your parcel is ready for pickup at a {carrier} location.",
    ),
    TrackingStatus.delivered: Advice(
        agent=(
            "Delivered {when}. If the customer says it did not arrive, check the delivery "
            "location and neighbours, then open a {carrier} claim and offer a reship."
        ),
        customer="Your parcel was delivered {when}.",
    ),
    TrackingStatus.exception: Advice(
        agent=(
            "{carrier} reports a problem: {detail}. Fix what {carrier} needs (address, customs, "
            "pickup) or offer a reship."
        ),
        customer="There is a problem with your delivery. We are working with {carrier} to fix it.",
    ),
    TrackingStatus.returned_to_sender: Advice(
        agent=(
            "{carrier} is returning this parcel to us ({detail}). Offer a reship to a confirmed "
            "address or a refund when it arrives back."
        ),
        customer="Your parcel is being returned to us. We will contact you about a reship or refund.",
    ),
    TrackingStatus.cancelled: Advice(
        agent="The label was voided. Check whether a replacement label exists; if not, reship.",
        customer="This shipment was cancelled. If you expected it, please contact us.",
    ),
    TrackingStatus.not_found: Advice(
        agent=(
            "{carrier} has no record of {tracking_number}. Check the number with the customer; "
            "if it is ours, the label was probably never used: offer a reship."
        ),
        customer="We cannot find tracking for this number yet. Please check the number.",
    ),
    TrackingStatus.unknown: Advice(
        # {problem}: tracksvc.domain.failures' sentence (never the raw reason).
        agent="{problem} Look again in a few minutes; do not promise anything from this screen.",
        customer="Tracking is temporarily unavailable. Please try again later.",
    ),
    TrackingStatus.awaiting_shipment: Advice(
        agent="The order has no shipping label yet; it is waiting to ship by {ship_by}.",
        customer="Your order is being prepared for shipment.",
    ),
}


#: Which situation speaks when several apply: the first one present wins;
#: with none of these, the order status's own advice.
PRECEDENCE: tuple[Situation, ...] = (
    Flag.internal_mismatch,
    Flag.ship_by_missed,
    Flag.delivered_disputed,
    Clocked.not_tendered_long,
    *NEEDS_ACTION,
    Flag.promise_missed,
)


class _Facts(dict[str, object]):
    """Template facts; a missing one reads as "unknown" rather than failing."""

    def __missing__(self, key: str) -> str:
        return "unknown"


def humanize_age(since: datetime | None, now: datetime) -> str:
    """'2 hours ago', '5 days ago' (or 'at an unknown time')."""
    if since is None:
        return "at an unknown time"
    hours = (now - since).total_seconds() / 3600
    if hours < 1:
        return "less than an hour ago"
    if hours < 48:
        n = int(hours)
        return f"{n} hour{'s' if n != 1 else ''} ago"
    days = int(hours // 24)
    return f"{days} days ago"


def situations(
    status: TrackingStatus, flags: Iterable[str], facts: Mapping[str, object]
) -> set[Situation]:
    """
    Every situation that applies: the status, the flags (and the statuses
    they stand for), and what the clock adds.

    Args:
        status: the order status.
        flags: the order's flags (:class:`Flag` members or their values).
        facts: the template facts (``label_age_hours`` is read here).

    Raises:
        ValueError: a flag that :class:`Flag` does not name.
    """
    present: set[Situation] = {status}
    for flag in map(Flag, flags):
        present.add(flag)
        said = ADVICE_BY_FLAG[flag]
        if isinstance(said, StatusSpeaks):
            present.add(said.status)
    age_h = facts.get("label_age_hours")
    if (
        status is TrackingStatus.not_tendered
        and isinstance(age_h, int | float)
        and age_h >= LONG_NOT_TENDERED_HOURS
    ):
        present.add(Clocked.not_tendered_long)
    return present


def advice_for(status: TrackingStatus, flags: Iterable[str], facts: Mapping[str, object]) -> Advice:
    """
    The advice for an order: the first situation of :data:`PRECEDENCE` that
    applies, else its status's; prefaced by each :class:`Preface` flag present.

    Args:
        status: the order status.
        flags: the order's flags (:class:`Flag` members or their values).
        facts: what the templates are filled with; a missing fact reads "unknown".

    Raises:
        ValueError: a flag that :class:`Flag` does not name.
    """
    present = situations(status, flags, facts)
    name = next((s for s in PRECEDENCE if s in present), status)
    chosen = STATUS_ADVICE[name] if isinstance(name, TrackingStatus) else FLAG_ADVICE[name]
    preface = [advice for flag, advice in PREFACE_ADVICE.items() if flag in present]
    fill = _Facts(facts)
    return Advice(
        agent="".join(p.agent for p in preface).format_map(fill) + chosen.agent.format_map(fill),
        customer="".join(p.customer for p in preface).format_map(fill)
        + chosen.customer.format_map(fill),
    )
