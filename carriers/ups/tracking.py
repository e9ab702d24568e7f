"""
UPS Track API v1: build the request and parse the answer. Pure: no I/O.

``parse_response`` turns one ``GET /api/track/v1/details/{n}`` answer into
:class:`~carriers.models.TrackingResult` objects and carrier-level
:class:`~carriers.models.CarrierMessage` outcomes (carrier-apis.md sections
1.3-1.6). Shapes it cannot read raise
:class:`~carriers.errors.CarrierResponseError`.

Conventions:

* ``carrier_status_code`` and every ``TrackingEvent.code`` are the activity's
  ``type/code/statusCode`` triple, positional, with an absent part left empty
  (``"M/MP/003"``, ``"X//092"``), so the decisive 3-digit code is always kept.
* Times are UTC: ``gmtDate`` + ``gmtTime`` when present, else the local
  ``date`` + ``time`` shifted by ``gmtOffset``, else the local time read as
  UTC with a parse warning.
* Fields are read with :mod:`carriers.json_read`: a wrong-typed structure or
  status code is a malformed answer; a wrong-typed description, place or time
  is left empty with a parse warning.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import structlog

from carriers.base import CarrierRequest, ParsedAnswer, TokenEndpoint
from carriers.errors import CarrierResponseError, error_for_status
from carriers.json_read import Reader
from carriers.models import (
    Carrier,
    CarrierMessage,
    Location,
    TrackingEvent,
    TrackingResult,
    TrackingStatus,
)
from carriers.settings import CarrierSettings
from carriers.ups import units

log = structlog.get_logger(__name__)

CARRIER = Carrier.ups

TRACK_PATH = "/api/track/v1/details/{number}"

#: UPS takes one inquiry number per call.
MAX_NUMBERS = 1

#: OAuth 2.0 client credentials: the credentials as HTTP Basic auth, never in the body.
TOKEN = TokenEndpoint(
    carrier=CARRIER,
    path="/security/v1/oauth/token",
    credentials_in="basic",
    headers={"Accept": "application/json"},
)

_OFFSET = re.compile(r"^([+-])(\d{1,2}):?(\d{2})$")


def build_request(numbers: Sequence[str], settings: CarrierSettings) -> CarrierRequest:
    """
    Build the tracking call for one inquiry number.

    Args:
        numbers: one UPS tracking (inquiry) number; UPS takes one per call.
        settings: the UPS carrier settings (``transaction_src`` names our app).

    Returns:
        The call; its ``transId`` header is new for every call, as UPS asks.
        The transport adds the bearer token.

    Raises:
        ValueError: not exactly one number.
    """
    number = _one(numbers)
    return CarrierRequest(
        method="GET",
        path=TRACK_PATH.format(number=quote(number, safe="")),
        headers={
            "transId": uuid.uuid4().hex,
            "transactionSrc": settings.transaction_src,
            "Accept": "application/json",
        },
        params={
            "locale": "en_US",
            "returnSignature": "false",
            "returnMilestones": "false",
            "returnPOD": "false",
        },
    )


def parse_response(status: int, payload: Any, numbers: Sequence[str]) -> ParsedAnswer:
    """
    Normalize one Track API answer.

    Args:
        status: the HTTP status of the answer.
        payload: the decoded JSON body.
        numbers: the one number that was asked for.

    Returns:
        One result per package, and the carrier-level outcomes (``TW0001``
        not found, also sent with HTTP 200; ``TV1002`` invalid number).
        Nothing at all when the answer lists no shipment: it did not mention
        the number (the adapter answers :func:`carriers.base.missing_from_answer`).

    Raises:
        ValueError: not exactly one number.
        CarrierResponseError: the body is not a shape UPS documents, or an
            error code this parser does not know.
        CarrierAuthError: 401/403.
        CarrierRateLimited: 429.
        CarrierUnavailable: 5xx.
    """
    requested = _one(numbers)
    read = Reader(CARRIER, tracking_number=requested, status=status)
    if 200 <= status < 300:
        return _parse_tracking(read, payload, requested)
    return [], [_parse_error(read, status, payload, requested)]


def _one(numbers: Sequence[str]) -> str:
    if isinstance(numbers, str) or len(numbers) != MAX_NUMBERS:
        raise ValueError(f"UPS tracks exactly one number per call, got {numbers!r}")
    return numbers[0]


# -- status tables ------------------------------------------------------------


def activity_status(
    status_type: str | None,
    code: str | None,
    status_code: str | None,
    *,
    tracking_number: str | None = None,
    description: str | None = None,
) -> TrackingStatus:
    """
    The status one UPS activity (or ``currentStatus``, or Track Alert event) stands for.

    The 3-digit code decides when present; otherwise the ``(type, code)``
    pair; otherwise the type letter. A present signal missing from the
    tables gives :attr:`TrackingStatus.unknown` and a
    ``carrier_status_unmapped`` log line; it never falls back to a vaguer
    signal.

    Args:
        status_type: the activity type letter (``M``, ``I``, ``X``, ``D`` ...).
        code: the 2-letter activity code (``MP``, ``OT`` ...).
        status_code: the 3-digit status/description code (``003``, ``011`` ...).
        tracking_number: for the log line only.
        description: for the log line only.

    Returns:
        The normalized status of that single activity.
    """
    if status_type in units.STATUS_NEUTRAL_TYPES:
        return TrackingStatus.unknown
    found: TrackingStatus | None
    if status_code:
        found = units.STATUS_BY_CODE.get(status_code)
    elif status_type and code and (status_type, code) in units.STATUS_BY_ACTIVITY:
        found = units.STATUS_BY_ACTIVITY[(status_type, code)]
    elif status_type:
        found = units.STATUS_BY_TYPE.get(status_type)
    else:
        found = None
    if found is None:
        log.warning(
            "carrier_status_unmapped",
            carrier=CARRIER.value,
            tracking_number=tracking_number,
            status_type=status_type,
            code=code,
            status_code=status_code,
            description=description,
        )
        return TrackingStatus.unknown
    return found


def is_physical(status_type: str | None, status: TrackingStatus, logical_scan: bool) -> bool:
    """Whether an activity means UPS handled the parcel (not a label, void or update)."""
    if logical_scan or status in (TrackingStatus.label_created, TrackingStatus.cancelled):
        return False
    return units.PHYSICAL_BY_TYPE.get(status_type or "", False)


def status_triple(status_type: str | None, code: str | None, status_code: str | None) -> str:
    """``type/code/statusCode`` with absent parts left empty, e.g. ``"X//092"``."""
    return f"{status_type or ''}/{code or ''}/{status_code or ''}"


# -- time and place -------------------------------------------------------------


def parse_date(value: str | None) -> date | None:
    """A UPS ``YYYYMMDD`` date, or None when absent or unreadable."""
    if not value or len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _parse_time(value: str | None) -> tuple[int, int, int] | None:
    """``"18:06:22"``, ``"180622"`` or ``"74700"`` (leading zero dropped)."""
    if not value:
        return None
    digits = value.replace(":", "").strip()
    if not digits.isdigit() or len(digits) > 6:
        return None
    digits = digits.zfill(6)
    hour, minute, second = int(digits[:2]), int(digits[2:4]), int(digits[4:])
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def _parse_offset(value: str | None) -> timezone | None:
    match = _OFFSET.match(value.strip()) if value else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    try:
        return timezone(-delta if sign == "-" else delta)
    except ValueError:
        return None


def _combine(day: str | None, clock: str | None, tz: timezone) -> datetime | None:
    parsed_day = parse_date(day)
    parsed_clock = _parse_time(clock)
    if parsed_day is None or parsed_clock is None:
        return None
    naive = datetime(parsed_day.year, parsed_day.month, parsed_day.day, *parsed_clock)
    return naive.replace(tzinfo=tz).astimezone(UTC)


def event_time(
    *,
    gmt_date: str | None,
    gmt_time: str | None,
    local_date: str | None,
    local_time: str | None,
    gmt_offset: str | None,
    warnings: list[str] | None = None,
) -> datetime | None:
    """
    When an activity happened, in UTC.

    Args:
        gmt_date: ``gmtDate`` (``YYYYMMDD``).
        gmt_time: ``gmtTime`` (``"18:06:22"``, ``"180622"`` or ``"74700"``).
        local_date: local ``date``.
        local_time: local ``time``.
        gmt_offset: ``gmtOffset`` (``"-04:00"``), the local time's offset.
        warnings: collects what could not be read exactly.

    Returns:
        The UTC time, or None when no usable date and time are present.
    """
    notes = warnings if warnings is not None else []
    when = _combine(gmt_date, gmt_time, UTC)
    if when is not None:
        return when
    offset = _parse_offset(gmt_offset)
    if offset is not None:
        when = _combine(local_date, local_time, offset)
        if when is not None:
            return when
    when = _combine(local_date, local_time, UTC)
    if when is not None:
        notes.append(f"local time {local_date} {local_time} has no GMT offset; read as UTC")
        return when
    if any((gmt_date, gmt_time, local_date, local_time)):
        notes.append(
            f"unreadable activity time (date={local_date!r} time={local_time!r} "
            f"gmtDate={gmt_date!r} gmtTime={gmt_time!r})"
        )
    return None


def location_from(
    address: Mapping[str, Any] | None, text: Callable[[Any, str], str | None]
) -> Location | None:
    """
    A :class:`Location` from a UPS address, or None when it names no place.

    Args:
        address: the address object.
        text: the reader of its fields (optional in a tracking answer,
            required in a Track Alert push).
    """
    if not address:
        return None
    city = text(address.get("city"), "address.city")
    state = text(address.get("stateProvince"), "address.stateProvince")
    postal = text(address.get("postalCode"), "address.postalCode")
    country = text(address.get("countryCode"), "address.countryCode") or text(
        address.get("country"), "address.country"
    )
    if not any((city, state, postal, country)):
        return None
    return Location(city=city, state=state, postal_code=postal, country=country)


# -- errors -----------------------------------------------------------------------


def _status_code(value: str | None) -> str | None:
    """A 3-digit status/description code; UPS tables also print them unpadded."""
    if value is not None and value.isdigit():
        return value.zfill(3)
    return value


def _error_codes(read: Reader, payload: Any) -> list[tuple[str, str]]:
    """
    ``(code, message)`` pairs of the UPS error envelope ``{"response": {"errors": [...]}}``.

    Empty when the body is not that envelope; the codes decide the outcome, so
    a wrong-typed list or code is a malformed answer.
    """
    if not isinstance(payload, Mapping) or not isinstance(payload.get("response"), Mapping):
        return []
    pairs = []
    for index, error in enumerate(read.objects(payload["response"].get("errors"), "response.errors")):
        code = read.text(error.get("code"), f"response.errors[{index}].code")
        if code:
            pairs.append((code, read.optional_text(error.get("message"), "error.message") or ""))
    return pairs


def _known_outcome(codes: list[tuple[str, str]], requested: str) -> CarrierMessage | None:
    """The first (code, message) UPS documents as a per-number outcome (TW0001, TV1002)."""
    for code, message in codes:
        outcome = units.OUTCOME_BY_ERROR_CODE.get(code)
        if outcome is not None:
            return CarrierMessage(
                carrier=CARRIER, tracking_number=requested, outcome=outcome, code=code, message=message
            )
    return None


def _parse_error(read: Reader, status: int, payload: Any, requested: str) -> CarrierMessage:
    try:
        errors = _error_codes(read, payload)
    except CarrierResponseError:
        errors = []  # a whole-call status below still wins; a 400/404 fails as malformed
        if status in (400, 404):
            raise
    described = "; ".join(f"{code} {message}".strip() for code, message in errors) or "no details"
    failure = error_for_status(status, carrier=CARRIER, detail=described, tracking_number=requested)
    if failure is not None:
        raise failure
    if status in (400, 404):
        message = _known_outcome(errors, requested)
        if message is not None:
            return message
        if not errors:
            raise read.malformed(f"HTTP {status} without the UPS error envelope")
    raise read.malformed(f"HTTP {status} with unexpected error ({described})")


# -- tracking ---------------------------------------------------------------------


def _parse_tracking(read: Reader, payload: Any, requested: str) -> ParsedAnswer:
    root = read.obj(payload, "body")
    track = read.obj(root.get("trackResponse"), "trackResponse")
    shipments = read.objects(track.get("shipment"), "trackResponse.shipment")
    results: list[TrackingResult] = []
    messages: list[CarrierMessage] = []
    for index, shipment in enumerate(shipments):
        where = f"shipment[{index}]"
        warnings = _warnings(read, shipment.get("warnings"), where)
        packages = read.objects(shipment.get("package"), f"{where}.package")
        if not packages:
            messages.append(_warning_message(read, warnings, requested))
            continue
        for p_index, package in enumerate(packages):
            number = requested
            if len(packages) > 1:
                number = (
                    read.text(package.get("trackingNumber"), f"{where}.package[{p_index}].trackingNumber")
                    or requested
                )
            results.append(_parse_package(read.for_result(), package, number, warnings))
    return results, messages


def _warnings(read: Reader, value: Any, where: str) -> list[tuple[str, str]]:
    """A shipment's ``warnings`` (they decide a shipment without packages: required)."""
    pairs = []
    for index, warning in enumerate(read.objects(value, f"{where}.warnings")):
        code = read.text(warning.get("code"), f"{where}.warnings[{index}].code") or ""
        pairs.append((code, read.optional_text(warning.get("message"), "warning.message") or ""))
    return pairs


