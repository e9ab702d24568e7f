"""
The warehouse's actions (issue 11, item 4): marking a label voided, the labels
still worth voiding with their deadlines and money at stake, the ages chart,
and label_cost on the shipment record. Real HTTP, real Redis, contract-checked.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import ADMIN, AGENT, INGEST, PORTAL, WAREHOUSE
from tests.contract import assert_matches
from tests.tracksvc.registry_helpers import (
    get_checked,
    hours_ago,
    import_body,
    now,
    put_shipment,
    register,
    shipment,
    stalled,
    stalled_ids,
    track_ok,
)

DAY = 24.0


async def void(client: Any, shipment_id: str, headers: dict[str, str] = WAREHOUSE) -> tuple[int, Any]:
    """POST /v1/shipments/{id}/void, contract-checked."""
    response = await client.post(f"/v1/shipments/{shipment_id}/void", headers=headers)
    body = await response.json()
    assert_matches("/v1/shipments/{shipment_id}/void", "post", response.status, body)
    return response.status, body


async def to_void(client: Any, headers: dict[str, str] = WAREHOUSE, **query: Any) -> tuple[int, Any]:
    """GET /v1/labels/to-void as JSON, contract-checked."""
    return await get_checked(client, "/v1/labels/to-void", headers, **query)


async def to_void_ids(client: Any, **query: Any) -> list[str]:
    """Shipment ids of the labels to void, in the order answered."""
    status, body = await to_void(client, **query)
    assert status == 200, body
    return [row["shipment_id"] for row in body["labels"]]


async def ages(client: Any) -> Any:
    """GET /v1/labels/stalled/ages, contract-checked."""
    status, body = await get_checked(client, "/v1/labels/stalled/ages")
    assert status == 200, body
    return body


def label(sid: str, scenario: str, age_hours: float, **fields: Any) -> dict[str, Any]:
    """A label-only shipment printed ``age_hours`` ago at DAL1 (unless said otherwise)."""
    fields.setdefault("origin", "DAL1")
    return shipment(sid, scenario, label_created_at=hours_ago(age_hours), **fields)


def key_id_of(key: str) -> str:
    """The one-way id tracksvc records for a key (sha256, 16 hex digits)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


# -- POST /v1/shipments/{id}/void ------------------------------------------------


async def test_void_is_idempotent_audited_and_answers_the_same_record(service: Any) -> None:
    """First and second call: 200, the same record, who (role and key id, never the key) and when."""
    await register(service, label("shp-v1", "ups-label-5d", 5 * DAY))
    before = now()
    status, first = await void(service, "shp-v1")
    assert status == 200
    assert first["voided"] is True
    assert first["voided_by"] == f"warehouse:{key_id_of('warehouse-key')}"
    assert "warehouse-key" not in str(first)
    voided_at = datetime.fromisoformat(first["voided_at"])
    assert before - timedelta(seconds=1) <= voided_at <= now()
    await asyncio.sleep(0.01)
    status, second = await void(service, "shp-v1")
    assert status == 200
    assert second == first, "a second void answers the first one's who and when"


async def test_the_void_is_in_the_shipment_record_and_the_agent_view(service: Any) -> None:
    """The record as stored carries the void; the agent sees the shipment cancelled, not not_tendered."""
    await register(service, label("shp-v2", "ups-label-5d", 5 * DAY, order_number="W-V2"))
    assert (await track_ok(service, "W-V2"))["status"] == "not_tendered"
    _, voided = await void(service, "shp-v2")
    again = label("shp-v2", "ups-label-5d", 5 * DAY, order_number="W-V2")
    status, stored = await put_shipment(service, again)
    assert status == 200
    assert stored["voided"] is True, "the order system sending the label again keeps the warehouse's void"
    assert (stored["voided_at"], stored["voided_by"]) == (voided["voided_at"], voided["voided_by"])
    view = await track_ok(service, "W-V2")
    assert view["shipments"][0]["status"] == "cancelled"
    assert view["shipments"][0]["status_detail"].startswith("Label voided by the warehouse on ")
    assert view["shipments"][0]["status_since"] == voided["voided_at"]
    assert "not_tendered" not in view["flags"]
    assert "reship or a refund on this call" not in view["agent_advice"]


