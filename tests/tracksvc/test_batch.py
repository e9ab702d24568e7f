"""``POST /v1/track``: many references, each answered on its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from carriers.sandbox.scenarios import by_name
from tests.conftest import AGENT, Sandbox
from tests.contract import assert_matches
from tracksvc.api.routes.batch import MAX_REFERENCES, track_many
from tracksvc.core.errors import ReferenceNotFound
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.dev.seed import seed
from tracksvc.domain.views import TrackView
from tracksvc.registry.store import Registry

SCENARIOS = by_name()


async def batch(client: Any, body: Any) -> tuple[int, Any]:
    response = await client.post("/v1/track", json=body, headers=AGENT)
    payload = await response.json()
    assert_matches("/v1/track", "post", response.status, payload)
    return response.status, payload


def fake_view(reference: str) -> TrackView:
    return TrackView(
        reference=reference, matched="carrier_number", status=TrackingStatus.in_transit,
        summary="", agent_advice="", customer_message="", shipments=[],
    )


async def test_mixed_batch_answers_each_reference_in_order(
    service: Any, redis_client: aioredis.Redis
) -> None:
    """Good, bad and unknown references side by side: each gets its own answer, in order."""
    await seed(Registry(redis_client))
    references = [
        "W2001002", " ", "W1234567", SCENARIOS["fedex-in-transit"].number, 12, None, "A" * 65,
    ]
    status, body = await batch(service, {"references": references})
    assert status == 200
    results = body["results"]
    assert [r["reference"] for r in results] == [
        "W2001002", " ", "W1234567", SCENARIOS["fedex-in-transit"].number, "12", "null", "A" * 65,
    ]
    assert [r["ok"] for r in results] == [True, False, False, True, False, False, False]
    assert results[0]["view"]["status"] == "not_tendered"
    assert results[0]["view"]["order_number"] == "W2001002"
    assert results[3]["view"]["status"] == "in_transit"
    assert [r["error"]["code"] for r in results if not r["ok"]] == [
        "invalid_reference", "reference_not_found", "reference_not_found", "invalid_reference",
        "invalid_reference",
    ]


async def test_a_carrier_down_for_one_reference_spares_the_others(service: Any, sandbox: Sandbox) -> None:
    """USPS failing makes its reference unknown, with the reason; UPS answers as usual."""
    sandbox.state.queue_fault(Carrier.usps, "500", 50)
    usps = SCENARIOS["usps-delivered"].number
    ups = SCENARIOS["ups-label-5d"].number
    _, body = await batch(service, {"references": [usps, ups]})
    down, fine = body["results"]
    assert down["ok"]
    assert down["view"]["status"] == "unknown"
    assert down["view"]["shipments"][0]["reason"]
    assert fine["ok"]
    assert fine["view"]["status"] == "not_tendered"


async def test_one_hundred_references_are_accepted(service: Any) -> None:
    """The limit itself is fine: 100 results come back."""
    number = SCENARIOS["ups-in-transit"].number
    status, body = await batch(service, {"references": [number] * MAX_REFERENCES})
    assert status == 200
    assert len(body["results"]) == MAX_REFERENCES
    assert all(r["ok"] for r in body["results"])


@pytest.mark.parametrize(
    "body",
    [{"references": ["W1"] * (MAX_REFERENCES + 1)}, {"references": []}, {"references": "W1"},
     {}, {"references": ["W1"], "extra": 1}, ["W1"]],
    ids=["101", "empty", "not-a-list", "missing", "unknown-field", "not-an-object"],
)
async def test_malformed_batches_are_422(service: Any, body: Any) -> None:
    """Over 100, none, or not a list of references: 422 that says which field."""
    status, payload = await batch(service, body)
    assert status == 422
    assert payload["error"]["code"] == "validation_failed"


async def test_body_that_is_not_json_is_400(service: Any) -> None:
    """Broken JSON is a 400 with the parser's words."""
    response = await service.post("/v1/track", data=b"{references", headers=AGENT)
    assert response.status == 400
    assert_matches("/v1/track", "post", 400, await response.json())


async def test_lookups_run_concurrently() -> None:
    """Every lookup has started before any finishes (a sequential batch would never get past the gate)."""
    started: list[str] = []
    everyone_in = asyncio.Event()
    references = [f"REF{n}" for n in range(5)]

    async def track(reference: str) -> TrackView:
        started.append(reference)
        if len(started) == len(references):
            everyone_in.set()
        await everyone_in.wait()
        return fake_view(reference)

    async with asyncio.timeout(5):
        results = await track_many(references, track, concurrency=10)
    assert [r["reference"] for r in results] == references
    assert sorted(started) == references


async def test_concurrency_is_bounded() -> None:
    """No more than ``concurrency`` lookups are in flight at once."""
    in_flight = 0
    peak = 0

    async def track(reference: str) -> TrackView:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        in_flight -= 1
        return fake_view(reference)

    await track_many([f"R{n}" for n in range(12)], track, concurrency=3)
    assert peak == 3


async def test_a_reference_repeated_is_looked_up_once() -> None:
    """Duplicates share one lookup and each gets the answer in its place."""
    asked: list[str] = []

    async def track(reference: str) -> TrackView:
        asked.append(reference)
        return fake_view(reference)

    results = await track_many(["A", "B", "A", "A"], track, concurrency=4)
    assert sorted(asked) == ["A", "B"]
    assert [r["reference"] for r in results] == ["A", "B", "A", "A"]


async def test_an_unexpected_failure_stays_with_its_reference() -> None:
    """A crash in one lookup is that reference's internal_error; the rest answer."""

    async def track(reference: str) -> TrackView:
        if reference == "BOOM":
            raise RuntimeError("bug")
        if reference == "GONE":
            raise ReferenceNotFound("no such thing")
        return fake_view(reference)

    results = await track_many(["OK1", "BOOM", "GONE", "OK2"], track, concurrency=2)
    assert [r["ok"] for r in results] == [True, False, False, True]
    assert results[1]["error"]["code"] == "internal_error"
    assert "bug" not in results[1]["error"]["message"]
    assert results[2]["error"] == {"code": "reference_not_found", "message": "no such thing"}
