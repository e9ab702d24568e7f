"""Pure UPS request building and response parsing (no HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from carriers.ups.alerts import parse_track_alert, scheduled_delivery
from carriers.ups.tracking import build_request, parse_response
from tracksvc.core.errors import (
    CarrierAuthError,
    CarrierRateLimited,
    CarrierResponseError,
    CarrierUnavailable,
)
from tracksvc.core.models import Carrier, CarrierMessage, Location, Outcome, TrackingStatus
from tracksvc.core.settings import CarrierSettings

NUMBER = "1Z999AA10123456784"
LABEL_TEXT = "Shipper created a label, UPS has not received the package yet. "


def _settings() -> CarrierSettings:
    return CarrierSettings(
        carrier=Carrier.ups,
        base_url="https://wwwcie.ups.com",
        client_id=SecretStr("id"),
        client_secret=SecretStr("secret"),
        timeout_s=3,
        connect_timeout_s=1,
        retry_attempts=3,
        token_refresh_buffer_s=300,
        transaction_src="tracksvc-test",
    )


def _activity(
    status_type: str | None,
    code: str | None,
    status_code: str | None,
    when: str = "20250905 18:06:22",
    description: str = "",
    **extra: Any,
) -> dict[str, Any]:
    status = {"type": status_type, "code": code, "statusCode": status_code}
    gmt_date, gmt_time = when.split()
    return {
        "location": {"address": {"city": "PARAMUS", "stateProvince": "NJ", "countryCode": "US"}},
        "status": {"description": description, **{k: v for k, v in status.items() if v}},
        "gmtDate": gmt_date,
        "gmtTime": gmt_time,
        **extra,
    }


def _answer(*activities: dict[str, Any], **package: Any) -> dict[str, Any]:
    body = {"trackingNumber": NUMBER, "activity": list(activities), **package}
    return {"trackResponse": {"shipment": [{"inquiryNumber": NUMBER, "package": [body]}]}}


def _one(payload: Any, status: int = 200) -> Any:
    results, messages = parse_response(status, payload, [NUMBER])
    assert messages == []
    assert len(results) == 1
    return results[0]


# -- request ------------------------------------------------------------------------


def test_build_request_targets_the_details_path_with_required_headers() -> None:
    """One GET per number, with a fresh transId, transactionSrc, en_US and no milestones."""
    request = build_request([NUMBER], _settings())
    assert (request.method, request.path) == ("GET", f"/api/track/v1/details/{NUMBER}")
    assert len(request.headers["transId"]) == 32
    assert request.headers["transId"] != build_request([NUMBER], _settings()).headers["transId"]
    assert request.headers["transactionSrc"] == "tracksvc-test"
    assert request.params["locale"] == "en_US"
    assert request.params["returnMilestones"] == "false"
    assert "Authorization" not in request.headers


def test_build_request_escapes_the_number_in_the_path() -> None:
    """A number with a slash cannot change the path."""
    assert build_request(["1Z/../x"], _settings()).path == "/api/track/v1/details/1Z%2F..%2Fx"


# -- label and status precedence --------------------------------------------------------


def test_label_only_shipment_is_label_created_with_label_time() -> None:
    """Only an M/MP/003 activity: label_created, label time from it, no physical scan."""
    result = _one(
        _answer(
            _activity("M", "MP", "003", description=LABEL_TEXT),
            currentStatus={"description": "Shipment Ready for UPS", "code": "003"},
        )
    )
    assert result.status is TrackingStatus.label_created
    assert result.label_created_at == datetime(2025, 9, 5, 18, 6, 22, tzinfo=UTC)
    assert result.carrier_status_code == "M/MP/003"
    assert result.status_detail == LABEL_TEXT.strip()
    assert result.last_physical_scan_at is None
    assert result.tracking_number == NUMBER


def test_current_status_code_decides_before_activities() -> None:
    """currentStatus.code 011 wins over an older-looking newest activity."""
    result = _one(
        _answer(_activity("I", "AR", "005"), currentStatus={"code": "011", "description": "x"})
    )
    assert result.status is TrackingStatus.delivered


def test_newest_activity_decides_without_current_status() -> None:
    """No currentStatus: the newest activity's 3-digit code decides."""
    result = _one(
        _answer(
            _activity("I", "OT", "021", "20250907 12:00:00"),
            _activity("P", "PU", "038", "20250906 12:00:00"),
        )
    )
    assert result.status is TrackingStatus.out_for_delivery


