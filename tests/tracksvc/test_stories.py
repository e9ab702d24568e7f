"""The seed stories (issue 3, item 6) on the real service with the carrier sandbox."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.tracksvc.registry_helpers import number_of, stalled_ids, track_ok
from tracksvc.dev import seed
from tracksvc.registry.store import Registry

STORIES = {story.key: story for story in seed.all_stories()}


@pytest.fixture
async def seeded(service: Any, redis_client: aioredis.Redis) -> Any:
    """The service with every story's orders and shipments registered."""
    await seed.seed(Registry(redis_client))
    return service


@pytest.mark.parametrize("key", list(STORIES))
async def test_every_story_answers_its_status_and_flags(seeded: Any, key: str) -> None:
    """Each story's reference answers the status and exactly the flags the story promises."""
    story = STORIES[key]
    body = await track_ok(seeded, story.reference)
    assert body["status"] == story.expect_status.value
    assert sorted(body["flags"]) == sorted(story.expect_flags)
    assert body["agent_advice"]
    assert body["customer_message"]


async def test_brooklyn_park_usps_label_the_internal_system_calls_shipped(seeded: Any) -> None:
    """Pasting the USPS number: not_tendered + internal_mismatch, with the number, the claim and advice."""
    number = number_of("usps-label-5d")
    body = await track_ok(seeded, number)
    assert body["matched"] == "tracking_number"
    assert body["order_number"] == "W2001001"
    assert body["status"] == "not_tendered"
    assert {"not_tendered", "internal_mismatch"} <= set(body["flags"])
    (usps,) = body["shipments"]
    assert (usps["carrier"], usps["tracking_number"]) == ("usps", number)
    assert usps["tracking_url"].endswith(number)
    assert usps["internal_status"] == "shipped"
    assert usps["internal_note"] == "Left Brooklyn Park on the 19th"
    assert {e["status"] for e in usps["events"]} == {"label_created"}  # pre-shipment events only
    assert number in body["agent_advice"]
    assert "USPS never scanned it" in body["agent_advice"]
    assert "Offer a reship or a refund on this call" in body["agent_advice"]
    assert "warehouse MSP1" in body["agent_advice"]
    assert "Brooklyn" not in body["customer_message"]


async def test_ups_label_printed_17_days_ago(seeded: Any) -> None:
    """not_tendered for 17 days: the answer says 17 days and advises to cancel or refund now."""
    body = await track_ok(seeded, "W2001002")
    assert body["status"] == "not_tendered"
    assert "17 days ago" in body["summary"]
    assert "17 days ago" in body["agent_advice"]
    assert "Cancel the label and refund the customer now" in body["agent_advice"]
    assert body["shipments"][0]["carrier"] == "ups"
    assert "shp-2001002-1" in await stalled_ids(seeded, origin="DAL1")


async def test_replaced_online_order_found_by_its_old_number_with_the_return(seeded: Any) -> None:
    """The old online number finds the store order and its shipment; the return is tracked too."""
    body = await track_ok(seeded, "W2001003")
    assert body["matched"] == "replaced_order"
    assert (body["order_number"], body["replaced_from"]) == ("S-4477-0192", "W2001003")
    assert "replaced_order" in body["flags"]
    assert "re-placed as order S-4477-0192" in body["agent_advice"]
    assert "S-4477-0192" in body["customer_message"]
    shipments = {s["direction"]: s for s in body["shipments"]}
    assert set(shipments) == {"outbound", "return"}
    assert shipments["outbound"]["carrier"] == "fedex"
    assert shipments["outbound"]["status"] == "in_transit"
    assert shipments["return"]["carrier"] == "usps"
    assert shipments["return"]["status"] == "in_transit"
    assert shipments["return"]["events"]
    rma = await track_ok(seeded, "RMA-88123")
    assert rma["matched"] == "alias"
    assert rma["order_number"] == "S-4477-0192"


async def test_marketplace_order_with_no_label_past_its_ship_by_date(seeded: Any) -> None:
    """Registered with no label and the promised ship date passed: awaiting_shipment + ship_by_missed."""
    body = await track_ok(seeded, "M-7781-2211")
    assert body["status"] == "awaiting_shipment"
    assert body["flags"] == ["ship_by_missed"]
    assert body["shipments"] == []
    assert "never shipped" in body["agent_advice"]
    assert "has not shipped yet" in body["customer_message"]


async def test_registered_usps_labels_usps_does_not_know_yet(seeded: Any) -> None:
    """USPS 'not yet available': label_created after an hour; not_tendered and listed after 3 days."""
    new = await track_ok(seeded, "W2001005")
    old = await track_ok(seeded, "W2001006")
    assert (new["status"], old["status"]) == ("label_created", "not_tendered")
    listed = await stalled_ids(seeded, origin="OAK1")
    assert "shp-2001006-1" in listed
    assert "shp-2001005-1" not in listed