def _warning_message(read: Reader, warnings: list[tuple[str, str]], requested: str) -> CarrierMessage:
    """A shipment without packages: the warning says why (``TW0001``: not found)."""
    message = _known_outcome(warnings, requested)
    if message is not None:
        return message
    codes = ", ".join(code for code, _ in warnings) or "none"
    raise read.malformed(f"shipment without packages and no known warning (warnings: {codes})")


def _parse_package(
    read: Reader, package: Mapping[str, Any], number: str, shipment_warnings: list[tuple[str, str]]
) -> TrackingResult:
    notes = read.warnings
    notes.extend(f"carrier warning {code}: {message}".strip() for code, message in shipment_warnings)
    activities = read.objects(package.get("activity"), "package.activity")
    # (event, status type) pairs; the type decides which events can set the shipment status.
    parsed = [_parse_activity(read, a, i, number) for i, a in enumerate(activities)]
    if all(event.occurred_at is not None for event, _ in parsed):
        # UPS sends newest first; sort anyway (stable, so same-second events keep UPS order).
        parsed.sort(key=lambda pair: pair[0].occurred_at or datetime.min, reverse=True)
    events = [event for event, _ in parsed]
    deciding = next(
        (event for event, kind in parsed if kind not in units.STATUS_NEUTRAL_TYPES), None
    )

    raw_current = package.get("currentStatus")
    current = None if raw_current is None else read.obj(raw_current, "package.currentStatus")
    status = TrackingStatus.unknown
    if current is not None:
        status = _current_status(read, current, number)
    if status is TrackingStatus.unknown and deciding is not None:
        status = deciding.status

    if deciding is not None:
        carrier_code: str | None = deciding.code
        detail = deciding.description or None
    elif current is not None:
        carrier_code = _status_code(read.text(current.get("code"), "currentStatus.code"))
        detail = read.optional_text(current.get("description"), "currentStatus.description")
    else:
        carrier_code = detail = None

    label_times = [
        e.occurred_at
        for e in events
        if e.status is TrackingStatus.label_created and e.occurred_at is not None
    ]
    delivered_at = next(
        (
            e.occurred_at
            for e in events
            if e.status is TrackingStatus.delivered and e.occurred_at is not None
        ),
        None,
    )
    estimated, delivered_on = _delivery_dates(read, package)
    if delivered_at is None and delivered_on is not None:
        delivered_at = _delivery_time(read, package, delivered_on)

    return TrackingResult(
        carrier=CARRIER,
        tracking_number=number,
        status=status,
        carrier_status_code=carrier_code,
        status_detail=detail,
        events=events,
        label_created_at=min(label_times) if label_times else None,
        estimated_delivery=estimated,
        delivered_at=delivered_at,
        parse_warnings=notes,
    )