@pytest.mark.parametrize(
    ("activity", "expected"),
    [
        (("I", "OT", "021"), TrackingStatus.out_for_delivery),
        (("I", "OF", None), TrackingStatus.out_for_delivery),
        (("MV", "VP", "007"), TrackingStatus.cancelled),
        (("MV", None, None), TrackingStatus.cancelled),
        (("X", "48", "022"), TrackingStatus.delivery_attempted),
        (("X", "54", "017"), TrackingStatus.available_for_pickup),
        (("I", "ZZ", "040"), TrackingStatus.available_for_pickup),
        (("X", "RS", "034"), TrackingStatus.returned_to_sender),
        (("X", None, "013"), TrackingStatus.exception),
        (("X", "RZ", "012"), TrackingStatus.in_transit),
        (("P", "PU", "038"), TrackingStatus.in_transit),
        (("D", "KB", None), TrackingStatus.delivered),
        (("M", "MP", None), TrackingStatus.label_created),
    ],
)
def test_activity_maps_by_code_then_pair_then_type(
    activity: tuple[str | None, str | None, str | None], expected: TrackingStatus
) -> None:
    """The 3-digit code decides; without it the (type, code) pair; then the type letter."""
    assert _one(_answer(_activity(*activity))).status is expected


def test_unmapped_code_is_unknown_and_logged_never_in_transit() -> None:
    """An unknown 3-digit code on a type I activity stays unknown and is logged."""
    with capture_logs() as logs:
        result = _one(_answer(_activity("I", "AR", "999", description="Something new")))
    assert result.status is TrackingStatus.unknown
    unmapped = [e for e in logs if e["event"] == "carrier_status_unmapped"]
    assert unmapped
    assert unmapped[0]["status_code"] == "999"
    assert unmapped[0]["tracking_number"] == NUMBER


def test_type_x_without_a_code_is_unknown() -> None:
    """Type X alone could be customs, an attempt or a hold: it is not guessed."""
    assert _one(_answer(_activity("X", "ZZ", None))).status is TrackingStatus.unknown


def test_package_information_unavailable_falls_back_to_the_activity() -> None:
    """currentStatus 148 says nothing, so the newest activity decides."""
    result = _one(_answer(_activity("I", "AR", "005"), currentStatus={"code": "148"}))
    assert result.status is TrackingStatus.in_transit


def test_update_activities_do_not_decide_the_status() -> None:
    """A newer U (updated delivery date) activity leaves the status to the scan before it."""
    result = _one(
        _answer(
            _activity("U", "UP", "154", "20250908 10:00:00"),
            _activity("I", "AR", "005", "20250907 10:00:00"),
        )
    )
    assert result.status is TrackingStatus.in_transit
    assert result.carrier_status_code == "I/AR/005"
    assert result.events[0].physical is False


def test_logical_scans_are_not_physical() -> None:
    """An activity flagged logicalScan does not count as a physical scan."""
    result = _one(_answer(_activity("I", "AR", "005", logicalScan=True)))
    assert result.last_physical_scan_at is None


def test_unpadded_status_code_is_read_as_three_digits() -> None:
    """A statusCode sent as 11 (number) means 011."""
    assert _one(_answer(_activity("D", "F4", 11))).status is TrackingStatus.delivered


# -- times and dates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gmt_time", "expected"),
    [("18:06:22", (18, 6, 22)), ("180622", (18, 6, 22)), ("74700", (7, 47, 0))],
)
def test_gmt_time_formats(gmt_time: str, expected: tuple[int, int, int]) -> None:
    """gmtTime with colons, without, and with its leading zero dropped."""
    result = _one(_answer(_activity("I", "AR", "005", f"20250905 {gmt_time}")))
    assert result.events[0].occurred_at == datetime(2025, 9, 5, *expected, tzinfo=UTC)


def test_local_time_uses_gmt_offset() -> None:
    """Without gmtDate/gmtTime the local time is shifted by gmtOffset into UTC."""
    activity = {
        "status": {"type": "I", "code": "AR", "statusCode": "005"},
        "date": "20240320",
        "time": "070700",
        "gmtOffset": "+08:00",
    }
    result = _one(_answer(activity))
    assert result.events[0].occurred_at == datetime(2024, 3, 19, 23, 7, tzinfo=UTC)
    assert result.parse_warnings == []


