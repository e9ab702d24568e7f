"""The warehouse list of labels never scanned: GET /v1/labels/stalled, JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest

from carriers.sandbox.scenarios import Scenario, Step
from tests.conftest import ADMIN, AGENT, INGEST, PORTAL, WAREHOUSE, Sandbox
from tests.contract import assert_matches
from tests.tracksvc.registry_helpers import (
    SCENARIOS,
    hours_ago,
    iso,
    now,
    register,
    shipment,
    stalled,
    stalled_ids,
    track_ok,
)
from tracksvc.api.routes.track import STALLED_CSV_COLUMNS
from tracksvc.core.models import TrackingStatus

# shipment id -> (hours since the label, origin)
LABELS = {
    "shp-a": (100, "DAL1"),
    "shp-b": (60, "MSP1"),
    "shp-c": (200, "DAL1"),
    "shp-d": (10, "DAL1"),  # inside the 48-hour grace period
    "shp-e": (50, "OAK1"),
}


async def _labels(service: Any) -> None:
    await register(service, *(
        shipment(sid, "ups-label-5d", order_number=f"W-{sid}", origin=origin, label_created_at=hours_ago(age))
        for sid, (age, origin) in LABELS.items()
    ))


async def test_labels_past_the_grace_period_oldest_first(service: Any) -> None:
    """Default: labels older than the grace period, oldest first, in the design.md shape."""
    await _labels(service)
    status, body = await stalled(service)
    assert status == 200
    assert [label["shipment_id"] for label in body["labels"]] == ["shp-c", "shp-a", "shp-b", "shp-e"]
    assert body["next_cursor"] is None
    first = body["labels"][0]
    assert first["order_number"] == "W-shp-c"
    assert first["carrier"] == "ups"
    assert first["origin"] == "DAL1"
    assert 199.9 <= first["hours_since_label"] <= 200.1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"origin": "DAL1"}, ["shp-c", "shp-a"]),
        ({"origin": "OAK1"}, ["shp-e"]),
        ({"origin": "NOPE"}, []),
        ({"older_than_hours": 80}, ["shp-c", "shp-a"]),
        ({"older_than_hours": 0}, ["shp-c", "shp-a", "shp-b", "shp-e", "shp-d"]),
        ({"older_than_hours": 0, "origin": "DAL1"}, ["shp-c", "shp-a", "shp-d"]),
        ({"older_than_hours": 500}, []),
        ({"limit": 2}, ["shp-c", "shp-a"]),
    ],
)
async def test_filters(service: Any, query: dict[str, Any], expected: list[str]) -> None:
    """origin, older_than_hours and limit narrow the list."""
    await _labels(service)
    assert await stalled_ids(service, **query) == expected


async def test_grace_setting_is_the_default_age(service_with: Any) -> None:
    """TRACKSVC_TENDER_GRACE_HOURS is the default older_than_hours."""
    client = await service_with(tender_grace_hours=90)
    await _labels(client)
    assert await stalled_ids(client) == ["shp-c", "shp-a"]


async def test_voided_labels_are_not_listed(service: Any) -> None:
    """A label voided in our system leaves the list (and comes back if un-voided)."""
    await _labels(service)
    body = shipment("shp-a", "ups-label-5d", order_number="W-shp-a", origin="DAL1",
                    label_created_at=hours_ago(100))
    await register(service, {**body, "voided": True})
    assert "shp-a" not in await stalled_ids(service)
    assert "shp-a" not in await stalled_ids(service, origin="DAL1")
    await register(service, body)
    assert "shp-a" in await stalled_ids(service, origin="DAL1")


async def test_a_label_leaves_the_list_once_the_carrier_scans_it(service: Any, sandbox: Sandbox) -> None:
    """After the carrier shows a pickup, looking the order up takes the label off the list for good."""
    await _labels(service)
    number = SCENARIOS["ups-label-5d"].number
    assert "shp-b" in await stalled_ids(service)
    sandbox.state.add(Scenario(
        SCENARIOS["ups-label-5d"].carrier, number, "picked-up", TrackingStatus.in_transit,
        ((Step.label, timedelta(hours=60)), (Step.pickup, timedelta(hours=2))),
    ))
    body = await track_ok(service, "W-shp-b")
    assert body["status"] == "in_transit"
    assert "shp-b" not in await stalled_ids(service)
    assert "shp-b" not in await stalled_ids(service, origin="MSP1", older_than_hours=0)
    # The warehouse re-sending the record does not put it back.
    await register(service, shipment("shp-b", "ups-label-5d", order_number="W-shp-b", origin="MSP1",
                                     label_created_at=hours_ago(60)))
    assert "shp-b" not in await stalled_ids(service)


async def test_a_label_the_carrier_voided_leaves_the_list(service: Any) -> None:
    """A label UPS reports voided is cancelled and leaves the list once looked up."""
    await register(service, shipment("shp-v", "ups-voided", order_number="W-V", origin="DAL1"))
    assert await stalled_ids(service) == ["shp-v"]
    assert (await track_ok(service, "W-V"))["status"] == "cancelled"
    assert await stalled_ids(service) == []


async def test_a_label_still_unscanned_after_a_lookup_stays(service: Any) -> None:
    """Looking up a label-only shipment does not take it off the list."""
    await _labels(service)
    assert (await track_ok(service, "W-shp-c"))["status"] == "not_tendered"
    assert (await stalled_ids(service))[0] == "shp-c"


async def _many(service: Any, count: int, same_time_from: int) -> list[str]:
    """``count`` labels; from index ``same_time_from`` on they share one label time."""
    shared = now() - timedelta(hours=70)
    bodies = []
    for i in range(count):
        moment = shared if i >= same_time_from else now() - timedelta(hours=300 - i)
        bodies.append(shipment(f"shp-{i:03d}", "fedex-label-5d", label_created_at=iso(moment)))
    await register(service, *bodies)
    return [b["shipment_id"] for b in bodies]  # ids sort like label time, then id


@pytest.mark.parametrize("limit", [1, 4, 7, 30])
async def test_cursor_pages_have_no_duplicates_and_no_gaps(service: Any, limit: int) -> None:
    """Following next_cursor visits every label once, including many with the same label time."""
    expected = await _many(service, 30, same_time_from=12)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(40):
        query: dict[str, Any] = {"limit": limit}
        if cursor:
            query["cursor"] = cursor
        status, body = await stalled(service, **query)
        assert status == 200
        assert len(body["labels"]) <= limit
        seen.extend(label["shipment_id"] for label in body["labels"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_a_page_continues_right_after_the_cursor_even_if_labels_left_meanwhile(service: Any) -> None:
    """Labels leaving the list between pages (the cursor's own label too) cause no gap or repeat."""
    expected = await _many(service, 20, same_time_from=3)
    _, first = await stalled(service, limit=5)
    page = [label["shipment_id"] for label in first["labels"]]
    assert page == expected[:5]
    for gone in (page[-1], page[0]):  # the cursor's label, and one before it
        await register(service, shipment(gone, "fedex-label-5d", voided=True,
                                         label_created_at=hours_ago(70)))
    _, second = await stalled(service, limit=5, cursor=first["next_cursor"])
    assert [label["shipment_id"] for label in second["labels"]] == expected[5:10]


async def test_csv_with_a_header_row(service: Any) -> None:
    """Accept: text/csv answers CSV: a header row, then one row per label; the next cursor in a header."""
    await _labels(service)
    response = await service.get(
        "/v1/labels/stalled", params={"limit": "3"}, headers={**WAREHOUSE, "Accept": "text/csv"}
    )
    assert response.status == 200
    assert response.content_type == "text/csv"
    text = await response.text()
    assert_matches("/v1/labels/stalled", "get", 200, text, media="text/csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == STALLED_CSV_COLUMNS
    assert [row[0] for row in rows[1:]] == ["shp-c", "shp-a", "shp-b"]
    assert rows[1][2:4] == ["ups", SCENARIOS["ups-label-5d"].number]
    assert "attachment" in response.headers["Content-Disposition"]
    cursor = response.headers["X-Next-Cursor"]
    rest = await service.get(
        "/v1/labels/stalled", params={"cursor": cursor}, headers={**WAREHOUSE, "Accept": "text/csv"}
    )
    rest_rows = list(csv.reader(io.StringIO(await rest.text())))
    assert [row[0] for row in rest_rows[1:]] == ["shp-e"]
    assert "X-Next-Cursor" not in rest.headers


async def test_empty_csv_still_has_its_header(service: Any) -> None:
    """No labels: the CSV is just the header row."""
    response = await service.get("/v1/labels/stalled", headers={**ADMIN, "Accept": "text/csv"})
    assert await response.text() == ",".join(f'"{c}"' for c in STALLED_CSV_COLUMNS) + "\n"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (AGENT, 403), (PORTAL, 403), (INGEST, 403), (WAREHOUSE, 200), (ADMIN, 200)],
)
async def test_only_warehouse_and_admin_keys_see_the_list(
    service: Any, headers: dict[str, str], status: int
) -> None:
    """The list is for the warehouse role (and admin)."""
    got, body = await stalled(service, headers=headers)
    assert got == status
    if status != 200:
        assert body["error"]["code"] in {"unauthorized", "forbidden"}


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"}, {"limit": "1001"}, {"limit": "abc"}, {"limit": "nan"}, {"limit": "-3"},
        {"older_than_hours": "-1"}, {"older_than_hours": "abc"}, {"older_than_hours": "inf"},
        {"cursor": "not-a-cursor"}, {"cursor": "WzFd"}, {"cursor": "%%%"},
    ],
)
async def test_invalid_query_values_are_422_json(service: Any, query: dict[str, str]) -> None:
    """Values that make no sense are a 422 in the JSON error shape, never a 500."""
    await _labels(service)
    status, body = await stalled(service, **query)
    assert status == 422
    assert body["error"]["code"] == "validation_failed"
    assert body["error"]["message"]
