"""One order status, its flags, summary and advice (design.md section 2), through the real service."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from carriers.sandbox.scenarios import usps_number
from tests.tracksvc.registry_helpers import (
    hours_ago,
    now,
    number_of,
    register,
    shipment,
    stalled_ids,
    track_ok,
)


async def _order(service: Any, *scenarios: str, **fields: Any) -> Any:
    bodies = [shipment(f"shp-{i}", name, order_number="W-S", **fields) for i, name in enumerate(scenarios)]
    await register(service, *bodies, order={"order_number": "W-S"})
    return await track_ok(service, "W-S")


@pytest.mark.parametrize(
    ("scenarios", "expected"),
    [
        (["ups-delivered", "fedex-delivered"], "delivered"),
        (["ups-delivered", "fedex-in-transit"], "in_transit"),
        (["ups-out-for-delivery", "usps-in-transit"], "in_transit"),
        (["ups-delivered", "fedex-exception"], "exception"),
        (["ups-in-transit", "usps-stalled"], "stalled"),
        (["ups-delivered", "fedex-label-5d", "usps-exception"], "not_tendered"),
        (["fedex-returned", "ups-delivered"], "returned_to_sender"),
        (["ups-voided", "fedex-in-transit"], "in_transit"),
        (["ups-voided"], "cancelled"),
        (["ups-label-2h", "fedex-delivered"], "label_created"),
        (["ups-pickup-ready", "fedex-delivered"], "available_for_pickup"),
    ],
)
async def test_the_order_status_never_hides_a_problem(
    service: Any, scenarios: list[str], expected: str
) -> None:
    """Any shipment needing action decides; else the least advanced live one; delivered only when all are."""
    body = await _order(service, *scenarios)
    assert body["status"] == expected
    assert len(body["shipments"]) == len(scenarios)


async def test_summary_counts_delivered_packages_and_names_the_problem(service: Any) -> None:
    """"2 of 3 packages delivered; 1 label printed 6 days ago, never scanned by UPS"."""
    await register(
        service,
        shipment("shp-a", "fedex-delivered", order_number="W-SUM"),
        shipment("shp-b", "usps-delivered", order_number="W-SUM"),
        shipment("shp-c", "ups-label-5d", order_number="W-SUM", label_created_at=hours_ago(6 * 24 + 1)),
    )
    body = await track_ok(service, "W-SUM")
    assert body["summary"] == "2 of 3 packages delivered; 1 label printed 6 days ago, never scanned by UPS."
    assert body["status"] == "not_tendered"


async def test_the_registry_label_time_decides_not_tendered(service: Any) -> None:
    """The carrier shows a fresh label event, but the warehouse printed it 3 days ago: not_tendered."""
    body = await _order(service, "ups-label-2h", label_created_at=hours_ago(72))
    assert body["status"] == "not_tendered"
    assert body["shipments"][0]["status_since"] == body["shipments"][0]["label_created_at"]
    assert "3 days ago" in body["summary"]


async def test_grace_period_setting_moves_the_line(service_with: Any) -> None:
    """With TRACKSVC_TENDER_GRACE_HOURS=1 a 2-hour-old label is already not_tendered."""
    client = await service_with(tender_grace_hours=1)
    body = await _order(client, "ups-label-2h")
    assert body["status"] == "not_tendered"


# -- USPS 150001 "not yet available" ----------------------------------------------


async def test_usps_not_yet_available_registered_inside_grace_is_label_created(service: Any) -> None:
    """A registered label USPS does not know yet, printed 2 hours ago: label_created, not on the list."""
    number = usps_number(601)
    await register(service, {"shipment_id": "shp-u1", "order_number": "W-U1", "carrier": "usps",
                             "tracking_number": number, "label_created_at": hours_ago(2)})
    body = await track_ok(service, "W-U1")
    assert body["status"] == "label_created"
    assert body["shipments"][0]["carrier_status_code"] == "150001"
    assert "not yet available" in body["shipments"][0]["status_detail"]
    assert "shp-u1" not in await stalled_ids(service)


async def test_usps_not_yet_available_registered_past_grace_is_not_tendered_and_listed(service: Any) -> None:
    """The same answer for a label printed 3 days ago: not_tendered, and it is on the warehouse list."""
    number = usps_number(602)
    await register(service, {"shipment_id": "shp-u2", "order_number": "W-U2", "carrier": "usps",
                             "tracking_number": number, "label_created_at": hours_ago(72), "origin": "OAK1"})
    body = await track_ok(service, "W-U2")
    assert body["status"] == "not_tendered"
    assert body["flags"] == ["not_tendered"]
    assert "USPS never received" in body["agent_advice"]
    assert await stalled_ids(service, origin="OAK1") == ["shp-u2"]


async def test_usps_not_yet_available_unregistered_is_not_found(service: Any) -> None:
    """Unregistered, USPS's 'not yet available' means USPS has no record: not_found."""
    body = await track_ok(service, usps_number(603))
    assert body["status"] == "not_found"
    assert body["matched"] == "carrier_number"
    assert "no record" in body["agent_advice"]


