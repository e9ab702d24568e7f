"""The UPS adapter against the carrier sandbox over real loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs
from tenacity import wait_none

from carriers.base import RetryPolicy
from carriers.sandbox.scenarios import CATALOGUE, Scenario, Step
from carriers.ups import Adapter
from tests.conftest import Sandbox
from tracksvc.core.errors import (
    CarrierAuthError,
    CarrierResponseError,
    CarrierTimeout,
    CarrierUnavailable,
)
from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.core.settings import CarrierSettings

UPS_SCENARIOS = {s.name: s for s in CATALOGUE if s.carrier is Carrier.ups}
IN_TRANSIT = UPS_SCENARIOS["ups-in-transit"].number

#: Time-based statuses are decided above the adapter; at carrier level they are these.
CARRIER_LEVEL = {
    TrackingStatus.not_tendered: TrackingStatus.label_created,
    TrackingStatus.stalled: TrackingStatus.in_transit,
}


def fast(attempts: int = 3) -> RetryPolicy:
    """A retry policy without waiting."""
    return RetryPolicy(attempts=attempts, wait=wait_none())


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def ups_settings(sandbox: Sandbox, make_settings: Callable[..., Any]) -> CarrierSettings:
    settings: CarrierSettings = make_settings(base_url=sandbox.url).carrier(Carrier.ups)
    return settings


@pytest.fixture
def adapter(http: aiohttp.ClientSession, ups_settings: CarrierSettings) -> Adapter:
    return Adapter(http, ups_settings, retry=fast())


async def _result(adapter: Adapter, number: str) -> TrackingResult:
    answer = (await adapter.track([number]))[number]
    assert isinstance(answer, TrackingResult), answer
    return answer


@pytest.mark.parametrize("name", sorted(UPS_SCENARIOS))
async def test_catalogue_scenario_parses_consistently(
    name: str, adapter: Adapter, sandbox: Sandbox
) -> None:
    """Every UPS sandbox scenario reads as its expected status at carrier level."""
    scenario = UPS_SCENARIOS[name]
    if scenario.fault == "malformed":
        with pytest.raises(CarrierResponseError):
            await adapter.track([scenario.number])
        return
    answer = (await adapter.track([scenario.number]))[scenario.number]
    if scenario.not_found:
        assert isinstance(answer, CarrierMessage)
        assert answer.outcome is Outcome.not_found
        return
    assert isinstance(answer, TrackingResult)
    assert answer.status is CARRIER_LEVEL.get(scenario.expect, scenario.expect)
    assert len(answer.events) == len(scenario.steps)
    assert answer.tracking_number == scenario.number
    assert answer.parse_warnings == []


@pytest.mark.parametrize("name", ["ups-label-2h", "ups-label-5d", "ups-label-17d"])
async def test_label_only_scenarios_carry_the_label_time(name: str, adapter: Adapter) -> None:
    """label_created_at is the label step's time and there is no physical scan."""
    scenario = UPS_SCENARIOS[name]
    result = await _result(adapter, scenario.number)
    label_age = dict(scenario.steps)[Step.label]
    assert result.label_created_at is not None
    assert abs(result.label_created_at - (datetime.now(UTC) - label_age)) < timedelta(seconds=5)
    assert result.last_physical_scan_at is None


async def test_stalled_scenario_last_scan_is_six_days_old(adapter: Adapter) -> None:
    """The stalled parcel's newest physical scan is its arrival six days ago."""
    result = await _result(adapter, UPS_SCENARIOS["ups-stalled"].number)
    assert result.last_physical_scan_at is not None
    age = datetime.now(UTC) - result.last_physical_scan_at
    assert timedelta(days=6) - timedelta(minutes=1) < age < timedelta(days=6, minutes=1)


async def test_delivered_scenario_has_delivery_time(adapter: Adapter) -> None:
    """A delivered parcel reports when, from its D/F4/011 activity."""
    result = await _result(adapter, UPS_SCENARIOS["ups-delivered"].number)
    assert result.carrier_status_code == "D/F4/011"
    assert result.delivered_at is not None
    assert abs(result.delivered_at - (datetime.now(UTC) - timedelta(hours=9))) < timedelta(
        seconds=5
    )


async def test_in_transit_scenario_has_an_estimated_delivery(adapter: Adapter) -> None:
    """The SDD delivery date becomes estimated_delivery."""
    result = await _result(adapter, IN_TRANSIT)
    assert result.estimated_delivery is not None
    assert result.estimated_delivery > datetime.now(UTC).date()


