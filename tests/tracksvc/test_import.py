"""Bulk import: POST /v1/shipments/import (NDJSON and CSV, streamed) and the importer itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import ups_number
from tests.conftest import ADMIN, AGENT, INGEST, PORTAL, WAREHOUSE
from tests.tracksvc.registry_helpers import import_body, number_of, stalled_ids, track_ok
from tracksvc.registry.importer import MAX_LINE_BYTES, MAX_REPORTED_ERRORS, ImportFormat, import_lines
from tracksvc.registry.store import Registry, unscanned_key

LABEL_TIME = "2026-11-01T08:00:00Z"


def row(i: int, **fields: Any) -> dict[str, Any]:
    """One good NDJSON row for a fresh UPS number."""
    data: dict[str, Any] = {
        "shipment_id": f"imp-{i}", "order_number": f"W-I{i}", "carrier": "ups",
        "tracking_number": ups_number(100_000 + i), "label_created_at": LABEL_TIME, "origin": "DAL1",
    }
    data.update(fields)
    return data


def ndjson(*rows: dict[str, Any] | str) -> bytes:
    """Rows as NDJSON; a str is sent as the raw line."""
    return b"\n".join(r.encode() if isinstance(r, str) else orjson.dumps(r) for r in rows) + b"\n"


async def test_ndjson_keeps_good_rows_and_reports_bad_ones_by_line(service: Any) -> None:
    """Good rows are stored; each bad line is reported with its number and why; blank lines are skipped."""
    body = ndjson(
        row(1),
        "",
        row(2, carrier="dhl"),
        "{not json",
        "[1, 2]",
        row(3, tracking_number="1ZTRKSVC0100000025"),
        row(4, label_created_at="2026-11-01T08:00:00"),
        "   ",
        row(5, aliases=["RMA-5"]),
    )
    status, report = await import_body(service, body, "application/x-ndjson")
    assert status == 200
    assert (report["accepted"], report["rejected"]) == (2, 5)
    assert [(e["line"], [f["field"] for f in e["errors"]]) for e in report["errors"]] == [
        (3, ["carrier"]), (4, ["(row)"]), (5, ["(row)"]), (6, ["tracking_number"]), (7, ["label_created_at"]),
    ]
    assert "JSON object" in report["errors"][2]["errors"][0]["message"]
    assert report["errors_truncated"] is False
    assert report["row_limit_reached"] is False
    assert (await track_ok(service, "RMA-5"))["order_number"] == "W-I5"
    assert (await track_ok(service, "W-I1"))["matched"] == "order_number"


CSV_HEADER = (
    "shipment_id,order_number,carrier,tracking_number,label_created_at,origin,aliases,promised_delivery_date"
)


async def test_csv_with_header_aliases_and_empty_cells(service: Any) -> None:
    """CSV: a header row of field names, '|'-separated aliases, empty cells are absent values."""
    lines = [
        "\ufeff" + CSV_HEADER,
        f"imp-1,W-C1,ups,{ups_number(200_001)},{LABEL_TIME},DAL1,RMA-1|RMA-1B,",
        f'imp-2,W-C2,ups,"{ups_number(200_002)}",{LABEL_TIME},,,2026-11-09',
        f"imp-3,W-C3,ups,{ups_number(200_003)},{LABEL_TIME},DAL1",
        "",
        f"imp-4,W-C4,fedex,{ups_number(200_004)},{LABEL_TIME},DAL1,,",
        f"imp-5,W-C5,ups,{ups_number(200_005)},{LABEL_TIME},DAL1,,,extra",
    ]
    body = "\r\n".join(lines).encode()
    status, report = await import_body(service, body, "text/csv")
    assert status == 200
    assert (report["accepted"], report["rejected"]) == (2, 3)
    assert [(e["line"], e["errors"][0]["field"]) for e in report["errors"]] == [
        (4, "(row)"), (6, "tracking_number"), (7, "(row)"),
    ]
    assert "expected 8 cells, found 6" in report["errors"][0]["errors"][0]["message"]
    first = await track_ok(service, "RMA-1B")
    assert first["order_number"] == "W-C1"
    second = await track_ok(service, "imp-2")
    assert second["shipments"][0]["origin"] is None
    assert second["shipments"][0]["promised_delivery_date"] == "2026-11-09"


async def test_reimport_is_idempotent(service: Any, redis_client: aioredis.Redis) -> None:
    """Importing the same file twice leaves the same records, references and list."""
    body = ndjson(*(row(i, aliases=[f"RMA-{i}"]) for i in range(50)))
    _, first = await import_body(service, body, "application/x-ndjson")
    keys_after_first = sorted(await redis_client.keys("tracksvc:*"))
    values_first = [await redis_client.type(k) for k in keys_after_first]
    _, second = await import_body(service, body, "application/x-ndjson")
    assert first == second == {
        "accepted": 50, "rejected": 0, "errors": [], "errors_truncated": False, "row_limit_reached": False,
    }
    assert sorted(await redis_client.keys("tracksvc:*")) == keys_after_first
    assert [await redis_client.type(k) for k in keys_after_first] == values_first
    assert await redis_client.zcard(unscanned_key()) == 50
    assert len(await stalled_ids(service, limit=1000)) == 50


async def test_format_from_the_query_wins_and_unknown_types_are_422(service: Any) -> None:
    """?format= overrides the Content-Type; a body of unknown type is a 422 that says what to send."""
    body = ndjson(row(1))
    status, report = await import_body(service, body, "application/octet-stream", format="ndjson")
    assert (status, report["accepted"]) == (200, 1)
    status, error = await import_body(service, body, "application/octet-stream")
    assert status == 422
    assert "NDJSON" in error["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), (AGENT, 403), (WAREHOUSE, 403), (PORTAL, 403), (INGEST, 200), (ADMIN, 200)],
)
async def test_only_ingest_and_admin_keys_may_import(
    service: Any, headers: dict[str, str], status: int
) -> None:
    """Bulk import needs the ingest (or admin) role."""
    got, _ = await import_body(service, ndjson(row(1)), "application/x-ndjson", headers=headers)
    assert got == status


async def test_twenty_thousand_rows_stream_through_http(service: Any, redis_client: aioredis.Redis) -> None:
    """A large import is streamed in chunks (no length known up front) and every row lands."""
    count = 20_000

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, count, 2_000):
            yield ndjson(*(row(i) for i in range(start, start + 2_000)))

    status, report = await import_body(service, chunks(), "application/x-ndjson")
    assert status == 200
    assert (report["accepted"], report["rejected"]) == (count, 0)
    assert await redis_client.zcard(unscanned_key()) == count
    assert await redis_client.zcard(unscanned_key("DAL1")) == count
    assert (await track_ok(service, "imp-19999"))["order_number"] == "W-I19999"


async def test_an_endless_line_is_one_refused_row(service: Any) -> None:
    """A line past the size limit (sent across many chunks) is refused; the rows around it are kept."""
    huge = orjson.dumps(row(2, internal_note="x" * (3 * MAX_LINE_BYTES)))

    async def chunks() -> AsyncIterator[bytes]:
        body = ndjson(row(1)) + huge + b"\n" + ndjson(row(3))
        for start in range(0, len(body), 10_000):
            yield body[start:start + 10_000]

    status, report = await import_body(service, chunks(), "application/x-ndjson")
    assert status == 200
    assert (report["accepted"], report["rejected"]) == (2, 1)
    assert report["errors"][0]["line"] == 2
    assert "longer than" in report["errors"][0]["errors"][0]["message"]
    assert (await track_ok(service, "imp-3"))["order_number"] == "W-I3"


async def test_error_list_is_capped_but_counted(service: Any) -> None:
    """Past the reported-errors cap the count goes on and errors_truncated says so."""
    body = ndjson(*(row(i, carrier="dhl") for i in range(MAX_REPORTED_ERRORS + 5)), row(99_999))
    _, report = await import_body(service, body, "application/x-ndjson")
    assert report["rejected"] == MAX_REPORTED_ERRORS + 5
    assert len(report["errors"]) == MAX_REPORTED_ERRORS
    assert report["errors_truncated"] is True
    assert report["accepted"] == 1


async def _lines(body: bytes) -> AsyncIterator[bytes]:
    for line in body.split(b"\n"):
        yield line


async def test_row_limit_stops_reading_and_says_so(redis_client: aioredis.Redis) -> None:
    """Rows past the limit are not read; the report says the limit was reached."""
    registry = Registry(redis_client)
    body = ndjson(*(row(i) for i in range(10)))
    report = await import_lines(_lines(body), ImportFormat.ndjson, registry, max_rows=4)
    assert (report.accepted, report.rejected, report.truncated) == (4, 0, True)
    assert await redis_client.zcard(unscanned_key()) == 4
    exact = await import_lines(_lines(body), ImportFormat.ndjson, registry, max_rows=10)
    assert (exact.accepted, exact.truncated) == (10, False)


async def test_progress_is_reported_per_batch(redis_client: aioredis.Redis) -> None:
    """The progress callback hears the lines read, ending at the last line."""
    seen: list[int] = []
    body = ndjson(*(row(i) for i in range(2_500)))
    await import_lines(_lines(body), ImportFormat.ndjson, Registry(redis_client), progress=seen.append)
    assert seen == [1_000, 2_000, 2_501]


async def test_reimport_keeps_what_tracksvc_learned(service: Any, redis_client: aioredis.Redis) -> None:
    """A label the carrier scanned stays off the list when the warehouse re-imports it."""
    registry = Registry(redis_client)
    body = ndjson(row(1, tracking_number=number_of("ups-label-5d")))
    await import_body(service, body, "application/x-ndjson")
    record = await registry.get_shipment("imp-1")
    assert record is not None
    await registry.mark_scanned(record, 1_762_000_000.0)
    await import_body(service, body, "application/x-ndjson")
    again = await registry.get_shipment("imp-1")
    assert again is not None
    assert again.first_scan_at is not None
    assert await stalled_ids(service) == []