async def test_a_new_number_under_the_same_shipment_is_a_new_label_not_voided(service: Any) -> None:
    """The void belongs to the label: a re-sent record with another tracking number is not voided."""
    await register(service, label("shp-v3", "ups-label-5d", 5 * DAY))
    await void(service, "shp-v3")
    _, stored = await put_shipment(service, label("shp-v3", "ups-label-17d", 5 * DAY))
    assert stored["voided"] is False
    assert stored["voided_at"] is None
    assert "shp-v3" in await stalled_ids(service)
    _, again = await void(service, "shp-v3")
    assert again["voided"] is True
    assert again["voided_at"] is not None


async def test_a_void_takes_the_label_off_both_lists(service: Any) -> None:
    """Never picked up and to void before; on neither list after; the other label stays."""
    await register(
        service, label("shp-v4", "usps-label-5d", 5 * DAY), label("shp-v5", "usps-label-5d", 6 * DAY)
    )
    assert await stalled_ids(service) == ["shp-v5", "shp-v4"]
    assert await to_void_ids(service) == ["shp-v5", "shp-v4"]
    await void(service, "shp-v4")
    assert await stalled_ids(service) == ["shp-v5"]
    assert await to_void_ids(service) == ["shp-v5"]
    body = await ages(service)
    assert body["total"] == 1


async def test_concurrent_voids_keep_one_who_and_when(service: Any) -> None:
    """Five voids at once: one audit, answered by all five."""
    await register(service, label("shp-v6", "fedex-label-5d", 5 * DAY))
    answers = await asyncio.gather(*(void(service, "shp-v6", headers) for headers in [WAREHOUSE, ADMIN] * 3))
    assert {status for status, _ in answers} == {200}
    assert len({(body["voided_at"], body["voided_by"]) for _, body in answers}) == 1


async def test_unknown_shipment_is_404_and_nothing_is_written(service: Any, redis_client: Any) -> None:
    """An unknown id: 404 shipment_not_found, and no audit key left behind."""
    status, body = await void(service, "shp-nope")
    assert status == 404
    assert body["error"]["code"] == "shipment_not_found"
    assert await redis_client.keys("*shp-nope*") == []


@pytest.mark.parametrize(("headers", "status"), [(AGENT, 403), (INGEST, 403), (PORTAL, 403), ({}, 401)])
async def test_only_warehouse_and_admin_keys_void(
    service: Any, headers: dict[str, str], status: int
) -> None:
    """Other roles are refused and the label stays on the list; admin may void (recorded as admin)."""
    await register(service, label("shp-v7", "ups-label-5d", 5 * DAY))
    got, _ = await void(service, "shp-v7", headers)
    assert got == status
    assert await stalled_ids(service) == ["shp-v7"]
    got, body = await void(service, "shp-v7", ADMIN)
    assert got == 200
    assert body["voided_by"] == f"admin:{key_id_of('admin-key')}"


async def test_a_label_a_carrier_scanned_cannot_be_voided(service: Any) -> None:
    """409 label_picked_up saying when; the record stays unvoided."""
    await register(service, label("shp-v8", "ups-in-transit", 5 * DAY, first_scan_at=hours_ago(90)))
    status, body = await void(service, "shp-v8")
    assert status == 409
    assert body["error"]["code"] == "label_picked_up"
    assert "UPS scanned this parcel" in body["error"]["message"]
    _, stored = await put_shipment(service, label("shp-v8", "ups-in-transit", 5 * DAY))
    assert stored["voided"] is False


# -- GET /v1/labels/to-void --------------------------------------------------------


def deadline_of(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["void_deadline"])