async def test_burst_of_lookups_fetches_one_token(adapter: Adapter, sandbox: Sandbox) -> None:
    """Twenty concurrent lookups share a single token fetch."""
    numbers = [s.number for s in UPS_SCENARIOS.values() if s.fault is None]
    lookups = [adapter.track([numbers[i % len(numbers)]]) for i in range(20)]
    answers = await asyncio.gather(*lookups)
    assert len(answers) == 20
    assert sandbox.state.calls["ups:token"] == 1
    assert sandbox.state.calls["ups:track"] == 20


async def test_revoked_token_is_refreshed_once(adapter: Adapter, sandbox: Sandbox) -> None:
    """After UPS forgets our token, one refresh and one repeat call succeed."""
    await _result(adapter, IN_TRANSIT)
    assert sandbox.state.revoke_tokens(Carrier.ups) == 1
    result = await _result(adapter, IN_TRANSIT)
    assert result.status is TrackingStatus.in_transit
    assert sandbox.state.calls["ups:token"] == 2
    assert sandbox.state.calls["ups:track"] == 3


async def test_server_errors_are_retried(adapter: Adapter, sandbox: Sandbox) -> None:
    """Two 500s, then an answer: the lookup succeeds on the third call."""
    sandbox.state.queue_fault(Carrier.ups, "500", 2)
    result = await _result(adapter, IN_TRANSIT)
    assert result.status is TrackingStatus.in_transit
    assert sandbox.state.calls["ups:track"] == 3


async def test_rate_limit_waits_for_retry_after(adapter: Adapter, sandbox: Sandbox) -> None:
    """A 429 with Retry-After: 1 is waited out (even with a zero backoff), then succeeds."""
    sandbox.state.queue_fault(Carrier.ups, "429", 1, retry_after_s=1)
    started = time.monotonic()
    result = await _result(adapter, IN_TRANSIT)
    assert time.monotonic() - started >= 0.9
    assert result.status is TrackingStatus.in_transit
    assert sandbox.state.calls["ups:track"] == 2


async def test_persistent_server_errors_raise_unavailable(
    adapter: Adapter, sandbox: Sandbox
) -> None:
    """500 on every attempt ends in CarrierUnavailable after the policy's attempts."""
    sandbox.state.queue_fault(Carrier.ups, "500", 10)
    with pytest.raises(CarrierUnavailable):
        await adapter.track([IN_TRANSIT])
    assert sandbox.state.calls["ups:track"] == 3


async def test_malformed_body_raises_response_error(adapter: Adapter, sandbox: Sandbox) -> None:
    """Broken JSON from UPS is a CarrierResponseError, not retried."""
    sandbox.state.queue_fault(Carrier.ups, "malformed", 1)
    with pytest.raises(CarrierResponseError):
        await adapter.track([IN_TRANSIT])
    assert sandbox.state.calls["ups:track"] == 1


async def test_hanging_carrier_raises_timeout(
    http: aiohttp.ClientSession, sandbox: Sandbox, make_settings: Callable[..., Any]
) -> None:
    """A carrier that never answers ends in CarrierTimeout within the short timeout."""
    sandbox.state.hang_s = 1.0
    sandbox.state.queue_fault(Carrier.ups, "hang", 2)
    settings = make_settings(base_url=sandbox.url, carrier_timeout_s=0.3).carrier(Carrier.ups)
    started = time.monotonic()
    with pytest.raises(CarrierTimeout):
        await Adapter(http, settings, retry=fast(2)).track([IN_TRANSIT])
    assert time.monotonic() - started < 1.5
    assert sandbox.state.calls["ups:track"] == 2


async def test_bad_credentials_raise_auth_error(
    http: aiohttp.ClientSession, sandbox: Sandbox, make_settings: Callable[..., Any]
) -> None:
    """Credentials UPS refuses end in CarrierAuthError before any tracking call."""
    sandbox.state.credentials = {Carrier.ups: ("ups-test-id", "ups-test-secret")}
    settings = make_settings(base_url=sandbox.url, ups_client_secret="wrong").carrier(Carrier.ups)
    with pytest.raises(CarrierAuthError):
        await Adapter(http, settings, retry=fast()).track([IN_TRANSIT])
    assert sandbox.state.calls["ups:track"] == 0


async def test_right_credentials_are_accepted(adapter: Adapter, sandbox: Sandbox) -> None:
    """The configured id and secret, sent as HTTP Basic, get a token."""
    sandbox.state.credentials = {Carrier.ups: ("ups-test-id", "ups-test-secret")}
    assert (await _result(adapter, IN_TRANSIT)).status is TrackingStatus.in_transit