def test_local_time_without_offset_is_utc_with_a_warning() -> None:
    """A bare local time is read as UTC and the result says so."""
    activity = {"status": {"type": "I", "statusCode": "005"}, "date": "20240320", "time": "0707"}
    result = _one(_answer(activity))
    assert result.events[0].occurred_at == datetime(2024, 3, 20, 0, 7, 7, tzinfo=UTC)
    assert any("no GMT offset" in w for w in result.parse_warnings)


def test_unreadable_time_is_none_with_a_warning() -> None:
    """A date UPS garbled gives no time rather than an exception."""
    activity = {"status": {"type": "I", "statusCode": "005"}, "date": "2024-03", "time": "x"}
    result = _one(_answer(activity))
    assert result.events[0].occurred_at is None
    assert result.parse_warnings


def test_events_are_newest_first_even_if_sent_out_of_order() -> None:
    """Activities are sorted newest first."""
    result = _one(
        _answer(
            _activity("P", "PU", "038", "20250906 12:00:00"),
            _activity("I", "AR", "005", "20250907 12:00:00"),
        )
    )
    assert [e.code for e in result.events] == ["I/AR/005", "P/PU/038"]
    assert result.status is TrackingStatus.in_transit


def test_rescheduled_date_beats_scheduled_date() -> None:
    """estimated_delivery prefers RDD over SDD."""
    result = _one(
        _answer(
            _activity("I", "AR", "005"),
            deliveryDate=[{"type": "SDD", "date": "20250910"}, {"type": "RDD", "date": "20250912"}],
        )
    )
    assert result.estimated_delivery == date(2025, 9, 12)


def test_delivered_at_from_del_date_when_no_activity_time() -> None:
    """A delivered package without activity times takes DEL date and deliveryTime."""
    activity = {"status": {"type": "D", "code": "F4", "statusCode": "011"}}
    result = _one(
        _answer(
            activity,
            deliveryDate=[{"type": "DEL", "date": "20220126"}],
            deliveryTime={"type": "DEL", "endTime": "163000"},
        )
    )
    assert result.status is TrackingStatus.delivered
    assert result.delivered_at == datetime(2022, 1, 26, 16, 30, tzinfo=UTC)


def test_location_is_parsed_from_the_address() -> None:
    """City, state and country code land in the event location."""
    result = _one(_answer(_activity("I", "AR", "005")))
    assert result.events[0].location == Location(city="PARAMUS", state="NJ", country="US")


# -- outcomes and errors -----------------------------------------------------------------


def test_tw0001_with_http_200_is_not_found() -> None:
    """UPS answers an unknown number with HTTP 200 and warning TW0001."""
    payload = {
        "trackResponse": {
            "shipment": [
                {"inquiryNumber": NUMBER, "warnings": [{"code": "TW0001", "message": "Not Found"}]}
            ]
        }
    }
    assert parse_response(200, payload, [NUMBER]) == (
        [],
        [
            CarrierMessage(
                carrier=Carrier.ups,
                tracking_number=NUMBER,
                outcome=Outcome.not_found,
                code="TW0001",
                message="Not Found",
            )
        ],
    )


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [(400, "TV1002", Outcome.invalid_number), (404, "TW0001", Outcome.not_found)],
)
def test_error_envelope_outcomes(status: int, code: str, outcome: Outcome) -> None:
    """TV1002 (400) is an invalid number; TW0001 as a 404 is not found."""
    payload = {"response": {"errors": [{"code": code, "message": "m"}]}}
    _, messages = parse_response(status, payload, [NUMBER])
    assert [(m.outcome, m.code) for m in messages] == [(outcome, code)]


