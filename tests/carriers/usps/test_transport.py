"""The USPS adapter against the sandbox over real loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from tenacity import wait_none

from carriers.base import RetryPolicy
from carriers.sandbox.scenarios import CATALOGUE, Scenario
from carriers.usps import Adapter
from tests.conftest import Sandbox
from tracksvc.core.errors import CarrierAuthError, CarrierResponseError, CarrierTimeout
from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.core.settings import Settings

USPS_SCENARIOS = [s for s in CATALOGUE if s.carrier is Carrier.usps]
BY_NAME = {s.name: s for s in USPS_SCENARIOS}

#: What the carrier data alone says; the age rules in tracksvc.domain.status do the rest.
CARRIER_LEVEL = {
    TrackingStatus.not_tendered: TrackingStatus.label_created,
    TrackingStatus.stalled: TrackingStatus.in_transit,
}

NO_WAIT = RetryPolicy(attempts=3, wait=wait_none())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session, closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def adapter_for(
    sandbox: Sandbox, session: aiohttp.ClientSession, make_settings: Callable[..., Settings]
) -> Callable[..., Adapter]:
    """Builds a USPS adapter pointed at the sandbox (settings overrides as kwargs)."""

    def build(retry: RetryPolicy = NO_WAIT, **overrides: Any) -> Adapter:
        settings = make_settings(base_url=sandbox.url, **overrides)
        return Adapter(session, settings.carrier(Carrier.usps), retry=retry)

    return build


async def _track_one(adapter: Adapter, number: str) -> TrackingResult | CarrierMessage:
    answer = await adapter.track([number])
    assert [number] == list(answer)
    return answer[number]


@pytest.mark.parametrize(
    "scenario", [s for s in USPS_SCENARIOS if s.fault is None], ids=lambda s: s.name
)
async def test_catalogue_scenario_parses_to_its_carrier_level_status(
    adapter_for: Callable[..., Adapter], scenario: Scenario
) -> None:
    """Each USPS scenario gives the status its expectation implies before the age rules."""
    answer = await _track_one(adapter_for(), scenario.number)
    if scenario.not_found:
        assert isinstance(answer, CarrierMessage)
        assert (Outcome.not_found, "150001") == (answer.outcome, answer.code)
        return
    assert isinstance(answer, TrackingResult)
    assert CARRIER_LEVEL.get(scenario.expect, scenario.expect) == answer.status
    assert answer.parse_warnings == []
    assert answer.label_created_at is not None
    if answer.status is TrackingStatus.label_created:
        assert answer.last_physical_scan_at is None
    else:
        assert answer.last_physical_scan_at is not None


async def test_label_age_survives_the_wire(adapter_for: Callable[..., Adapter]) -> None:
    """A label printed five days ago comes back five days old (to the minute)."""
    answer = await _track_one(adapter_for(), BY_NAME["usps-label-5d"].number)
    assert isinstance(answer, TrackingResult)
    assert answer.label_created_at is not None
    age_h = (time.time() - answer.label_created_at.timestamp()) / 3600
    assert 5 * 24 - 0.1 < age_h < 5 * 24 + 0.1


async def test_unknown_number_is_not_found(adapter_for: Callable[..., Adapter]) -> None:
    """A number the sandbox does not know answers like real v3: not_found 150001."""
    answer = await _track_one(adapter_for(), "9400100000000000000000")
    assert isinstance(answer, CarrierMessage)
    assert (Outcome.not_found, "150001") == (answer.outcome, answer.code)
    assert answer.message.startswith("12: A status update is not yet available")


async def test_burst_shares_one_token(sandbox: Sandbox, adapter_for: Callable[..., Adapter]) -> None:
    """Twenty concurrent lookups cost one token fetch and twenty tracking calls."""
    adapter = adapter_for()
    number = BY_NAME["usps-in-transit"].number
    answers = await asyncio.gather(*(adapter.track([number]) for _ in range(20)))
    assert all(isinstance(a[number], TrackingResult) for a in answers)
    assert sandbox.state.calls["usps:token"] == 1
    assert sandbox.state.calls["usps:track"] == 20


async def test_several_numbers_in_one_call(adapter_for: Callable[..., Adapter]) -> None:
    """A multi-number call answers every number (one GET each)."""
    numbers = [BY_NAME["usps-delivered"].number, BY_NAME["usps-not-found"].number]
    answer = await adapter_for().track(numbers)
    assert TrackingStatus.delivered == answer[numbers[0]].status  # type: ignore[union-attr]
    assert Outcome.not_found == answer[numbers[1]].outcome  # type: ignore[union-attr]


async def test_revoked_token_is_refreshed_once(
    sandbox: Sandbox, adapter_for: Callable[..., Adapter]
) -> None:
    """After USPS drops our token one refresh fetches a new one and the lookup succeeds."""
    adapter = adapter_for()
    number = BY_NAME["usps-delivered"].number
    await adapter.track([number])
    sandbox.state.revoke_tokens(Carrier.usps)
    answer = await _track_one(adapter, number)
    assert isinstance(answer, TrackingResult)
    assert sandbox.state.calls["usps:token"] == 2
    assert sandbox.state.calls["usps:track"] == 3


async def test_server_error_is_retried(sandbox: Sandbox, adapter_for: Callable[..., Adapter]) -> None:
    """One 500 then success: the lookup succeeds on the second call."""
    sandbox.state.queue_fault(Carrier.usps, "500", 1)
    answer = await _track_one(adapter_for(), BY_NAME["usps-in-transit"].number)
    assert TrackingStatus.in_transit == answer.status  # type: ignore[union-attr]
    assert sandbox.state.calls["usps:track"] == 2


async def test_rate_limit_waits_for_retry_after(
    sandbox: Sandbox, adapter_for: Callable[..., Adapter]
) -> None:
    """A 429 with Retry-After: 1 is retried no sooner than a second later."""
    sandbox.state.queue_fault(Carrier.usps, "429", 1, retry_after_s=1)
    started = time.monotonic()
    answer = await _track_one(adapter_for(), BY_NAME["usps-in-transit"].number)
    assert time.monotonic() - started >= 0.95
    assert isinstance(answer, TrackingResult)
    assert sandbox.state.calls["usps:track"] == 2


@pytest.mark.parametrize("how", ["scenario", "fault"])
async def test_malformed_json_raises(
    sandbox: Sandbox, adapter_for: Callable[..., Adapter], how: str
) -> None:
    """Broken JSON (scenario or injected fault) raises CarrierResponseError for that number."""
    number = BY_NAME["usps-malformed"].number
    if how == "fault":
        sandbox.state.queue_fault(Carrier.usps, "malformed", 1)
        number = BY_NAME["usps-in-transit"].number
    with pytest.raises(CarrierResponseError) as caught:
        await adapter_for().track([number])
    assert number == caught.value.tracking_number


async def test_hang_times_out(sandbox: Sandbox, adapter_for: Callable[..., Adapter]) -> None:
    """A carrier that does not answer within carrier_timeout_s raises CarrierTimeout."""
    sandbox.state.hang_s = 2
    sandbox.state.queue_fault(Carrier.usps, "hang", 1)
    adapter = adapter_for(retry=RetryPolicy(attempts=1, wait=wait_none()), carrier_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(CarrierTimeout):
        await adapter.track([BY_NAME["usps-in-transit"].number])
    assert time.monotonic() - started < 1.5


async def test_bad_credentials_raise_auth_error(
    sandbox: Sandbox, adapter_for: Callable[..., Adapter]
) -> None:
    """Credentials the token endpoint refuses raise CarrierAuthError, without tracking calls."""
    sandbox.state.credentials = {Carrier.usps: ("someone-else", "their-secret")}
    with pytest.raises(CarrierAuthError):
        await adapter_for().track([BY_NAME["usps-in-transit"].number])
    assert sandbox.state.calls["usps:track"] == 0


async def test_token_refused_by_tracking_raises_auth_error(
    sandbox: Sandbox, adapter_for: Callable[..., Adapter]
) -> None:
    """A 401 on tracking after one refresh ("client application identifier") is CarrierAuthError."""
    sandbox.state.queue_fault(Carrier.usps, "401", 2)
    with pytest.raises(CarrierAuthError):
        await adapter_for().track([BY_NAME["usps-in-transit"].number])
    assert sandbox.state.calls["usps:token"] == 2


async def test_token_endpoint_accepts_json_too(
    sandbox: Sandbox, session: aiohttp.ClientSession
) -> None:
    """The sandbox token endpoint takes a JSON body as the USPS README sends it."""
    body = {"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"}
    async with session.post(f"{sandbox.url}/oauth2/v3/token", json=body) as resp:
        token = await resp.json()
    assert resp.status == 200
    assert (token["token_type"], token["status"]) == ("Bearer", "approved")
    assert "tracking" in token["scope"].split()
    assert isinstance(token["expires_in"], int)


async def test_sandbox_speaks_v3_details(
    sandbox: Sandbox, session: aiohttp.ClientSession, adapter_for: Callable[..., Adapter]
) -> None:
    """The sandbox's raw DETAIL answer has the v3 field names and USPS's string booleans."""
    adapter = adapter_for()
    token = await adapter.transport.access_token()
    number = BY_NAME["usps-delivered"].number
    async with session.get(
        f"{sandbox.url}/tracking/v3/tracking/{number}",
        params={"expand": "DETAIL"},
        headers={"Authorization": f"Bearer {token}"},
    ) as resp:
        details = await resp.json()
    assert (
        details["statusCategory"], details["mailType"], details["RREEnabled"]
    ) == ("Delivered", "DM", "false")
    newest = details["trackingEvents"][0]
    assert {"eventType", "eventCode", "eventTimestamp", "GMTTimestamp", "GMTOffset", "eventCity",
            "eventState", "eventZIP", "eventCountry", "authorizedAgent"} <= set(newest)
    assert newest["eventCode"] == "01"
    assert newest["GMTTimestamp"].endswith("Z")
    assert "+" not in newest["eventTimestamp"]
    assert not newest["eventTimestamp"].endswith("Z")
