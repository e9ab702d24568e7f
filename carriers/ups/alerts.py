"""
UPS Track Alert webhook payloads (carrier-apis.md section 1.7). Pure: no I/O.

UPS POSTs one JSON event per scan. Its ``activityStatus`` carries the same
``type``/``code`` as a Track API activity and the 3-digit status/description
code as ``descriptionCode``, so the same tables decide its status.

An event must say when it happened: a date field that is present must be a
real ``YYYYMMDD`` date from :data:`EARLIEST_EVENT_DATE` on, and the time
must be representable in UTC; otherwise :class:`AlertFieldError` names the
field (a push is one event: there is nothing to keep of it without a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from carriers.errors import CarrierResponseError
from carriers.models import Carrier, TrackingEvent
from carriers.ups.tracking import (
    activity_status,
    event_time,
    is_physical,
    location_from,
    parse_date,
    status_triple,
)

#: The date fields of a Track Alert (``YYYYMMDD``), in the order their times are preferred.
DATE_FIELDS = ("gmtActivityDate", "localActivityDate")

#: Events dated before this are refused as out of range (UPS keeps 120 days of tracking data).
EARLIEST_EVENT_DATE = date(2000, 1, 1)


class AlertFieldError(CarrierResponseError):
    """A Track Alert field holds something unusable; ``field`` names it."""

    def __init__(self, message: str, *, field: str, tracking_number: str | None = None) -> None:
        super().__init__(message, carrier=Carrier.ups, tracking_number=tracking_number)
        self.field = field


def time_field(payload: Mapping[str, Any]) -> str:
    """The date field an event's time is read from (``gmtActivityDate`` when present)."""
    for field in DATE_FIELDS:
        if payload.get(field) not in (None, ""):
            return field
    return DATE_FIELDS[0]


def _field_error(field: str, message: str, number: str | None) -> AlertFieldError:
    return AlertFieldError(
        f"UPS Track Alert payload not understood: {message}", field=field, tracking_number=number
    )


def _check_dates(payload: Mapping[str, Any], number: str) -> None:
    """Every date field present is a real date, not before :data:`EARLIEST_EVENT_DATE`."""
    for field in DATE_FIELDS:
        raw = _text(payload, field, number)
        if raw is None:
            continue
        day = parse_date(raw)
        if day is None:
            raise _field_error(field, f"{field} {raw[:20]!r} is not a YYYYMMDD date", number)
        if day < EARLIEST_EVENT_DATE:
            raise _field_error(
                field, f"{field} {raw} is out of range (before {EARLIEST_EVENT_DATE:%Y-%m-%d})", number
            )


def _occurred_at(payload: Mapping[str, Any], number: str) -> datetime:
    """The event's UTC time, or an :class:`AlertFieldError` naming the field that failed."""
    try:
        when = event_time(
            gmt_date=_text(payload, "gmtActivityDate", number),
            gmt_time=_text(payload, "gmtActivityTime", number),
            local_date=_text(payload, "localActivityDate", number),
            local_time=_text(payload, "localActivityTime", number),
            gmt_offset=_text(payload, "gmtOffset", number),
        )
    except (OverflowError, ValueError) as exc:  # a local time whose offset leaves the calendar
        field = time_field(payload)
        raise _field_error(field, f"{field} with gmtOffset is out of range ({exc})", number) from exc
    if when is None:
        field = time_field(payload)
        raise _field_error(
            field, f"no readable activity date and time ({field} and its time are needed)", number
        )
    return when


def _malformed(message: str, number: str | None = None) -> CarrierResponseError:
    return CarrierResponseError(
        f"UPS Track Alert payload not understood: {message}",
        carrier=Carrier.ups,
        tracking_number=number,
    )


def _text(payload: Mapping[str, Any], key: str, number: str | None) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _malformed(f"{key} is {type(value).__name__}, expected a string", number)
    return str(value).strip() or None


def parse_track_alert(payload: Mapping[str, Any]) -> tuple[str, TrackingEvent]:
    """
    Turn one Track Alert push into the event it reports.

    Args:
        payload: the decoded webhook body.

    Returns:
        ``(tracking number, event)``; the event's time is UTC (GMT fields
        first, else the local time shifted by ``gmtOffset``, else the local
        time read as UTC).

    Raises:
        CarrierResponseError: the payload lacks ``trackingNumber`` or
            ``activityStatus``, or a field has the wrong type.
        AlertFieldError: a date is not a date, is out of range, or no time can be read.
    """
    if not isinstance(payload, Mapping):
        raise _malformed(f"body is {type(payload).__name__}, expected an object")
    number = _text(payload, "trackingNumber", None)
    if number is None:
        raise _malformed("trackingNumber is missing")
    status_block = payload.get("activityStatus")
    if not isinstance(status_block, Mapping):
        raise _malformed("activityStatus is missing or not an object", number)
    status_type = _text(status_block, "type", number)
    code = _text(status_block, "code", number)
    status_code = _text(status_block, "descriptionCode", number)
    if status_code is not None and status_code.isdigit():
        status_code = status_code.zfill(3)
    if not any((status_type, code, status_code)):
        raise _malformed("activityStatus has no type, code or descriptionCode", number)
    description = _text(status_block, "description", number) or ""
    _check_dates(payload, number)
    occurred_at = _occurred_at(payload, number)

    location_block = payload.get("activityLocation")
    if location_block is not None and not isinstance(location_block, Mapping):
        raise _malformed("activityLocation is not an object", number)
    try:
        location = location_from(location_block)
    except CarrierResponseError as exc:
        raise _malformed(str(exc.message), number) from exc

    status = activity_status(
        status_type, code, status_code, tracking_number=number, description=description
    )
    event = TrackingEvent(
        occurred_at=occurred_at,
        status=status,
        code=status_triple(status_type, code, status_code),
        description=description,
        location=location,
        physical=is_physical(status_type, status, logical_scan=False),
    )
    return number, event


def scheduled_delivery(payload: Mapping[str, Any]) -> date | None:
    """A Track Alert's ``scheduledDeliveryDate`` (``YYYYMMDD``); None when absent or odd."""
    value = payload.get("scheduledDeliveryDate")
    return parse_date(value.strip()) if isinstance(value, str) else None