@pytest.mark.parametrize(
    ("status", "payload", "error"),
    [
        (400, {"unexpected": True}, CarrierResponseError),
        (400, "oops", CarrierResponseError),
        (400, {"response": {"errors": [{"code": "XX9999", "message": "?"}]}}, CarrierResponseError),
        (401, {"response": {"errors": [{"code": "250002", "message": "m"}]}}, CarrierAuthError),
        (403, None, CarrierAuthError),
        (429, {"response": {"errors": [{"code": "10429", "message": "m"}]}}, CarrierRateLimited),
        (503, None, CarrierUnavailable),
        (302, None, CarrierResponseError),
    ],
)
def test_error_statuses_raise_the_matching_error(
    status: int, payload: Any, error: type[Exception]
) -> None:
    """Answers that carry no per-number outcome raise from the tracksvc error tree."""
    with pytest.raises(error):
        parse_response(status, payload, [NUMBER])


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {},
        {"trackResponse": []},
        {"trackResponse": {"shipment": [1]}},
        {"trackResponse": {"shipment": [{"package": "x"}]}},
        {"trackResponse": {"shipment": [{"package": [{"activity": [1]}]}]}},
        {"trackResponse": {"shipment": [{"package": [{"activity": [{"status": "x"}]}]}]}},
        {"trackResponse": {"shipment": [{"package": [{"activity": [{"status": {"type": []}}]}]}]}},
        {"trackResponse": {"shipment": [{"package": [{"currentStatus": "011"}]}]}},
        {"trackResponse": {"shipment": [{"warnings": [{"code": "TW9999"}]}]}},
        {"trackResponse": {"shipment": [{"inquiryNumber": NUMBER}]}},
    ],
)
def test_malformed_shapes_raise_carrier_response_error(payload: Any) -> None:
    """Shapes UPS does not document raise CarrierResponseError, never KeyError/TypeError."""
    with pytest.raises(CarrierResponseError) as caught:
        parse_response(200, payload, [NUMBER])
    assert caught.value.tracking_number == NUMBER


# -- Track Alert ----------------------------------------------------------------------------


def test_track_alert_uses_description_code() -> None:
    """A Track Alert push with type X and descriptionCode 022 is an attempt at its GMT time."""
    number, event = parse_track_alert(
        {
            "trackingNumber": NUMBER,
            "gmtActivityDate": "20240423",
            "gmtActivityTime": "131519",
            "activityLocation": {"city": "Charlotte", "stateProvince": "NC", "country": "US"},
            "activityStatus": {"type": "X", "code": "48", "description": "d", "descriptionCode": "022"},
        }
    )
    assert number == NUMBER
    assert event.status is TrackingStatus.delivery_attempted
    assert event.occurred_at == datetime(2024, 4, 23, 13, 15, 19, tzinfo=UTC)
    assert event.code == "X/48/022"
    assert event.location == Location(city="Charlotte", state="NC", country="US")


def test_track_alert_local_time_with_offset() -> None:
    """Without GMT fields the local time and gmtOffset give the UTC time."""
    _, event = parse_track_alert(
        {
            "trackingNumber": NUMBER,
            "localActivityDate": "20240423",
            "localActivityTime": "091519",
            "gmtOffset": "-04:00",
            "activityStatus": {"type": "M", "code": "MP", "descriptionCode": "003"},
        }
    )
    assert event.occurred_at == datetime(2024, 4, 23, 13, 15, 19, tzinfo=UTC)
    assert event.status is TrackingStatus.label_created
    assert event.physical is False


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"trackingNumber": NUMBER},
        {"trackingNumber": NUMBER, "activityStatus": "D"},
        {"trackingNumber": NUMBER, "activityStatus": {}},
        {"trackingNumber": ["x"], "activityStatus": {"type": "D"}},
        {"trackingNumber": NUMBER, "activityStatus": {"type": "D"}, "activityLocation": "x"},
        {"trackingNumber": NUMBER, "activityStatus": {"type": "D"}, "activityLocation": {"city": 1.5}},
    ],
)
def test_malformed_track_alert_raises(payload: dict[str, Any]) -> None:
    """A push without a number or a usable activityStatus raises CarrierResponseError."""
    with pytest.raises(CarrierResponseError):
        parse_track_alert(payload)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"scheduledDeliveryDate": "20260311"}, date(2026, 3, 11)),
        ({"scheduledDeliveryDate": " 20260311 "}, date(2026, 3, 11)),
        ({"scheduledDeliveryDate": "2026-03-11"}, None),
        ({"scheduledDeliveryDate": 20260311}, None),
        ({}, None),
    ],
)
def test_track_alert_scheduled_delivery(payload: dict[str, object], expected: date | None) -> None:
    """A Track Alert's YYYYMMDD scheduled date is read; an odd or missing one is None, not an error."""
    assert scheduled_delivery(payload) == expected
