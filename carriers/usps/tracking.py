"""
USPS Tracking v3: build the request, parse the answer. Pure functions.

No HTTP and no Redis here (:class:`carriers.base.OAuthTransport` does the HTTP); the only side
effect is a ``carrier_status_unmapped`` log line when USPS sends a code the
tables in :mod:`carriers.usps.units` do not know.

What a v3 answer can be (carrier-apis.md sections 3.3-3.6):

* HTTP 200 with ``TrackingDetails`` (``trackingEvents`` newest first);
* HTTP 400 with the error envelope ``{"apiVersion", "error": {"code",
  "message", "errors": [{"code": "150001", ...}]}}``: "no data yet" or a
  rejected number, told apart by the sub-code;
* HTTP 404 (v3r2 style, sub-code 150006): no data yet;
* 401/403/429/5xx: whole-call failures, normally raised by the transport
  before parsing; :func:`parse_response` raises the same errors if fed one.

Fields are read with :mod:`carriers.json_read`: a wrong-typed structure,
event code or status category is a malformed answer; a wrong-typed word,
place or time is left empty with a parse warning.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import structlog

from carriers.base import CarrierRequest, ParsedAnswer, TokenEndpoint
from carriers.errors import error_for_status
from carriers.json_read import Reader
from carriers.models import (
    Carrier,
    CarrierMessage,
    Location,
    Outcome,
    TrackingEvent,
    TrackingResult,
    TrackingStatus,
)
from carriers.settings import CarrierSettings
from carriers.usps import units

log = structlog.get_logger("carriers.usps")

CARRIER = Carrier.usps

#: v3 single-number lookup; DETAIL returns the events (the default SUMMARY does not).
TRACKING_PATH = "/tracking/v3/tracking/{number}"
TRACKING_PARAMS: Mapping[str, str] = {"expand": "DETAIL"}

#: v3 takes one number per GET (v3r2's 35-number POST is not used).
MAX_NUMBERS = 1

#: OAuth client credentials in a form body (``POST /oauth2/v3/token``).
#: carrier-apis.md 3.1 records both JSON (the official USPS README) and form
#: (karrio, in production use) as working; which one USPS strictly requires is
#: untested. Form is what RFC 6749 section 4.4.2 prescribes, so an OAuth server
#: has to take it (``as_json=True`` switches). Least privilege: tracking is all
#: tracksvc reads, and a token granted without that scope is refused at once
#: (every tracking call would answer 401, issue #56).
TOKEN = TokenEndpoint(
    carrier=CARRIER,
    path="/oauth2/v3/token",
    credentials_in="body",
    scope="tracking",
    headers={"Accept": "application/json"},
)

#: eventTimestamp has minute resolution, GMTTimestamp seconds: closer than this agrees.
_GMT_AGREEMENT = timedelta(seconds=120)

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_TAG_RE = re.compile(r"<[^>]*>")
_SUP_ENTITY_RE = re.compile(r"<SUP>\s*(#?\w+;)\s*</SUP>", re.IGNORECASE)


def build_request(numbers: Sequence[str], settings: CarrierSettings) -> CarrierRequest:
    """
    The v3 DETAIL lookup of one tracking number.

    Args:
        numbers: one tracking number, already normalized by the caller.
        settings: the USPS carrier settings (nothing of them goes in the call).

    Returns:
        The GET relative to the USPS base URL; the transport adds the token.

    Raises:
        ValueError: not exactly one number.
    """
    number = _one(numbers)
    return CarrierRequest(
        method="GET",
        path=TRACKING_PATH.format(number=quote(number, safe="")),
        headers={"Accept": "application/json"},
        params=dict(TRACKING_PARAMS),
    )


def parse_response(status: int, payload: Any, numbers: Sequence[str]) -> ParsedAnswer:
    """
    Turn one v3 answer into a result or a carrier message.

    Args:
        status: the HTTP status of the answer.
        payload: the decoded JSON body.
        numbers: the one tracking number that was asked for; results and
            messages are keyed on it.

    Returns:
        ``([result], [])`` for tracking data, ``([], [message])`` when USPS
        says it has none (``not_found``) or rejects the number
        (``invalid_number``); ``([], [])`` for an object that names no number
        and holds no events: it did not mention the number (the adapter
        answers :func:`carriers.base.missing_from_answer`).

    Raises:
        ValueError: not exactly one number.
        CarrierAuthError: 401/403.
        CarrierRateLimited: 429.
        CarrierUnavailable: 5xx.
        CarrierResponseError: any shape other than the documented ones.
    """
    requested = _one(numbers)
    read = Reader(CARRIER, tracking_number=requested, status=status)
    _raise_for_status(status, requested)
    body = read.obj(payload, "body")
    error = body.get("error")
    if error is not None:
        return [], [_error_message(read, status, error, requested)]
    if not 200 <= status < 300:
        raise read.malformed(f"HTTP {status} without the USPS error envelope")
    if body.get("trackingNumber") in (None, "") and body.get("trackingEvents") is None:
        return [], []
    return [_result(read.for_result(), body, requested)], []


def _one(numbers: Sequence[str]) -> str:
    if isinstance(numbers, str) or len(numbers) != MAX_NUMBERS:
        raise ValueError(f"USPS v3 tracks exactly one number per call, got {numbers!r}")
    return numbers[0]


# -- errors -----------------------------------------------------------------


def _raise_for_status(status: int, requested: str) -> None:
    failure = error_for_status(status, carrier=CARRIER, detail=f"HTTP {status}", tracking_number=requested)
    if failure is not None:
        raise failure


def _error_message(read: Reader, status: int, raw_error: Any, requested: str) -> CarrierMessage:
    error = read.obj(raw_error, "error")
    items = read.objects(error.get("errors"), "error.errors")
    # The envelope repeats the HTTP status as a string; trust it only when the
    # HTTP status itself says success (a proxy may have rewritten that).
    http = status
    envelope_code = read.text(error.get("code"), "error.code")
    if 200 <= status < 300 and envelope_code and envelope_code.isdigit():
        http = int(envelope_code)
    _raise_for_status(http, requested)

    sub_codes = [read.text(item.get("code"), f"error.errors[{i}].code") or "" for i, item in enumerate(items)]
    not_found = [i for i, code in enumerate(sub_codes) if code in units.NOT_FOUND_ERROR_CODES]
    index: int | None = not_found[0] if not_found else (0 if items else None)
    if not_found:
        outcome = Outcome.not_found
    elif http == 404:
        # v3r2's "status update is not yet available" (150006) comes as 404;
        # a 404 never means a rejected number.
        outcome = Outcome.not_found
    elif http == 400:
        # USPS rejected the number as asked (150011 pickup transaction, 150012
        # fraudulent postage, or a sub-code we do not know).
        outcome = Outcome.invalid_number
    else:
        raise read.malformed(
            f"unexpected HTTP {http} error envelope (codes {', '.join(sub_codes) or 'none'})"
        )
    code = sub_codes[index] if index is not None and sub_codes[index] else str(http)
    words = [read.optional_text(error.get("message"), "error.message")]
    if index is not None:
        item = items[index]
        words = [
            read.optional_text(item.get("title"), "error.errors.title"),
            read.optional_text(item.get("detail"), "error.errors.detail"),
            *words,
        ]
    message = next((_clean(w) for w in words if w and _clean(w)), "")
    return CarrierMessage(
        carrier=CARRIER, tracking_number=requested, outcome=outcome, code=code, message=message
    )


# -- tracking details ---------------------------------------------------------


def _result(read: Reader, payload: Mapping[str, Any], requested: str) -> TrackingResult:
    warnings = read.warnings
    number = read.optional_text(payload.get("trackingNumber"), "trackingNumber")
    if number and _squash(number) != _squash(requested):
        warnings.append(f"USPS answered for {number!r}, not {requested!r}")

    raw_events = read.objects(payload.get("trackingEvents"), "trackingEvents")
    offsets = [
        _offset(read.optional_text(raw.get("GMTOffset"), f"trackingEvents[{i}].GMTOffset"), warnings, i)
        for i, raw in enumerate(raw_events)
    ]
    # USPS sends events newest first; their order is kept because some of
    # their times are repaired or guessed below and must not reorder history.
    events = [_event(read, raw, i, offsets) for i, raw in enumerate(raw_events)]

    category = read.text(payload.get("statusCategory"), "statusCategory")
    newest = events[0] if events else None
    result_status = units.STATUS_BY_EVENT_CODE.get(newest.code) if newest else None
    if result_status is None and category:
        result_status = units.STATUS_BY_CATEGORY.get(units.category_key(category))
    result_status = result_status or TrackingStatus.unknown

    unmapped = sorted(
        {
            e.code
            for e in events
            if e.code not in units.STATUS_BY_EVENT_CODE
            and e.code not in units.DEFERRING_EVENT_CODES
        }
    )
    if unmapped or result_status is TrackingStatus.unknown:
        log.warning(
            "carrier_status_unmapped",
            carrier=CARRIER.value,
            tracking_number=requested,
            event_codes=unmapped,
            newest_event_code=newest.code if newest else None,
            status_category=category,
            status=result_status.value,
        )

    detail = read.optional_text(payload.get("status"), "status") or ""
    # The label's own event (GX/MA); failing that, the oldest label-side event
    # (a shipping partner's 80/81/82), so the tender grace clock still runs.
    label_created_at = next(
        (
            e.occurred_at
            for e in reversed(events)
            if e.code in units.LABEL_EVENT_CODES and e.occurred_at is not None
        ),
        None,
    ) or next(
        (
            e.occurred_at
            for e in reversed(events)
            if e.status is TrackingStatus.label_created and e.occurred_at is not None
        ),
        None,
    )
    delivered_at = None
    if result_status is TrackingStatus.delivered:
        delivered_at = next(
            (
                e.occurred_at
                for e in events
                if e.status is TrackingStatus.delivered and e.occurred_at is not None
            ),
            None,
        )
    return TrackingResult(
        carrier=CARRIER,
        tracking_number=requested,
        status=result_status,
        carrier_status_code=newest.code if newest else None,
        status_detail=detail or (newest.description if newest and newest.description else None),
        events=events,
        label_created_at=label_created_at,
        estimated_delivery=_estimated_delivery(read, payload),
        delivered_at=delivered_at,
        parse_warnings=warnings,
    )


def _event(
    read: Reader, raw: Mapping[str, Any], index: int, offsets: Sequence[timezone | None]
) -> TrackingEvent:
    def text(key: str) -> str | None:
        return read.optional_text(raw.get(key), f"trackingEvents[{index}].{key}")

    code = read.text(raw.get("eventCode"), f"trackingEvents[{index}].eventCode") or ""
    place = {
        "city": text("eventCity"),
        "state": text("eventState"),
        "postal_code": text("eventZIP"),
        "country": text("eventCountry"),
    }
    return TrackingEvent(
        occurred_at=_event_time(
            text("eventTimestamp"), text("GMTTimestamp"), index, offsets, read.warnings, code
        ),
        status=units.STATUS_BY_EVENT_CODE.get(code, TrackingStatus.unknown),
        code=code,
        description=text("eventType") or "",
        location=Location(**place) if any(place.values()) else None,
        physical=units.is_physical(code),
    )


def _event_time(
    local_text: str | None,
    gmt_text: str | None,
    index: int,
    offsets: Sequence[timezone | None],
    warnings: list[str],
    code: str,
) -> datetime | None:
    """
    When an event happened, always timezone-aware.

    1. ``GMTTimestamp`` (UTC), shown in the event's ``GMTOffset``. Real USPS
       payloads sometimes carry the *local* date on it (an event at 18:31
       local, -06:00, with GMTTimestamp 00:31Z the same day, a day early): when
       it disagrees with ``eventTimestamp + GMTOffset`` the latter wins.
    2. ``eventTimestamp`` (local wall time, no offset in v3) + ``GMTOffset``.
       An explicit non-UTC offset on eventTimestamp counts as its GMTOffset; a
       ``Z`` does not (the USPS README puts ``Z`` on a local time).
    3. ``eventTimestamp`` alone: the GMTOffset of the nearest event in the same
       answer (label events often lack it), else UTC; either with a warning.
    """
    where = f"event {index} ({code or 'no code'})"
    offset = offsets[index]
    local = _parse_datetime(local_text)
    if local_text and local is None:
        warnings.append(f"{where}: eventTimestamp {local_text!r} is not a date-time")
    if local is not None and local.tzinfo is not None:
        own = local.utcoffset()
        if offset is None and own:
            offset = timezone(own)
        local = local.replace(tzinfo=None)

    gmt = _parse_datetime(gmt_text)
    if gmt_text and gmt is None:
        warnings.append(f"{where}: GMTTimestamp {gmt_text!r} is not a date-time")
    if gmt is not None:
        gmt = gmt.replace(tzinfo=UTC) if gmt.tzinfo is None else gmt.astimezone(UTC)
        if local is not None and offset is not None:
            from_local = local.replace(tzinfo=offset)
            if abs(from_local - gmt) > _GMT_AGREEMENT:
                warnings.append(
                    f"{where}: GMTTimestamp {gmt_text} disagrees with eventTimestamp "
                    f"{local_text} at {_offset_text(offset)}; used the local time"
                )
                return from_local
        return gmt.astimezone(offset or UTC)

    if local is None:
        return None
    if offset is not None:
        return local.replace(tzinfo=offset)
    borrowed = _nearest_offset(offsets, index)
    if borrowed is not None:
        warnings.append(
            f"{where}: no GMT time or offset; assumed {_offset_text(borrowed)} "
            "from a neighbouring event"
        )
        return local.replace(tzinfo=borrowed)
    warnings.append(f"{where}: no GMT time or offset; assumed UTC")
    return local.replace(tzinfo=UTC)


def _nearest_offset(offsets: Sequence[timezone | None], index: int) -> timezone | None:
    for distance in range(1, len(offsets)):
        for j in (index - distance, index + distance):
            if 0 <= j < len(offsets) and offsets[j] is not None:
                return offsets[j]
    return None


def _offset(value: str | None, warnings: list[str], index: int) -> timezone | None:
    if not value or not value.strip():
        return None
    match = _OFFSET_RE.match(value.strip())
    if match is None:
        warnings.append(f"event {index}: GMTOffset {value!r} not understood")
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta >= timedelta(hours=24):
        warnings.append(f"event {index}: GMTOffset {value!r} out of range")
        return None
    return timezone(-delta if sign == "-" else delta)


def _offset_text(offset: timezone) -> str:
    return datetime(2000, 1, 1, tzinfo=offset).strftime("%z")


def _parse_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _estimated_delivery(read: Reader, payload: Mapping[str, Any]) -> date | None:
    for key in ("expectedDeliveryTimeStamp", "predictedDeliveryDate"):
        value = read.optional_text(payload.get(key), key)
        if not value:
            continue
        parsed = _parse_datetime(value)
        if parsed is not None:
            return parsed.date()
        read.warnings.append(f"{key} {value!r} is not a date")
    return None


# -- small helpers ------------------------------------------------------------


def _clean(value: str) -> str:
    """USPS words for display: tags (``<SUP>&reg;</SUP>``) and entities out, spaces folded."""
    # USPS sometimes drops the '&' of an entity inside <SUP> ("<SUP>reg;</SUP>").
    text = _SUP_ENTITY_RE.sub(r"&\1", value)
    text = html.unescape(_TAG_RE.sub("", text))
    return " ".join(text.split()).rstrip(" -")


def _squash(number: str) -> str:
    return "".join(ch for ch in number if ch.isalnum()).upper()
