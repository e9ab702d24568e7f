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
from carriers.json_read import Reader
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


def _reader(number: str | None = None) -> Reader:
    """A push is input we accept or refuse whole: every field it has is read as required."""
    return Reader(Carrier.ups, tracking_number=number, subject="Track Alert payload")


def _check_dates(read: Reader, payload: Mapping[str, Any], number: str) -> None:
    """Every date field present is a real date, not before :data:`EARLIEST_EVENT_DATE`."""
    for field in DATE_FIELDS:
        raw = read.text(payload.get(field), field)
        if raw is None:
            continue
        day = parse_date(raw)
        if day is None:
            raise _field_error(field, f"{field} {raw[:20]!r} is not a YYYYMMDD date", number)
        if day < EARLIEST_EVENT_DATE:
            raise _field_error(
                field, f"{field} {raw} is out of range (before {EARLIEST_EVENT_DATE:%Y-%m-%d})", number
            )


def _occurred_at(read: Reader, payload: Mapping[str, Any], number: str) -> datetime:
    """The event's UTC time, or an :class:`AlertFieldError` naming the field that failed."""
    try:
        when = event_time(
            gmt_date=read.text(payload.get("gmtActivityDate"), "gmtActivityDate"),
            gmt_time=read.text(payload.get("gmtActivityTime"), "gmtActivityTime"),
            local_date=read.text(payload.get("localActivityDate"), "localActivityDate"),
            local_time=read.text(payload.get("localActivityTime"), "localActivityTime"),
            gmt_offset=read.text(payload.get("gmtOffset"), "gmtOffset"),
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
    payload = _reader().obj(payload, "body")
    number = _reader().text(payload.get("trackingNumber"), "trackingNumber")
    if number is None:
        raise _reader().malformed("trackingNumber is missing")
    read = _reader(number)
    status_block = read.obj(payload.get("activityStatus"), "activityStatus")
    status_type = read.text(status_block.get("type"), "activityStatus.type")
    code = read.text(status_block.get("code"), "activityStatus.code")
    status_code = read.text(status_block.get("descriptionCode"), "activityStatus.descriptionCode")
    if status_code is not None and status_code.isdigit():
        status_code = status_code.zfill(3)
    if not any((status_type, code, status_code)):
        raise read.malformed("activityStatus has no type, code or descriptionCode")
    description = read.text(status_block.get("description"), "activityStatus.description") or ""
    _check_dates(read, payload, number)
    occurred_at = _occurred_at(read, payload, number)
    location_block = payload.get("activityLocation")
    if location_block is not None:
        location_block = read.obj(location_block, "activityLocation")
    location = location_from(location_block, read.text)

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
