"""Every public UPS sample payload (../shared/carrier-samples/ups) parses as expected."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from carriers.ups.alerts import parse_track_alert
from carriers.ups.tracking import TOKEN, parse_response
from tests.conftest import SAMPLES, load_sample
from tracksvc.core.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierRateLimited,
)
from tracksvc.core.models import Outcome, TrackingStatus

ASKED = "1Z999AA10123456784"


@dataclass(frozen=True)
class Status:
    """A tracking answer (HTTP ``http``) whose one package has this normalized status."""

    status: TrackingStatus
    http: int = 200


@dataclass(frozen=True)
class Message:
    """A tracking answer that is a per-number outcome, not data."""

    outcome: Outcome
    http: int = 200


@dataclass(frozen=True)
class Raises:
    """A tracking answer that fails the whole call."""

    error: type[CarrierError]
    http: int


@dataclass(frozen=True)
class Token:
    """A token response: what ``TOKEN.read`` picks out."""

    token: str
    expires_in_s: float


@dataclass(frozen=True)
class Alert:
    """A Track Alert push and the status of the event it carries."""

    tracking_number: str
    status: TrackingStatus


Expected = Status | Message | Raises | Token | Alert

TABLE: dict[str, Expected] = {
    "UPS-API_api-documentation_UPSTrackAlert.yaml__webhook_example_1_out_for_delivery_message"
    "__converted_from_yaml.json": Alert("1Z204W4R0308071865", TrackingStatus.out_for_delivery),
    "UPS-API_api-documentation_UPSTrackAlert.yaml__webhook_example_2_delivery_message"
    "__converted_from_yaml.json": Alert("1Z204W4R0308071865", TrackingStatus.delivered),
    "UPS-API_api-documentation_issue102__HTTP200_TW0001_not_found.json": Message(
        Outcome.not_found
    ),
    # The 429 body is from the Paperless API; UPS uses one envelope everywhere.
    "UPS-API_api-documentation_issue123__paperless_429_too_many_requests.json": Raises(
        CarrierRateLimited, 429
    ),
    "java-api-examples_oauth_token_sample.json": Token("<generated token>", 14399.0),
    "java-api-examples_track_readme_sample_delivered.json": Status(TrackingStatus.delivered),
    # The HTTP status of the legacy access-licence error is not documented; 401 assumed.
    "karrio_test_tracking__AuthError.json": Raises(CarrierAuthError, 401),
    # TV1002's HTTP status (presumably 400) is not confirmed (carrier-apis.md 8.5).
    "karrio_test_tracking__InvalidTrackingNumberResponseJSON.json": Message(
        Outcome.invalid_number, 400
    ),
    "karrio_test_tracking__TrackingNumberNotFoundResponseJSON.json": Message(Outcome.not_found),
    # The spec example with placeholders: currentStatus.statusCode "003" decides, whatever
    # its text ("released by customs", simplified "Delivered") says.
    "karrio_test_tracking__TrackingResponseJSON.json": Status(TrackingStatus.label_created),
    # Customs clearance in progress (092) is a routine step, not an exception.
    "omniship_mock_responses__track_ups_left_not_arrived__converted_from_ruby_hash.json": Status(
        TrackingStatus.in_transit
    ),
    "omniship_mock_responses__track_ups_not_found_response__converted_from_ruby_hash.json": (
        Message(Outcome.not_found)
    ),
    "omniship_mock_responses__track_ups_response__converted_from_ruby_hash.json": Status(
        TrackingStatus.in_transit
    ),
}


def test_every_sample_file_is_in_the_table() -> None:
    """No UPS sample is skipped: the table names exactly the files on disk."""
    on_disk = {p.name for p in (SAMPLES / "ups").iterdir() if p.is_file()}
    assert on_disk == set(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_sample_parses_as_expected(name: str) -> None:
    """Each sample gives its documented normalized answer."""
    payload = load_sample("ups", name)
    expected = TABLE[name]
    match expected:
        case Status(status=status, http=http):
            results, messages = parse_response(http, payload, [ASKED])
            assert (messages, [r.status for r in results]) == ([], [status])
        case Message(outcome=outcome, http=http):
            results, messages = parse_response(http, payload, [ASKED])
            assert (results, [(m.outcome, m.tracking_number) for m in messages]) == (
                [],
                [(outcome, ASKED)],
            )
        case Raises(error=error, http=http):
            with pytest.raises(error):
                parse_response(http, payload, [ASKED])
        case Token(token=token, expires_in_s=expires_in_s):
            assert TOKEN.read(payload) == (token, expires_in_s)
        case Alert(tracking_number=number, status=status):
            got_number, event = parse_track_alert(payload)
            assert (got_number, event.status) == (number, status)
            assert event.occurred_at is not None


def test_delivered_sample_details() -> None:
    """The official delivered sample keeps its times, codes and trimmed description."""
    results, _ = parse_response(
        200, load_sample("ups", "java-api-examples_track_readme_sample_delivered.json"), [ASKED]
    )
    result = results[0]
    assert result.carrier_status_code == "D/F4/011"
    assert result.status_detail == "DELIVERED"
    assert result.delivered_at is not None
    assert result.delivered_at.isoformat() == "2022-01-26T16:30:00+00:00"
    assert result.label_created_at is not None
    assert result.label_created_at.isoformat() == "2022-01-26T15:16:41+00:00"
    assert [e.physical for e in result.events] == [True, False]


def test_international_sample_details() -> None:
    """The real SG/CN answer: 17 events newest first in UTC, last scan the customs event."""
    results, _ = parse_response(
        200,
        load_sample(
            "ups", "omniship_mock_responses__track_ups_response__converted_from_ruby_hash.json"
        ),
        [ASKED],
    )
    result = results[0]
    assert len(result.events) == 17
    assert result.carrier_status_code == "X//092"
    assert result.events[0].occurred_at is not None
    assert result.events[0].occurred_at.isoformat() == "2024-03-20T11:08:38+00:00"
    assert result.events[-1].code == "M/MP/003"
    assert result.label_created_at is not None
    assert result.label_created_at.isoformat() == "2024-03-18T11:49:17+00:00"
    times = [e.occurred_at for e in result.events if e.occurred_at is not None]
    assert times == sorted(times, reverse=True)
    assert result.parse_warnings == []