def _current_status(read: Reader, current: Mapping[str, Any], number: str) -> TrackingStatus:
    """``currentStatus``: real data puts the 3-digit code in ``code``; the spec also shows
    an activity-like ``{type, code, statusCode}``."""
    status_type = read.text(current.get("type"), "currentStatus.type")
    code = read.text(current.get("code"), "currentStatus.code")
    status_code = _status_code(read.text(current.get("statusCode"), "currentStatus.statusCode"))
    if status_code is None and code is not None and code.isdigit():
        status_code, code = code.zfill(3), None
    if not any((status_type, code, status_code)):
        return TrackingStatus.unknown
    return activity_status(
        status_type,
        code,
        status_code,
        tracking_number=number,
        description=read.optional_text(current.get("description"), "currentStatus.description"),
    )


def _parse_activity(
    read: Reader, activity: Mapping[str, Any], index: int, number: str
) -> tuple[TrackingEvent, str | None]:
    where = f"activity[{index}]"
    notes = read.warnings
    status_block = read.obj(activity.get("status"), f"{where}.status")
    status_type = read.text(status_block.get("type"), f"{where}.status.type")
    code = read.text(status_block.get("code"), f"{where}.status.code")
    status_code = _status_code(read.text(status_block.get("statusCode"), f"{where}.status.statusCode"))
    description = read.optional_text(status_block.get("description"), f"{where}.status.description") or ""
    status = activity_status(
        status_type, code, status_code, tracking_number=number, description=description
    )
    location = read.optional_obj(activity.get("location"), f"{where}.location")
    address = (
        read.optional_obj(location.get("address"), f"{where}.location.address")
        if location is not None
        else None
    )
    occurred_at = event_time(
        gmt_date=read.optional_text(activity.get("gmtDate"), f"{where}.gmtDate"),
        gmt_time=read.optional_text(activity.get("gmtTime"), f"{where}.gmtTime"),
        local_date=read.optional_text(activity.get("date"), f"{where}.date"),
        local_time=read.optional_text(activity.get("time"), f"{where}.time"),
        gmt_offset=read.optional_text(activity.get("gmtOffset"), f"{where}.gmtOffset"),
        warnings=notes,
    )
    if occurred_at is None:
        notes.append(f"{where} ({status_triple(status_type, code, status_code)}) has no time")
    event = TrackingEvent(
        occurred_at=occurred_at,
        status=status,
        code=status_triple(status_type, code, status_code),
        description=description,
        location=location_from(address, read.optional_text),
        physical=is_physical(status_type, status, activity.get("logicalScan") is True),
    )
    return event, status_type