async def test_each_carrier_window_decides_and_the_oldest_deadline_comes_first(service: Any) -> None:
    """Defaults UPS 90, FedEx 90, USPS 30 days: labels past theirs are not listed; deadlines sorted."""
    await register(
        service,
        label("ups-60d", "ups-label-5d", 60 * DAY),      # deadline in 30 days
        label("ups-100d", "ups-label-5d", 100 * DAY),    # UPS window closed 10 days ago
        label("fedex-85d", "fedex-label-5d", 85 * DAY),  # deadline in 5 days
        label("usps-20d", "usps-label-5d", 20 * DAY),    # deadline in 10 days
        label("usps-40d", "usps-label-5d", 40 * DAY),    # USPS window closed 10 days ago
        label("ups-1d", "ups-label-2h", 1 * DAY),        # inside the grace period: not never-tendered
        label("ret-5d", "ups-label-5d", 5 * DAY, direction="return"),  # returns wait on the customer
    )
    status, body = await to_void(service)
    assert status == 200
    assert [row["shipment_id"] for row in body["labels"]] == ["fedex-85d", "usps-20d", "ups-60d"]
    assert body["count"] == 3
    assert body["truncated"] is False
    by_id = {row["shipment_id"]: row for row in body["labels"]}
    for sid, days in (("fedex-85d", 90), ("usps-20d", 30), ("ups-60d", 90)):
        row = by_id[sid]
        assert deadline_of(row) - datetime.fromisoformat(row["label_created_at"]) == timedelta(days=days)
    assert 4.9 <= by_id["fedex-85d"]["days_left"] <= 5.1
    assert by_id["usps-20d"]["tracking_url"].startswith("https://tools.usps.com/")
    assert body["windows"]["usps"]["days"] == 30
    assert "USPS" in body["windows"]["usps"]["source"]


async def test_windows_are_settings(service_with: Any) -> None:
    """TRACKSVC_VOID_WINDOW_DAYS_*: a shorter USPS window drops the label; 0 lists none of that carrier."""
    client = await service_with(void_window_days_usps=10, void_window_days_fedex=0)
    await register(
        client,
        label("usps-8d", "usps-label-5d", 8 * DAY),
        label("usps-12d", "usps-label-5d", 12 * DAY),
        label("fedex-5d", "fedex-label-5d", 5 * DAY),
    )
    status, body = await to_void(client)
    assert status == 200
    assert [row["shipment_id"] for row in body["labels"]] == ["usps-8d"]
    assert 1.9 <= body["labels"][0]["days_left"] <= 2.1
    assert body["windows"]["fedex"]["days"] == 0


async def test_total_at_stake_per_currency_over_all_labels(service: Any) -> None:
    """Known costs summed per currency over every label listed (not one page); the rest counted."""
    await register(
        service,
        label("c1", "ups-label-5d", 5 * DAY, label_cost="7.35"),
        label("c2", "ups-label-5d", 6 * DAY, label_cost=12.1),
        label("c3", "fedex-label-5d", 7 * DAY, label_cost="3", label_cost_currency="cad"),
        label("c4", "usps-label-5d", 8 * DAY),
        label("c5", "usps-label-5d", 40 * DAY, label_cost="100"),  # past USPS's window: not at stake
    )
    status, body = await to_void(service, limit=1)
    assert status == 200
    assert len(body["labels"]) == 1
    assert body["truncated"] is True
    assert body["count"] == 4
    assert body["total_at_stake"] == [
        {"currency": "CAD", "amount": "3", "labels": 1},
        {"currency": "USD", "amount": "19.45", "labels": 2},
    ]
    assert body["labels_without_cost"] == 1
    _, full = await to_void(service)
    costs = {row["shipment_id"]: (row["label_cost"], row["label_cost_currency"]) for row in full["labels"]}
    assert costs == {"c1": ("7.35", "USD"), "c2": ("12.1", "USD"), "c3": ("3", "CAD"), "c4": (None, None)}


