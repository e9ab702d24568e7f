"""The FedEx adapter against the sandbox over real HTTP: scenarios, batching, tokens, faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from tenacity import wait_none

from carriers.base import RetryPolicy
from carriers.fedex import Adapter
from carriers.sandbox.scenarios import CATALOGUE, fedex_number
from tests.conftest import Sandbox
from tracksvc.core.errors import CarrierAuthError, CarrierResponseError, CarrierTimeout
from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.core.settings import Settings

FEDEX_SCENARIOS = [s for s in CATALOGUE if s.carrier is Carrier.fedex]

#: What the carrier alone can say; time-based statuses are decided later in tracksvc.status.
CARRIER_LEVEL = {
    TrackingStatus.not_tendered: TrackingStatus.label_created,
    TrackingStatus.stalled: TrackingStatus.in_transit,
}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def make_adapter(
    sandbox: Sandbox, session: aiohttp.ClientSession, make_settings: Callable[..., Settings]
) -> Callable[..., Adapter]:
    def factory(attempts: int = 3, **overrides: Any) -> Adapter:
        settings = make_settings(base_url=sandbox.url, **overrides).carrier(Carrier.fedex)
        return Adapter(session, settings, retry=RetryPolicy(attempts=attempts, wait=wait_none()))

    return factory


def scenario_number(name: str) -> str:
    return next(s.number for s in FEDEX_SCENARIOS if s.name == name)


@pytest.mark.parametrize("scenario", FEDEX_SCENARIOS, ids=[s.name for s in FEDEX_SCENARIOS])
async def test_catalogue_scenario(scenario: Any, make_adapter: Callable[..., Adapter]) -> None:
    """Each FedEx scenario parses to the carrier-level form of its expected status."""
    adapter = make_adapter()
    if scenario.fault == "malformed":
        with pytest.raises(CarrierResponseError):
            await adapter.track([scenario.number])
        return
    answer = (await adapter.track([scenario.number]))[scenario.number]
    if scenario.not_found:
        assert isinstance(answer, CarrierMessage)
        assert answer.outcome == Outcome.not_found
        return
    assert isinstance(answer, TrackingResult)
    assert answer.status == CARRIER_LEVEL.get(scenario.expect, scenario.expect)
    assert answer.parse_warnings == []
    assert len(answer.events) == len(scenario.steps)


async def test_whole_catalogue_in_one_call(sandbox: Sandbox, make_adapter: Callable[..., Adapter]) -> None:
    """All well-behaved scenarios fit in one call and come back with their own statuses."""
    scenarios = [s for s in FEDEX_SCENARIOS if s.fault is None]
    answer = await make_adapter().track([s.number for s in scenarios])
    assert sandbox.state.calls["fedex:track"] == 1
    for s in scenarios:
        item = answer[s.number]
        want = Outcome.not_found if s.not_found else CARRIER_LEVEL.get(s.expect, s.expect)
        assert (item.outcome if isinstance(item, CarrierMessage) else item.status) == want, s.name


async def test_label_only_details(make_adapter: Callable[..., Adapter]) -> None:
    """A fresh label: OC code, label time about two hours ago, an ETA, no physical scan."""
    number = scenario_number("fedex-label-2h")
    result = (await make_adapter().track([number]))[number]
    assert isinstance(result, TrackingResult)
    assert result.carrier_status_code == "OC"
    assert result.label_created_at is not None
    assert 1.9 * 3600 < time.time() - result.label_created_at.timestamp() < 2.1 * 3600
    assert result.estimated_delivery is not None
    assert result.last_physical_scan_at is None


async def test_delivered_and_stalled_details(make_adapter: Callable[..., Adapter]) -> None:
    """Delivered has delivered_at; stalled's newest physical scan is six days old."""
    delivered, stalled = scenario_number("fedex-delivered"), scenario_number("fedex-stalled")
    answer = await make_adapter().track([delivered, stalled])
    d, s = answer[delivered], answer[stalled]
    assert isinstance(d, TrackingResult)
    assert isinstance(s, TrackingResult)
    assert d.delivered_at is not None
    assert s.last_physical_scan_at is not None
    assert 5.9 < (time.time() - s.last_physical_scan_at.timestamp()) / 86400 < 6.1