def _delivery_dates(read: Reader, package: Mapping[str, Any]) -> tuple[date | None, date | None]:
    """``(estimated, delivered)`` from ``deliveryDate[]``: RDD beats SDD; DEL is delivered."""
    by_type: dict[str, date] = {}
    for entry in read.optional_objects(package.get("deliveryDate"), "package.deliveryDate"):
        kind = read.optional_text(entry.get("type"), "deliveryDate.type")
        if kind not in ("SDD", "RDD", "DEL"):
            continue
        value = read.optional_text(entry.get("date"), "deliveryDate.date")
        parsed = parse_date(value)
        if parsed is None:
            read.warnings.append(f"unreadable {kind} delivery date {value!r}")
            continue
        by_type[kind] = parsed
    return by_type.get("RDD") or by_type.get("SDD"), by_type.get("DEL")


def _delivery_time(read: Reader, package: Mapping[str, Any], day: date) -> datetime:
    """Delivery time from ``deliveryDate`` DEL and ``deliveryTime`` (local, no offset)."""
    block = read.optional_obj(package.get("deliveryTime"), "package.deliveryTime") or {}
    clock = None
    if read.optional_text(block.get("type"), "deliveryTime.type") == "DEL":
        clock = _parse_time(read.optional_text(block.get("endTime"), "deliveryTime.endTime"))
    read.warnings.append("delivery time taken from deliveryDate DEL, local time read as UTC")
    return datetime(day.year, day.month, day.day, *(clock or (0, 0, 0)), tzinfo=UTC)