async def test_origin_filter(service: Any) -> None:
    """origin= narrows the list to one warehouse."""
    await register(
        service,
        label("o1", "ups-label-5d", 5 * DAY, origin="DAL1"),
        label("o2", "ups-label-5d", 6 * DAY, origin="MSP1"),
    )
    assert await to_void_ids(service, origin="MSP1") == ["o2"]
    assert await to_void_ids(service, origin="NOPE") == []


async def test_to_void_csv_is_safe_and_has_the_deadline(service: Any) -> None:
    """CSV with a header row, deadline first; a formula-like value is neutralized; every cell quoted."""
    hostile = label("=HYPERLINK(1)", "ups-label-5d", 5 * DAY, origin="@SUM(1)", label_cost="4.5")
    await register(service, hostile)
    response = await service.get("/v1/labels/to-void", headers={**WAREHOUSE, "Accept": "text/csv"})
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert 'filename="labels-to-void-' in response.headers["Content-Disposition"]
    text = await response.text()
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header[:3] == ["void_deadline", "days_left", "shipment_id"]
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row["shipment_id"] == "'=HYPERLINK(1)"
    assert row["origin"] == "'@SUM(1)"
    assert row["label_cost"] == "4.5"
    assert row["carrier_checked_at"] == "not yet checked"
    assert text.splitlines()[1].startswith('"')


@pytest.mark.parametrize(("headers", "status"), [(AGENT, 403), (INGEST, 403), ({}, 401), (ADMIN, 200)])
async def test_to_void_and_ages_roles(service: Any, headers: dict[str, str], status: int) -> None:
    """Warehouse (and admin) only, like the never-picked-up list."""
    for path in ("/v1/labels/to-void", "/v1/labels/stalled/ages"):
        response = await service.get(path, headers=headers)
        assert response.status == status, path


@pytest.mark.parametrize("limit", ["0", "abc", "1001", "-1"])
async def test_to_void_bad_limit_is_422(service: Any, limit: str) -> None:
    """A limit out of range is a clear 422, never a 500."""
    status, body = await to_void(service, limit=limit)
    assert status == 422
    assert "limit" in body["error"]["message"]


# -- GET /v1/labels/stalled/ages ---------------------------------------------------


async def test_ages_count_labels_per_origin_and_bucket(service: Any) -> None:
    """2-3 d, 3-7 d, > 7 d per origin; labels without an origin last; voided and young labels not counted."""
    await register(
        service,
        label("a1", "ups-label-5d", 2.5 * DAY, origin="DAL1"),
        label("a2", "ups-label-5d", 4 * DAY, origin="DAL1"),
        label("a3", "ups-label-5d", 6 * DAY, origin="DAL1"),
        label("a4", "ups-label-5d", 20 * DAY, origin="DAL1"),
        label("a5", "fedex-label-5d", 10 * DAY, origin="MSP1"),
        label("a6", "fedex-label-5d", 1 * DAY, origin="MSP1"),  # inside the grace period
        label("a7", "usps-label-5d", 3.5 * DAY, origin=None),
        label("a8", "usps-label-5d", 9 * DAY, origin="OAK1"),
    )
    await void(service, "a8")  # OAK1 has no label left: not shown
    body = await ages(service)
    assert [b["label"] for b in body["buckets"]] == ["2\u20133 d", "3\u20137 d", "> 7 d"]
    assert body["origins"] == [
        {"origin": "DAL1", "counts": [1, 2, 1], "total": 4},
        {"origin": "MSP1", "counts": [0, 0, 1], "total": 1},
        {"origin": None, "counts": [0, 1, 0], "total": 1},
    ]
    assert body["total"] == 6


async def test_ages_follow_the_grace_period(service_with: Any) -> None:
    """With a 96-hour grace period the first bucket is 4-7 days and a 3-day label is not counted."""
    client = await service_with(tender_grace_hours=96)
    await register(client, label("g1", "ups-label-5d", 3 * DAY), label("g2", "ups-label-5d", 5 * DAY))
    body = await ages(client)
    assert [b["label"] for b in body["buckets"]] == ["4\u20137 d", "> 7 d"]
    assert body["origins"] == [{"origin": "DAL1", "counts": [1, 0], "total": 1}]