async def test_forty_numbers_make_two_calls(sandbox: Sandbox, make_adapter: Callable[..., Adapter]) -> None:
    """40 numbers are split 30 + 10 and every number is answered."""
    numbers = [fedex_number(100 + i) for i in range(40)]
    answer = await make_adapter().track(numbers)
    assert sandbox.state.calls["fedex:track"] == 2
    assert sandbox.state.numbers_asked["fedex"] == 40
    assert set(answer) == set(numbers)
    assert {a.outcome for a in answer.values() if isinstance(a, CarrierMessage)} == {Outcome.not_found}


async def test_burst_shares_one_token(sandbox: Sandbox, make_adapter: Callable[..., Adapter]) -> None:
    """20 concurrent track calls on one adapter fetch the token once."""
    adapter = make_adapter()
    number = scenario_number("fedex-in-transit")
    answers = await asyncio.gather(*(adapter.track([number]) for _ in range(20)))
    assert sandbox.state.calls["fedex:token"] == 1
    assert sandbox.state.calls["fedex:track"] == 20
    assert all(isinstance(a[number], TrackingResult) for a in answers)


async def test_revoked_token_is_refreshed_once(
    sandbox: Sandbox, make_adapter: Callable[..., Adapter]
) -> None:
    """A revoked token costs one refresh and the call still succeeds."""
    adapter = make_adapter()
    number = scenario_number("fedex-in-transit")
    await adapter.track([number])
    sandbox.state.revoke_tokens(Carrier.fedex)
    answer = await adapter.track([number])
    assert isinstance(answer[number], TrackingResult)
    assert sandbox.state.calls["fedex:token"] == 2
    assert sandbox.state.calls["fedex:track"] == 3


async def test_500_then_success(sandbox: Sandbox, make_adapter: Callable[..., Adapter]) -> None:
    """One 500 is retried and the second call answers."""
    sandbox.state.queue_fault(Carrier.fedex, "500", 1)
    number = scenario_number("fedex-delivered")
    answer = await make_adapter().track([number])
    assert isinstance(answer[number], TrackingResult)
    assert sandbox.state.calls["fedex:track"] == 2


async def test_429_retry_after_is_honoured(sandbox: Sandbox, make_adapter: Callable[..., Adapter]) -> None:
    """A 429 with Retry-After: 1 waits about a second (even with a zero-wait policy), then succeeds."""
    sandbox.state.queue_fault(Carrier.fedex, "429", 1, retry_after_s=1)
    number = scenario_number("fedex-delivered")
    started = time.monotonic()
    answer = await make_adapter().track([number])
    assert time.monotonic() - started >= 0.9
    assert isinstance(answer[number], TrackingResult)
    assert sandbox.state.calls["fedex:track"] == 2


async def test_malformed_body_raises_response_error(make_adapter: Callable[..., Adapter]) -> None:
    """A batch holding the malformed scenario fails as a whole with CarrierResponseError."""
    with pytest.raises(CarrierResponseError):
        await make_adapter().track([scenario_number("fedex-malformed"), scenario_number("fedex-delivered")])


async def test_hang_times_out(sandbox: Sandbox, make_adapter: Callable[..., Adapter]) -> None:
    """A carrier that never answers raises CarrierTimeout after the configured timeout."""
    sandbox.state.hang_s = 2
    sandbox.state.queue_fault(Carrier.fedex, "hang", 1)
    adapter = make_adapter(attempts=1, carrier_timeout_s=0.3)
    await adapter.transport.access_token()  # the token call itself must not hit the fault
    started = time.monotonic()
    with pytest.raises(CarrierTimeout):
        await adapter.track([scenario_number("fedex-delivered")])
    assert time.monotonic() - started < 1.5


async def test_bad_credentials_raise_auth_error(
    sandbox: Sandbox, make_adapter: Callable[..., Adapter]
) -> None:
    """Credentials FedEx refuses raise CarrierAuthError and no tracking call is made."""
    sandbox.state.credentials = {Carrier.fedex: ("real-id", "real-secret")}
    with pytest.raises(CarrierAuthError):
        await make_adapter().track([scenario_number("fedex-delivered")])
    assert sandbox.state.calls["fedex:track"] == 0


async def test_not_found_does_not_fail_the_batch(make_adapter: Callable[..., Adapter]) -> None:
    """One unknown number in a batch is not_found; the others still get results."""
    found = [scenario_number("fedex-delivered"), scenario_number("fedex-in-transit")]
    unknown = fedex_number(999)
    answer = await make_adapter().track([found[0], unknown, found[1]])
    assert [type(answer[n]) for n in found] == [TrackingResult, TrackingResult]
    missing = answer[unknown]
    assert isinstance(missing, CarrierMessage)
    assert missing.outcome == Outcome.not_found


