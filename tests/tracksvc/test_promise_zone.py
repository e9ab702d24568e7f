"""A promised delivery date ends at the end of that day in TRACKSVC_BUSINESS_TIMEZONE."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tracksvc.service.lookup import promise_deadline


def test_a_promised_day_ends_at_local_midnight_in_the_business_zone() -> None:
    """2026-11-23 in Chicago ends at 05:59:59.999999 UTC on the 24th, not at UTC midnight."""
    deadline = promise_deadline(date(2026, 11, 23), ZoneInfo("America/Chicago"))
    assert deadline is not None
    assert deadline.astimezone(UTC).replace(microsecond=0) == datetime(2026, 11, 24, 5, 59, 59, tzinfo=UTC)


def test_a_promised_day_in_utc_ends_at_utc_midnight() -> None:
    """With the default zone the promise ends just before 00:00 UTC the next day."""
    deadline = promise_deadline(date(2026, 11, 23), UTC)
    assert deadline is not None
    assert deadline.replace(microsecond=0) == datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)
    assert promise_deadline(None, UTC) is None


async def test_portal_finds_an_order_number_with_braces(service: object) -> None:
    """The portal route takes any one path segment, as the registry routes do."""
    from tests.conftest import INGEST, PORTAL

    client: Any = service
    body = {"ordered_at": "2026-11-20T10:00:00+00:00", "destination_postal_code": "55443"}
    put = await client.put("/v1/orders/W{7}1", json=body, headers=INGEST)
    assert put.status in (200, 201), await put.text()
    found = await client.get("/v1/portal/orders/W{7}1", params={"postal_code": "55443"}, headers=PORTAL)
    assert found.status == 200, await found.text()
