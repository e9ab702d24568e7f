"""
The sandbox's deterministic scenario catalogue, in carrier-neutral terms.

A scenario is a tracking number and a history of semantic steps, each with
an age relative to *now*, so "label printed five days ago" stays five days
old whenever the sandbox runs. Each carrier module renders the steps into
its own codes and wire format. Every normalized status is reachable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from carriers import checkdigits
from carriers.models import Carrier, TrackingStatus


class Step(StrEnum):
    """What happened to a parcel, before a carrier puts its own code on it."""

    label = "label"  # label printed / shipment information sent
    void = "void"  # label voided or shipment cancelled
    pickup = "pickup"  # carrier took possession
    arrival = "arrival"  # arrived at a carrier facility
    departure = "departure"  # left a carrier facility
    out_for_delivery = "out_for_delivery"
    attempt = "attempt"  # delivery attempted
    ready_for_pickup = "ready_for_pickup"  # at a counter / locker / access point
    delivered = "delivered"
    exception = "exception"  # damage, address problem, customs hold
    return_to_sender = "return_to_sender"


@dataclass(frozen=True)
class Scenario:
    """One sandbox tracking number and its story."""

    carrier: Carrier
    number: str
    name: str
    #: What tracksvc answers with default settings (grace 48 h, stalled after 72 h).
    expect: TrackingStatus
    #: Steps oldest first, each with its age (time before now).
    steps: tuple[tuple[Step, timedelta], ...] = ()
    #: Unknown to the carrier: answers in the carrier's not-found shape.
    not_found: bool = False
    #: Estimated delivery, relative to now (None: the carrier gives none).
    eta: timedelta | None = None
    #: Always answer with this fault (see :mod:`carriers.sandbox.faults`).
    fault: str | None = None
    description: str = ""
    origin_city: str = "DALLAS"
    destination_city: str = "BROOKLYN"


def _h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def _d(days: float) -> timedelta:
    return timedelta(days=days)


def ups_number(serial: int) -> str:
    """A valid UPS 1Z number from the sandbox's shipper id."""
    body = f"TRKSVC01{serial:07d}"
    return f"1Z{body}{checkdigits.ups_1z(body)}"


def fedex_number(serial: int) -> str:
    """A valid 12-digit FedEx Express number."""
    body = f"79{serial:09d}"
    return f"{body}{checkdigits.fedex_express_12(body)}"


def fedex_ground_number(serial: int) -> str:
    """A valid 15-digit FedEx Ground number."""
    body = f"6129{serial:010d}"
    return f"{body}{checkdigits.fedex_ground_15(body)}"


def usps_number(serial: int) -> str:
    """A valid 22-digit USPS IMpb number (``94`` + service + mailer id + serial)."""
    body = f"94001123456{serial:010d}"
    return f"{body}{checkdigits.usps_impb(body)}"


_IN_TRANSIT = ((Step.label, _d(3)), (Step.pickup, _d(2)), (Step.arrival, _h(30)), (Step.departure, _h(20)))


def _catalogue_for(carrier: Carrier, number: Callable[[int], str], base: int) -> list[Scenario]:
    c = carrier.value
    return [
        Scenario(carrier, number(base + 1), f"{c}-label-2h", TrackingStatus.label_created,
                 ((Step.label, _h(2)),), eta=_d(4),
                 description="label printed two hours ago, inside the tender grace period"),
        Scenario(carrier, number(base + 2), f"{c}-label-5d", TrackingStatus.not_tendered,
                 ((Step.label, _d(5)),),
                 description="label printed five days ago, never scanned by the carrier"),
        Scenario(carrier, number(base + 3), f"{c}-in-transit", TrackingStatus.in_transit,
                 _IN_TRANSIT, eta=_d(2), description="moving through the network"),
        Scenario(carrier, number(base + 4), f"{c}-stalled", TrackingStatus.stalled,
                 ((Step.label, _d(9)), (Step.pickup, _d(8)), (Step.arrival, _d(6))), eta=_d(-3),
                 description="in transit, last scan six days ago"),
        Scenario(carrier, number(base + 5), f"{c}-out-for-delivery", TrackingStatus.out_for_delivery,
                 (*_IN_TRANSIT, (Step.arrival, _h(8)), (Step.out_for_delivery, _h(3))), eta=_d(0),
                 description="on the delivery vehicle today"),
        Scenario(carrier, number(base + 6), f"{c}-attempted", TrackingStatus.delivery_attempted,
                 (*_IN_TRANSIT, (Step.out_for_delivery, _h(10)), (Step.attempt, _h(4))), eta=_d(1),
                 description="delivery attempted, nobody home"),
        Scenario(carrier, number(base + 7), f"{c}-pickup-ready", TrackingStatus.available_for_pickup,
                 (*_IN_TRANSIT, (Step.ready_for_pickup, _h(5))),
                 description="waiting at a counter or locker"),
        Scenario(carrier, number(base + 8), f"{c}-delivered", TrackingStatus.delivered,
                 (*_IN_TRANSIT, (Step.out_for_delivery, _h(12)), (Step.delivered, _h(9))),
                 description="delivered"),
        Scenario(carrier, number(base + 9), f"{c}-exception", TrackingStatus.exception,
                 (*_IN_TRANSIT, (Step.exception, _h(6))), description="address problem reported"),
        Scenario(carrier, number(base + 10), f"{c}-returned", TrackingStatus.returned_to_sender,
                 (*_IN_TRANSIT, (Step.attempt, _h(16)), (Step.return_to_sender, _h(5))),
                 description="refused, returning to sender"),
        Scenario(carrier, number(base + 11), f"{c}-not-found", TrackingStatus.not_found,
                 not_found=True, description="the carrier has no record of this number"),
        Scenario(carrier, number(base + 12), f"{c}-label-17d", TrackingStatus.not_tendered,
                 ((Step.label, _d(17)),),
                 description="label printed 17 days ago, never tendered"),
        Scenario(carrier, number(base + 13), f"{c}-malformed", TrackingStatus.unknown,
                 ((Step.label, _h(1)),), fault="malformed",
                 description="the carrier always answers with broken JSON"),
    ]


def _cancelled() -> list[Scenario]:
    # USPS documents no void event (carrier-apis.md section 8), so only UPS and FedEx.
    return [
        Scenario(Carrier.ups, ups_number(20), "ups-voided", TrackingStatus.cancelled,
                 ((Step.label, _d(3)), (Step.void, _d(2))), description="label voided by the shipper"),
        Scenario(Carrier.fedex, fedex_number(20), "fedex-cancelled", TrackingStatus.cancelled,
                 ((Step.label, _d(3)), (Step.void, _d(2))), description="shipment cancelled"),
        Scenario(Carrier.fedex, fedex_ground_number(21), "fedex-ground-in-transit",
                 TrackingStatus.in_transit, _IN_TRANSIT, eta=_d(2),
                 description="a 15-digit FedEx Ground number; its 96... barcode finds it too"),
    ]


CATALOGUE: tuple[Scenario, ...] = tuple(
    [
        *_catalogue_for(Carrier.ups, ups_number, 0),
        *_catalogue_for(Carrier.fedex, fedex_number, 0),
        *_catalogue_for(Carrier.usps, usps_number, 0),
        *_cancelled(),
    ]
)


def by_name() -> dict[str, Scenario]:
    """The catalogue keyed by scenario name (e.g. ``ups-label-5d``)."""
    return {s.name: s for s in CATALOGUE}
