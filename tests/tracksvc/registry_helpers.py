"""Shared steps of the registry, order and warehouse-list tests: real HTTP, contract-checked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from carriers.sandbox.scenarios import by_name
from tests.conftest import AGENT, INGEST, WAREHOUSE
from tests.contract import assert_matches

SCENARIOS = by_name()


def now() -> datetime:
    """The current time, aware."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """An aware time as ISO 8601 text."""
    return moment.isoformat()


def hours_ago(hours: float) -> str:
    """ISO text of a time ``hours`` before now."""
    return iso(now() - timedelta(hours=hours))


def number_of(scenario: str) -> str:
    """The tracking number of a sandbox catalogue scenario."""
    return SCENARIOS[scenario].number


def carrier_of(scenario: str) -> str:
    """The carrier of a sandbox catalogue scenario."""
    return SCENARIOS[scenario].carrier.value


def shipment(shipment_id: str, scenario: str, **fields: Any) -> dict[str, Any]:
    """A shipment body for a catalogue number, label printed at the scenario's label time."""
    steps = SCENARIOS[scenario].steps
    label_age = next((age for step, age in steps if step.value == "label"), timedelta(hours=1))
    body: dict[str, Any] = {
        "carrier": carrier_of(scenario),
        "tracking_number": number_of(scenario),
        "label_created_at": iso(now() - label_age),
    }
    body.update(fields)
    body.setdefault("shipment_id", shipment_id)
    body.setdefault("order_number", f"ORD-{shipment_id}")  # every label belongs to an order
    return body


async def put_shipment(
    client: Any, body: dict[str, Any], *, path_id: str | None = None, headers: dict[str, str] = INGEST
) -> tuple[int, Any]:
    """PUT one shipment; the answer is checked against openapi.yaml."""
    sid = path_id if path_id is not None else body["shipment_id"]
    response = await client.put(f"/v1/shipments/{sid}", json=body, headers=headers)
    answer = await response.json()
    assert_matches("/v1/shipments/{shipment_id}", "put", response.status, answer)
    return response.status, answer


async def put_order(
    client: Any, body: dict[str, Any], *, path_number: str | None = None, headers: dict[str, str] = INGEST
) -> tuple[int, Any]:
    """PUT one order; the answer is checked against openapi.yaml."""
    number = path_number if path_number is not None else body["order_number"]
    response = await client.put(f"/v1/orders/{number}", json=body, headers=headers)
    answer = await response.json()
    assert_matches("/v1/orders/{order_number}", "put", response.status, answer)
    return response.status, answer


async def register(client: Any, *shipments: dict[str, Any], order: dict[str, Any] | None = None) -> None:
    """Register an order (optional) and shipments; every write must be accepted."""
    if order is not None:
        status, _ = await put_order(client, order)
        assert status in (200, 201)
    for body in shipments:
        status, answer = await put_shipment(client, body)
        assert status in (200, 201), answer


async def track(client: Any, reference: str, headers: dict[str, str] = AGENT) -> tuple[int, Any]:
    """GET /v1/track/{reference}, contract-checked."""
    response = await client.get(f"/v1/track/{reference}", headers=headers)
    body = await response.json()
    assert_matches("/v1/track/{reference}", "get", response.status, body)
    return response.status, body


async def track_ok(client: Any, reference: str) -> Any:
    """The agent view of a reference that must answer 200."""
    status, body = await track(client, reference)
    assert status == 200, body
    return body


async def get_checked(
    client: Any, path: str, headers: dict[str, str] = WAREHOUSE, **query: Any
) -> tuple[int, Any]:
    """GET ``path`` (a path without parameters) with ``query`` as JSON, contract-checked."""
    params = {k: str(v) for k, v in query.items()}
    response = await client.get(path, params=params, headers=headers)
    body = await response.json()
    assert_matches(path, "get", response.status, body)
    return response.status, body


async def stalled(
    client: Any, headers: dict[str, str] = WAREHOUSE, **query: Any
) -> tuple[int, Any]:
    """GET /v1/labels/stalled as JSON, contract-checked."""
    return await get_checked(client, "/v1/labels/stalled", headers, **query)


async def stalled_ids(client: Any, **query: Any) -> list[str]:
    """Shipment ids of one page of the warehouse list."""
    status, body = await stalled(client, **query)
    assert status == 200, body
    return [label["shipment_id"] for label in body["labels"]]


async def import_body(
    client: Any, body: bytes | Any, content_type: str, headers: dict[str, str] = INGEST, **query: str
) -> tuple[int, Any]:
    """POST /v1/shipments/import, contract-checked."""
    response = await client.post(
        "/v1/shipments/import", data=body, params=query,
        headers={**headers, "Content-Type": content_type},
    )
    answer = await response.json()
    assert_matches("/v1/shipments/import", "post", response.status, answer)
    return response.status, answer