async def test_unknown_number_is_not_found(adapter: Adapter) -> None:
    """A number UPS has never seen is a not_found message (UPS: HTTP 200 + TW0001)."""
    number = "1ZTRKSVC019999999"
    answer = (await adapter.track([number]))[number]
    assert isinstance(answer, CarrierMessage)
    assert (answer.outcome, answer.code) == (Outcome.not_found, "TW0001")


async def test_impossible_number_is_invalid(adapter: Adapter) -> None:
    """A number too short for UPS is an invalid_number message (TV1002)."""
    answer = (await adapter.track(["1Z12"]))["1Z12"]
    assert isinstance(answer, CarrierMessage)
    assert (answer.outcome, answer.code) == (Outcome.invalid_number, "TV1002")


async def test_several_numbers_keep_per_number_answers(adapter: Adapter, sandbox: Sandbox) -> None:
    """One malformed answer among several becomes that number's message; the rest succeed."""
    broken = UPS_SCENARIOS["ups-malformed"].number
    delivered = UPS_SCENARIOS["ups-delivered"].number
    answer = await adapter.track([delivered, broken, delivered])
    assert set(answer) == {delivered, broken}
    delivered_answer, broken_answer = answer[delivered], answer[broken]
    assert isinstance(delivered_answer, TrackingResult)
    assert delivered_answer.status is TrackingStatus.delivered
    assert isinstance(broken_answer, CarrierMessage)
    assert broken_answer.outcome is Outcome.malformed
    assert sandbox.state.calls["ups:track"] == 2


async def test_added_scenario_is_rendered_in_ups_codes(adapter: Adapter, sandbox: Sandbox) -> None:
    """A void after a label reads as cancelled with the MV/VP/007 code."""
    sandbox.state.add(
        Scenario(
            Carrier.ups,
            "1ZTRKSVC010000777",
            "ups-test-void",
            TrackingStatus.cancelled,
            ((Step.label, timedelta(hours=5)), (Step.void, timedelta(hours=1))),
        )
    )
    result = await _result(adapter, "1ZTRKSVC010000777")
    assert (result.status, result.carrier_status_code) == (TrackingStatus.cancelled, "MV/VP/007")
    assert [e.physical for e in result.events] == [False, False]


async def test_sandbox_requires_transaction_headers(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    """Like UPS, the sandbox refuses a tracking call without transId/transactionSrc."""
    async with http.get(f"{sandbox.url}/api/track/v1/details/{IN_TRANSIT}") as resp:
        body = await resp.json()
    assert resp.status == 400
    assert body["response"]["errors"][0]["code"] == "VSS002"


async def test_token_answer_has_the_ups_shape(http: aiohttp.ClientSession, sandbox: Sandbox) -> None:
    """The sandbox token is UPS-shaped: string expires_in, issued_at in ms, approved."""
    auth = aiohttp.encode_basic_auth("ups-test-id", "ups-test-secret")
    async with http.post(
        f"{sandbox.url}/security/v1/oauth/token",
        headers={"Authorization": auth},
        data={"grant_type": "client_credentials"},
    ) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert isinstance(body["expires_in"], str)
    assert body["expires_in"].isdigit()
    assert isinstance(body["issued_at"], str)
    assert len(body["issued_at"]) == 13
    assert (body["token_type"], body["status"]) == ("Bearer", "approved")


async def test_secrets_stay_out_of_logs(adapter: Adapter, sandbox: Sandbox) -> None:
    """Neither the client secret nor the access token appears in any log event."""
    with capture_logs() as logs:
        await _result(adapter, IN_TRANSIT)
    token = next(iter(sandbox.state.tokens))
    text = repr(logs)
    assert "ups-test-secret" not in text
    assert token not in text


async def test_token_refusal_has_the_ups_error_envelope(
    http: aiohttp.ClientSession, sandbox: Sandbox
) -> None:
    """Refused credentials get 401 with UPS's {"response": {"errors": [...]}} and 250002."""
    sandbox.state.credentials = {Carrier.ups: ("ups-test-id", "ups-test-secret")}
    async with http.post(
        f"{sandbox.url}/security/v1/oauth/token",
        headers={"Authorization": aiohttp.encode_basic_auth("ups-test-id", "nope")},
        data={"grant_type": "client_credentials"},
    ) as resp:
        body = await resp.json()
    assert resp.status == 401
    assert body["response"]["errors"][0]["code"] == "250002"
    assert sandbox.state.calls["ups:token"] == 0