# -- label_cost on the record -------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("7.35", "7.35"), (7.1, "7.1"), (0, "0"), ("1e3", "1000"), ("0.0001", "0.0001"), ("-0", "0")],
)
async def test_label_cost_is_a_non_negative_decimal(service: Any, sent: Any, stored: str) -> None:
    """Sent as a number or a string, stored and answered as a decimal string, in USD unless said."""
    status, body = await put_shipment(service, label("cost-ok", "ups-label-5d", 5 * DAY, label_cost=sent))
    assert status == 201, body
    assert body["label_cost"] == stored
    assert body["label_cost_currency"] == "USD"
    assert Decimal(body["label_cost"]) == Decimal(str(sent))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"label_cost": -1}, "label_cost"),
        ({"label_cost": "-0.01"}, "label_cost"),
        ({"label_cost": "abc"}, "label_cost"),
        ({"label_cost": "NaN"}, "label_cost"),
        ({"label_cost": "Infinity"}, "label_cost"),
        ({"label_cost": "1.23456"}, "label_cost"),
        ({"label_cost": 100001}, "label_cost"),
        ({"label_cost": True}, "label_cost"),
        ({"label_cost": [1]}, "label_cost"),
        ({"label_cost": "5", "label_cost_currency": "DOLLARS"}, "label_cost_currency"),
        ({"label_cost": "5", "label_cost_currency": "U$D"}, "label_cost_currency"),
    ],
)
async def test_a_bad_label_cost_is_a_422_naming_the_field(
    service: Any, fields: dict[str, Any], field: str
) -> None:
    """Negative, not a number, too precise, too large, a wrong currency: 422 naming the field."""
    status, body = await put_shipment(service, label("cost-bad", "ups-label-5d", 5 * DAY, **fields))
    assert status == 422
    assert field in body["error"]["message"]


async def test_the_import_takes_label_cost_and_refuses_a_bad_one_by_line(service: Any) -> None:
    """A label_cost CSV column: good rows stored, a bad row refused with its line; empty cell: no cost."""
    lines = [
        "shipment_id,order_number,carrier,tracking_number,label_created_at,origin,label_cost,label_cost_currency",
        f"imp-1,W-I1,ups,1ZTRKSVC0100000024,{hours_ago(5 * DAY)},DAL1,6.20,",
        f"imp-2,W-I2,ups,1ZTRKSVC0100000024,{hours_ago(5 * DAY)},DAL1,-3,",
        f"imp-3,W-I3,ups,1ZTRKSVC0100000024,{hours_ago(5 * DAY)},DAL1,,",
        f"imp-4,W-I4,usps,9400112345600000000025,{hours_ago(5 * DAY)},DAL1,2.5,EUR",
    ]
    status, report = await import_body(service, "\n".join(lines).encode(), "text/csv")
    assert status == 200
    assert (report["accepted"], report["rejected"]) == (3, 1)
    assert report["errors"][0]["line"] == 3
    assert report["errors"][0]["errors"][0]["field"] == "label_cost"
    _, body = await to_void(service)
    assert body["total_at_stake"] == [
        {"currency": "EUR", "amount": "2.5", "labels": 1},
        {"currency": "USD", "amount": "6.20", "labels": 1},
    ]
    assert body["labels_without_cost"] == 1


# -- the never-picked-up list ------------------------------------------------------------


async def test_never_picked_up_rows_carry_the_carrier_page_and_the_csv_says_so(service: Any) -> None:
    """Each row links to the carrier's public tracking page; the CSV is named never-picked-up."""
    await register(service, label("np-1", "fedex-label-5d", 5 * DAY))
    status, body = await stalled(service)
    assert status == 200
    assert body["labels"][0]["tracking_url"] == "https://www.fedex.com/fedextrack/?trknbr=790000000020"
    response = await service.get("/v1/labels/stalled", headers={**WAREHOUSE, "Accept": "text/csv"})
    assert 'filename="never-picked-up-labels-' in response.headers["Content-Disposition"]
