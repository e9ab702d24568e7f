"""The sandbox's control routes and catalogue (what tests and the demo drive it with)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from carriers.sandbox.scenarios import CATALOGUE
from tests.conftest import Sandbox
from tracksvc.core.models import TrackingStatus
from tracksvc.domain import references


def test_catalogue_reaches_every_carrier_level_status() -> None:
    """Every normalized shipment status is reachable from the catalogue."""
    reachable = {s.expect for s in CATALOGUE}
    order_only = {TrackingStatus.awaiting_shipment}
    assert reachable == set(TrackingStatus) - order_only


@pytest.mark.parametrize("scenario", CATALOGUE, ids=[s.name for s in CATALOGUE])
def test_catalogue_numbers_are_valid_for_their_carrier(scenario: Any) -> None:
    """Each sandbox number passes its carrier's format and check digit, unchanged."""
    found = [c for c in references.candidates(scenario.number) if c.carrier is scenario.carrier]
    assert [c.number for c in found][:1] == [scenario.number]


def test_catalogue_numbers_and_names_are_unique() -> None:
    """No number or name is used twice."""
    assert len({s.number for s in CATALOGUE}) == len(CATALOGUE)
    assert len({s.name for s in CATALOGUE}) == len(CATALOGUE)


async def _post(url: str, body: object) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        return response.status, await response.json()


async def test_scenarios_are_listed_with_expectations(sandbox: Sandbox) -> None:
    """GET /_sandbox/scenarios lists every number with its expected status."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.url}/_sandbox/scenarios") as response,
    ):
        body = await response.json()
    listed = {s["number"]: s["expect"] for s in body["scenarios"]}
    assert listed == {s.number: s.expect.value for s in CATALOGUE}


async def test_faults_latency_and_scenarios_can_be_set_over_http(sandbox: Sandbox) -> None:
    """Control routes queue faults, set latency and add scenarios; bad input is a 400."""
    status, _ = await _post(f"{sandbox.url}/_sandbox/faults", {"carrier": "ups", "mode": "429", "count": 2})
    assert status == 200
    assert sandbox.state.faults[references.Carrier.ups][0].remaining == 2
    status, _ = await _post(f"{sandbox.url}/_sandbox/latency", {"latency_ms": 250})
    assert (status, sandbox.state.latency_s) == (200, 0.25)
    status, _ = await _post(
        f"{sandbox.url}/_sandbox/scenarios",
        {"carrier": "usps", "number": "9400112345600000099999", "steps": [["label", 30]]},
    )
    assert status == 201
    assert sandbox.state.scenario(references.Carrier.usps, "9400112345600000099999") is not None
    status, body = await _post(f"{sandbox.url}/_sandbox/faults", {"carrier": "ups", "mode": "explode"})
    assert status == 400
    assert "modes" in body["error"]
    status, _ = await _post(f"{sandbox.url}/_sandbox/scenarios", {"carrier": "dhl", "number": "1"})
    assert status == 400