# -- flags ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "internal_status", "mismatch"),
    [
        ("ups-label-5d", "shipped", True),
        ("fedex-label-5d", "In_Transit", True),
        ("usps-label-5d", "delivered", True),
        ("ups-label-5d", "awaiting_pickup", False),
        ("ups-label-5d", None, False),
        ("ups-in-transit", "shipped", False),
        ("fedex-delivered", "delivered", False),
    ],
)
async def test_internal_mismatch_when_our_system_claims_a_move_the_carrier_never_saw(
    service: Any, scenario: str, internal_status: str | None, mismatch: bool
) -> None:
    """internal_mismatch: the internal status says shipped/moved, the carrier never scanned the parcel."""
    body = await _order(service, scenario, internal_status=internal_status)
    assert ("internal_mismatch" in body["flags"]) is mismatch
    if mismatch:
        assert "Our system says this parcel shipped" in body["agent_advice"]
        assert "Do not quote the internal status" in body["agent_advice"]


@pytest.mark.parametrize(
    ("scenario", "days_from_today", "missed"),
    [
        ("ups-in-transit", -1, True),
        ("ups-in-transit", 0, False),  # today is not over yet
        ("ups-in-transit", 2, False),
        ("fedex-delivered", -1, False),  # delivered: the promise no longer matters here
        ("usps-returned", -1, False),
        ("fedex-stalled", -2, True),
    ],
)
async def test_promise_missed_once_the_promised_day_is_over(
    service: Any, scenario: str, days_from_today: int, missed: bool
) -> None:
    """promise_missed: past the end of the promised delivery day and not delivered."""
    promised = (now() + timedelta(days=days_from_today)).date().isoformat()
    body = await _order(service, scenario, promised_delivery_date=promised)
    assert ("promise_missed" in body["flags"]) is missed


async def test_promise_missed_in_transit_advises_an_apology_and_the_estimate(service: Any) -> None:
    """The only problem is lateness: the advice names the promised date and the carrier."""
    promised = (now() - timedelta(days=1)).date()
    body = await _order(service, "fedex-in-transit", promised_delivery_date=promised.isoformat())
    assert body["flags"] == ["promise_missed"]
    assert f"promised delivery date ({promised:%Y-%m-%d}) has passed" in body["agent_advice"]
    assert "FedEx" in body["agent_advice"]
    assert "later than we promised" in body["customer_message"]


async def test_order_promise_applies_to_its_shipments(service: Any) -> None:
    """A promised date on the order counts for shipments that have none of their own."""
    yesterday = (now() - timedelta(days=1)).date().isoformat()
    await register(service, shipment("shp-p", "ups-in-transit", order_number="W-P"),
                   order={"order_number": "W-P", "promised_delivery_date": yesterday})
    body = await track_ok(service, "W-P")
    assert body["flags"] == ["promise_missed"]


async def test_replaced_order_is_found_by_the_earlier_number(service: Any) -> None:
    """A lookup by the cancelled order's number answers the new order, flagged replaced_order."""
    await register(service, shipment("shp-new", "ups-out-for-delivery", order_number="S-2"),
                   order={"order_number": "S-2", "replaces": ["W-1", "W-0"]})
    body = await track_ok(service, "w-1")
    assert body["matched"] == "replaced_order"
    assert (body["order_number"], body["replaced_from"]) == ("S-2", "W-1")
    assert body["flags"] == ["replaced_order"]
    assert body["agent_advice"].startswith("Order W-1 was cancelled and re-placed as order S-2")
    assert "Out for delivery" in body["agent_advice"]  # the order's own advice follows
    assert "S-2" in body["customer_message"]
    direct = await track_ok(service, "S-2")
    assert "replaced_order" not in direct["flags"]
    assert direct["replaced_from"] is None


async def test_replaces_dropped_on_update_stop_leading_to_the_order(service: Any) -> None:
    """An order updated without an earlier number no longer answers for it."""
    await register(service, order={"order_number": "S-3", "replaces": ["W-3"]})
    await register(service, order={"order_number": "S-3", "replaces": []})
    response = await service.get("/v1/track/W-3", headers={"Authorization": "Bearer agent-key"})
    assert response.status == 404


