"""
Demo and story data: orders and shipments that reproduce the stories tracksvc
exists for, and one order per status, on top of the sandbox catalogue.

Used by ``tracksvc demo`` and by the seed-story tests; times are relative to
now, like the sandbox's, so every run tells the same stories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from carriers.sandbox.scenarios import CATALOGUE, Scenario, Step, usps_number
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.domain.records import Direction, OrderRecord, ShipmentRecord
from tracksvc.registry.store import Registry

_BY_NAME = {s.name: s for s in CATALOGUE}


def _label_time(scenario: Scenario, now: datetime) -> datetime:
    """When the scenario's label was printed (its label step's age)."""
    for step, age in scenario.steps:
        if step is Step.label:
            return now - age
    return now - timedelta(hours=1)


@dataclass(frozen=True)
class Story:
    """One thing an agent must see in one look."""

    key: str
    title: str
    #: What the customer reads out (paste this).
    reference: str
    expect_status: TrackingStatus
    expect_flags: tuple[str, ...] = ()
    orders: tuple[OrderRecord, ...] = ()
    shipments: tuple[ShipmentRecord, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _shipment(
    shipment_id: str,
    scenario_name: str,
    now: datetime,
    *,
    order_number: str | None,
    origin: str,
    **extra: object,
) -> ShipmentRecord:
    scenario = _BY_NAME[scenario_name]
    return ShipmentRecord.model_validate(
        {
            "shipment_id": shipment_id,
            "order_number": order_number,
            "carrier": scenario.carrier,
            "tracking_number": scenario.number,
            "label_created_at": _label_time(scenario, now),
            "origin": origin,
            **extra,
        }
    )


def _usps_not_yet_available(
    age: str,
    when: str,
    order_number: str,
    number: str,
    label_created_at: datetime,
    expect: TrackingStatus,
    flags: tuple[str, ...],
) -> Story:
    """A registered USPS label USPS answers "not yet available" (150001) for."""
    return Story(
        key=f"usps-not-yet-available-{age}",
        title=f"Registered USPS label USPS does not know yet, {when}",
        reference=order_number,
        expect_status=expect,
        expect_flags=flags,
        orders=(OrderRecord(order_number=order_number, destination_postal_code="94105"),),
        shipments=(ShipmentRecord(shipment_id=f"shp-{order_number[1:]}-1", order_number=order_number,
                                  carrier=Carrier.usps, tracking_number=number,
                                  label_created_at=label_created_at, origin="OAK1",
                                  destination_postal_code="94105"),),
    )


def stories(now: datetime | None = None) -> list[Story]:
    """The seed stories (design.md, issue "orders"), as registry records."""
    now = now or datetime.now(UTC)
    today = now.date()
    brooklyn = _shipment(
        "shp-2001001-1", "usps-label-5d", now, order_number="W2001001", origin="MSP1",
        internal_status="shipped", internal_note="Left Brooklyn Park on the 19th",
        destination_postal_code="11201", promised_delivery_date=today - timedelta(days=1),
        label_cost="8.45",  # the warehouse page's labels to void show the money at stake
    )
    ups17 = _shipment(
        "shp-2001002-1", "ups-label-17d", now, order_number="W2001002", origin="DAL1",
        destination_postal_code="75201", label_cost="14.20",
    )
    replaced_out = _shipment(
        "shp-4477-0192-1", "fedex-in-transit", now, order_number="S-4477-0192", origin="STORE-0192",
        destination_postal_code="10001",
    )
    replaced_return = _shipment(
        "shp-4477-0192-r1", "usps-in-transit", now, order_number="S-4477-0192", origin="STORE-0192",
        direction=Direction.return_, aliases=["RMA-88123"], destination_postal_code="10001",
    )
    return [
        Story(
            key="brooklyn-park",
            title="Internal system says shipped; USPS never received it",
            reference=brooklyn.tracking_number,
            expect_status=TrackingStatus.not_tendered,
            expect_flags=("not_tendered", "internal_mismatch", "promise_missed"),
            orders=(OrderRecord(order_number="W2001001", ordered_at=now - timedelta(days=7),
                                destination_postal_code="11201",
                                promised_delivery_date=today - timedelta(days=1)),),
            shipments=(brooklyn,),
            notes=("The 'shipping number' the customer holds is the USPS tracking number.",),
        ),
        Story(
            key="ups-17-days",
            title="UPS label printed 17 days ago, never shipped",
            reference="W2001002",
            expect_status=TrackingStatus.not_tendered,
            expect_flags=("not_tendered",),
            orders=(OrderRecord(order_number="W2001002", ordered_at=now - timedelta(days=18),
                                destination_postal_code="75201"),),
            shipments=(ups17,),
        ),
        Story(
            key="replaced-order",
            title="Online order cancelled and re-placed at a store",
            reference="W2001003",
            expect_status=TrackingStatus.in_transit,
            expect_flags=("replaced_order",),
            orders=(OrderRecord(order_number="S-4477-0192", ordered_at=now - timedelta(days=4),
                                replaces=["W2001003"], channel="store",
                                destination_postal_code="10001"),),
            shipments=(replaced_out, replaced_return),
        ),
        Story(
            key="marketplace-unshipped",
            title="Marketplace order with no label, ship-by date passed",
            reference="M-7781-2211",
            expect_status=TrackingStatus.awaiting_shipment,
            expect_flags=("ship_by_missed",),
            orders=(OrderRecord(order_number="M-7781-2211", ordered_at=now - timedelta(days=5),
                                promised_ship_by=now - timedelta(days=3), channel="marketplace",
                                destination_postal_code="60601"),),
        ),
        _usps_not_yet_available(
            "new", "printed an hour ago", "W2001005", usps_number(501), now - timedelta(hours=1),
            TrackingStatus.label_created, (),
        ),
        _usps_not_yet_available(
            "old", "still unknown after 3 days", "W2001006", usps_number(502), now - timedelta(days=3),
            TrackingStatus.not_tendered, ("not_tendered",),
        ),
    ]


#: Catalogue scenarios that get one demo order each, so every status can be seen.
STATUS_ORDERS = (
    "ups-label-2h", "fedex-label-5d", "usps-stalled", "ups-out-for-delivery", "fedex-attempted",
    "usps-pickup-ready", "ups-delivered", "fedex-exception", "usps-returned", "ups-voided",
    "fedex-not-found", "usps-malformed", "fedex-stalled", "usps-delivered",
)


#: Statuses that are also flags on the order (design.md section 2).
FLAGGED_STATUSES = frozenset({TrackingStatus.not_tendered, TrackingStatus.stalled})


def status_orders(now: datetime | None = None) -> list[Story]:
    """One registered order per catalogue scenario in :data:`STATUS_ORDERS`."""
    now = now or datetime.now(UTC)
    out = []
    for index, name in enumerate(STATUS_ORDERS, start=1):
        scenario = _BY_NAME[name]
        order_number = f"W30{index:05d}"
        shipment = _shipment(f"shp-30{index:05d}-1", name, now, order_number=order_number,
                             origin=("DAL1", "MSP1", "OAK1")[index % 3], destination_postal_code="30301")
        # Registered, a number the carrier has no record of is a label that
        # was never used (label_created in the grace period), not not_found.
        expect = TrackingStatus.label_created if scenario.not_found else scenario.expect
        out.append(Story(
            key=f"status-{name}",
            title=scenario.description,
            reference=order_number,
            expect_status=expect,
            expect_flags=(expect.value,) if expect in FLAGGED_STATUSES else (),
            orders=(OrderRecord(order_number=order_number, destination_postal_code="30301",
                                ordered_at=now - timedelta(days=10)),),
            shipments=(shipment,),
        ))
    return out


def all_stories(now: datetime | None = None) -> list[Story]:
    """The seed stories and the one-order-per-status set."""
    now = now or datetime.now(UTC)
    return [*stories(now), *status_orders(now)]


async def seed(registry: Registry, now: datetime | None = None) -> list[Story]:
    """Write every story's orders and shipments to the registry; return the stories."""
    everything = all_stories(now)
    for story in everything:
        for order in story.orders:
            await registry.put_order(order)
        for shipment in story.shipments:
            await registry.put_shipment(shipment)
    return everything

