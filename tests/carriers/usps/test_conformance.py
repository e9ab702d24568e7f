"""Every public USPS sample (../shared/carrier-samples/usps) parses to its known meaning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest

from carriers.usps.tracking import TOKEN, parse_response
from tests.conftest import SAMPLES, load_sample
from tracksvc.core.errors import CarrierAuthError, CarrierRateLimited
from tracksvc.core.models import Outcome, TrackingStatus

SAMPLE_DIR = SAMPLES / "usps"


@dataclass(frozen=True)
class Details:
    """HTTP 200 tracking details: the normalized status and the newest event code."""

    status: TrackingStatus
    code: str
    delivered_at: datetime | None = None
    estimated_delivery: date | None = None


@dataclass(frozen=True)
class Message:
    """An error envelope at ``http``: a carrier message with this outcome and code."""

    http: int
    outcome: Outcome
    code: str


@dataclass(frozen=True)
class Raises:
    """A body that, fed with its HTTP status, is a whole-call failure."""

    http: int
    error: type[Exception]


@dataclass(frozen=True)
class Token:
    """A token response: TOKEN.read's answer."""

    token: str
    lifetime_s: float


@dataclass(frozen=True)
class TokenRefused:
    """A token response TOKEN.read refuses with ``error``."""

    error: type[Exception]


Expected = Details | Message | Raises | Token | TokenRefused

TABLE: dict[str, Expected] = {
    # Token without the tracking scope (issue #56): tracking would 401, so refuse it now.
    "USPS-api-examples_issue56__oauth_token_response_without_tracking_scope.json":
        TokenRefused(CarrierAuthError),
    # 401 "The client application identifier is invalid." (app lacks Tracking).
    "USPS-api-examples_issue56__v3_401_missing_tracking_scope.json":
        Raises(401, CarrierAuthError),
    # v3r2 TEM: label created, no data yet.
    "USPS-api-examples_issue82__v3r2_TEM_404_status_not_yet_available.json":
        Message(404, Outcome.not_found, "150006"),
    # OAuth invalid_client from the token endpoint.
    "karrio_test_tracking__AuthErrorResponse.json": Raises(401, CarrierAuthError),
    # Spec placeholder envelope ("string" codes): an unknown 400 sub-code rejects the number.
    "karrio_test_tracking__ErrorResponse.json": Message(400, Outcome.invalid_number, "string"),
    "karrio_test_tracking__TrackingResponse.json": Details(
        TrackingStatus.delivered, "01", delivered_at=datetime(2024, 11, 22, 18, 58, 40, tzinfo=UTC)
    ),
    # Shipments-API quota body; same envelope on tracking.
    "magento-quality-patches-issue154__shipments_v3_429_quota_exceeded.json":
        Raises(429, CarrierRateLimited),
    # GX, shipping-partner 80/81/82, then USPS scans up to 01.
    "omniship_mock_responses__track_usps_arrived_response.json": Details(
        TrackingStatus.delivered, "01", delivered_at=datetime(2024, 11, 23, 19, 10, 9, tzinfo=UTC)
    ),
    "omniship_mock_responses__track_usps_in_progress_response.json": Details(
        TrackingStatus.in_transit, "10", estimated_delivery=date(2024, 11, 29)
    ),
    "omniship_mock_responses__track_usps_not_found_response.json":
        Message(400, Outcome.not_found, "150001"),
    # expires_in as a string.
    "usps-api-examples_README_oauth_token_sample.json": Token("XXXXXXXXXXXXXXXXX", 11111.0),
    "usps-api-examples_README_tracking_detail_accepted.json":
        Details(TrackingStatus.in_transit, "03"),
}


def test_every_sample_is_in_the_table() -> None:
    """Each file in the USPS sample directory has an expected outcome, and no extra rows exist."""
    assert sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_file()) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_sample_means_what_the_table_says(name: str) -> None:
    """The sample parses (or fails) exactly as its table row says."""
    payload = load_sample("usps", name)
    expected = TABLE[name]
    number = payload.get("trackingNumber", "9400100000000000000000")
    if isinstance(expected, Details):
        results, messages = parse_response(200, payload, [number])
        assert messages == []
        result = results[0]
        assert (expected.status, expected.code) == (result.status, result.carrier_status_code)
        assert expected.delivered_at == result.delivered_at
        assert expected.estimated_delivery == result.estimated_delivery
        assert all(e.occurred_at is not None for e in result.events)
        assert all(e.occurred_at.tzinfo is not None for e in result.events if e.occurred_at)
    elif isinstance(expected, Message):
        results, messages = parse_response(expected.http, payload, [number])
        assert results == []
        assert (expected.outcome, expected.code) == (messages[0].outcome, messages[0].code)
    elif isinstance(expected, Raises):
        with pytest.raises(expected.error):
            parse_response(expected.http, payload, [number])
    elif isinstance(expected, Token):
        assert (expected.token, expected.lifetime_s) == TOKEN.read(payload)
    else:
        with pytest.raises(expected.error):
            TOKEN.read(payload)