async def test_one_failed_batch_keeps_the_other(
    sandbox: Sandbox, make_adapter: Callable[..., Adapter]
) -> None:
    """With 40 numbers and one call failing, that batch's numbers say unavailable, the rest answer."""
    sandbox.state.queue_fault(Carrier.fedex, "503", 1)
    numbers = [scenario_number("fedex-delivered"), *(fedex_number(200 + i) for i in range(39))]
    answer = await make_adapter(attempts=1).track(numbers)
    unavailable = [
        n for n, a in answer.items() if isinstance(a, CarrierMessage) and a.outcome == Outcome.unavailable
    ]
    assert len(unavailable) in (10, 30)
    assert len(answer) == 40


async def test_duplicate_numbers_are_asked_once(
    sandbox: Sandbox, make_adapter: Callable[..., Adapter]
) -> None:
    """Asking the same number twice sends it once."""
    number = scenario_number("fedex-delivered")
    answer = await make_adapter().track([number, number])
    assert list(answer) == [number]
    assert sandbox.state.numbers_asked["fedex"] == 1


# -- the sandbox speaks FedEx ---------------------------------------------------------


async def _token(session: aiohttp.ClientSession, sandbox: Sandbox) -> str:
    async with session.post(
        f"{sandbox.url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"},
    ) as resp:
        body = await resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert isinstance(body["expires_in"], int)
    assert body["token_type"] == "bearer"
    return str(body["access_token"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"includeDetailedScans": True, "trackingInfo": []}, "TRACKING.TRACKINGNUMBER.EMPTY"),
        (
            {"includeDetailedScans": True, "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": ""}}]},
            "TRACKING.TRACKINGNUMBER.EMPTY",
        ),
        (
            {
                "includeDetailedScans": True,
                "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": str(n)}} for n in range(31)],
            },
            "INVALID.INPUT.EXCEPTION",
        ),
        ({"trackingInfo": [{"trackingNumberInfo": {"trackingNumber": "1"}}]}, "INVALID.INPUT.EXCEPTION"),
    ],
    ids=["no-numbers", "empty-number", "thirty-one", "no-detailed-scans"],
)
async def test_sandbox_rejects_bad_bodies(
    sandbox: Sandbox, session: aiohttp.ClientSession, body: dict[str, Any], code: str
) -> None:
    """The sandbox answers invalid track bodies with FedEx's 400 error envelope."""
    token = await _token(session, sandbox)
    async with session.post(
        f"{sandbox.url}/track/v1/trackingnumbers", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 400
        payload = await resp.json()
    assert [e["code"] for e in payload["errors"]] == [code]
    assert "transactionId" in payload


async def test_sandbox_bad_credentials_envelope(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    """Refused credentials get 401 with FedEx's NOT.AUTHORIZED.ERROR envelope."""
    sandbox.state.credentials = {Carrier.fedex: ("real-id", "real-secret")}
    async with session.post(
        f"{sandbox.url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "id", "client_secret": "nope"},
    ) as resp:
        assert resp.status == 401
        payload = await resp.json()
    assert [e["code"] for e in payload["errors"]] == ["NOT.AUTHORIZED.ERROR"]


async def test_sandbox_scans_are_fedex_shaped(sandbox: Sandbox, session: aiohttp.ClientSession) -> None:
    """Scans carry ISO dates with an offset, FedEx codes and derived codes, newest first."""
    token = await _token(session, sandbox)
    number = scenario_number("fedex-out-for-delivery")
    body = {
        "includeDetailedScans": True,
        "trackingInfo": [{"trackingNumberInfo": {"trackingNumber": number}}],
    }
    async with session.post(
        f"{sandbox.url}/track/v1/trackingnumbers", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        payload = await resp.json()
    result = payload["output"]["completeTrackResults"][0]["trackResults"][0]
    assert [e["eventType"] for e in result["scanEvents"]] == ["OD", "AR", "DP", "AR", "PU", "OC"]
    assert result["scanEvents"][0]["derivedStatusCode"] == "IT"
    assert result["latestStatusDetail"]["code"] == "OD"
    assert all(e["date"][-6] in "+-" for e in result["scanEvents"])
    assert {d["type"] for d in result["dateAndTimes"]} >= {"ACTUAL_PICKUP", "ESTIMATED_DELIVERY"}