@pytest.mark.parametrize(
    ("ship_by_hours", "flags", "advice"),
    [
        (-30, ["ship_by_missed"], "never shipped"),
        (30, [], "waiting to ship by"),
    ],
)
async def test_order_without_a_label_is_awaiting_shipment(
    service: Any, ship_by_hours: float, flags: list[str], advice: str
) -> None:
    """No label: awaiting_shipment, and ship_by_missed once the promised ship date has passed."""
    ship_by = now() + timedelta(hours=ship_by_hours)
    await register(service, order={"order_number": "M-1", "promised_ship_by": ship_by.isoformat()})
    body = await track_ok(service, "M-1")
    assert body["status"] == "awaiting_shipment"
    assert body["flags"] == flags
    assert advice in body["agent_advice"]
    assert f"{ship_by:%Y-%m-%d}" in body["agent_advice"]
    assert body["summary"] == "No shipments yet: the order has no label."


async def test_order_without_a_label_past_its_delivery_date_missed_the_promise(service: Any) -> None:
    """Never shipped and the promised delivery day is over: ship_by_missed and promise_missed."""
    await register(service, order={
        "order_number": "M-2", "promised_ship_by": hours_ago(100),
        "promised_delivery_date": (now() - timedelta(days=1)).date().isoformat(),
    })
    body = await track_ok(service, "M-2")
    assert body["flags"] == ["ship_by_missed", "promise_missed"]
    assert "never shipped" in body["agent_advice"]


# -- advice per situation -------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "fields", "status", "agent", "customer"),
    [
        ("ups-label-5d", {}, "not_tendered", "UPS never received this package",
         "has not received it yet"),
        ("ups-label-17d", {}, "not_tendered", "Cancel the label and refund the customer now",
         "never handed to UPS"),
        ("usps-stalled", {}, "stalled", "Open a trace with USPS", "has not moved recently"),
        ("fedex-exception", {}, "exception", "FedEx reports a problem", "a problem with your delivery"),
        ("usps-returned", {}, "returned_to_sender", "USPS is returning this parcel",
         "being returned to us"),
        ("ups-label-5d", {"internal_status": "shipped"}, "not_tendered",
         "Our system says this parcel shipped", "has not been handed to UPS yet"),
        ("ups-delivered", {}, "delivered", "If the customer says it did not arrive", "was delivered"),
        ("ups-attempted", {}, "delivery_attempted", "Confirm the address", "tried to deliver"),
    ],
)
async def test_each_situation_has_advice_and_a_plain_customer_message(
    service: Any, scenario: str, fields: dict[str, Any], status: str, agent: str, customer: str
) -> None:
    """The agent is told what to do now; the customer reads plain words with no internal terms."""
    body = await _order(service, scenario, origin="DAL1", **fields)
    assert body["status"] == status
    assert agent in body["agent_advice"]
    assert customer in body["customer_message"]
    message = body["customer_message"]
    assert not re.search(r"_|\{|\}|unknown|warehouse|internal|DAL1|tender", message), message


async def test_not_found_advice_asks_to_check_the_number(service: Any) -> None:
    """A number the carrier has no record of: check it with the customer; plain words for them."""
    body = await track_ok(service, number_of("fedex-not-found"))
    assert body["status"] == "not_found"
    assert "FedEx has no record of" in body["agent_advice"]
    assert "Check the number with the customer" in body["agent_advice"]
    assert body["customer_message"] == "We cannot find tracking for this number yet. Please check the number."


async def test_a_registered_label_the_carrier_does_not_know_is_never_not_found(service: Any) -> None:
    """Registered, a number FedEx has no record of is a label (not_tendered after the grace period)."""
    body = await _order(service, "fedex-not-found", label_created_at=hours_ago(60))
    assert body["status"] == "not_tendered"


async def test_not_tendered_advice_names_the_warehouse_and_the_age(service: Any) -> None:
    """The not_tendered advice says when the label was printed and which warehouse is flagged."""
    body = await _order(service, "ups-label-5d", origin="DAL1")
    assert "printed 5 days ago" in body["agent_advice"]
    assert "warehouse DAL1 has been flagged" in body["agent_advice"]


async def test_stalled_parcel_advice_names_the_last_scan(service: Any) -> None:
    """Stalled: the advice says since when nothing moved."""
    body = await _order(service, "usps-stalled")
    assert "No USPS scan since 6 days ago" in body["agent_advice"]
    assert "stalled" in body["flags"]
