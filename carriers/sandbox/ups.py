"""
UPS emulation for the sandbox: the OAuth token endpoint and Track API v1,
in UPS's wire format (carrier-apis.md section 1).

Semantic scenario steps become UPS activities with the ``type``/``code``/
``statusCode`` triples seen in real answers (``M/MP/003``, ``P/PU/038``,
``I/AR/005``, ``D/F4/011``). Where no real sample shows the triple (void,
attempt, Access Point hold, address exception, return) the codes come from
the UPS appendix tables and are marked below as chosen by us.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from carriers.models import Carrier
from carriers.sandbox.scenarios import Scenario, Step
from carriers.sandbox.state import FAULT_MODES, FaultPlan, SandboxState

TOKEN_PATH = "/security/v1/oauth/token"
TRACK_PATH = "/api/track/v1/details/{inquiryNumber}"

#: The sandbox's generic fault codes, as UPS codes (carrier-apis.md 1.6).
_UPS_ERROR_CODES = {
    "unauthorized": "UJ0001",  # Invalid token or token is not present
    "token_expired": "251004",  # Bearer Token expired (oauth)
    "server_error": "10004",  # Something went wrong
    "too_many_requests": "10429",  # Too Many Requests
}


@dataclass(frozen=True)
class _Activity:
    """How UPS writes one step: activity status and the matching ``currentStatus``."""

    type: str
    code: str
    status_code: str
    description: str
    current: str  # currentStatus.description for this status code
    at_destination: bool


_ACTIVITY_BY_STEP: dict[Step, _Activity] = {
    # Seen in real answers (java-api-examples readme, omniship fixture).
    Step.label: _Activity(
        "M",
        "MP",
        "003",
        "Shipper created a label, UPS has not received the package yet. ",
        "Shipment Ready for UPS",
        False,
    ),
    Step.pickup: _Activity("P", "PU", "038", "Pickup Scan ", "Picked Up by UPS", False),
    Step.arrival: _Activity("I", "AR", "005", "Arrived at Facility", "On the Way", False),
    Step.departure: _Activity("I", "DP", "005", "Departed from Facility", "On the Way", False),
    Step.out_for_delivery: _Activity(
        "I", "OT", "021", "Out For Delivery Today", "Out for Delivery", True
    ),
    Step.delivered: _Activity("D", "F4", "011", "DELIVERED ", "Delivered", True),
    # Our choice from the UPS appendix: manifest void VP, status code 007.
    Step.void: _Activity(
        "MV", "VP", "007", "Shipment information voided", "Shipment Information Voided", False
    ),
    # Our choice: exception reason 48 with status code 022 (first attempt).
    Step.attempt: _Activity(
        "X",
        "48",
        "022",
        "The receiver was not available for delivery. "
        "We'll make a second attempt the next business day.",
        "First Attempt Made",
        True,
    ),
    # Our choice: an Access Point hold arrives as type X; only 017 says "pickup".
    Step.ready_for_pickup: _Activity(
        "X",
        "54",
        "017",
        "The receiver arranged to pick up the package at a UPS Access Point location.",
        "Held for Customer Pickup",
        True,
    ),
    # Our choice: exception with status code 013.
    Step.exception: _Activity(
        "X",
        "99",
        "013",
        "The address is incomplete or incorrect. Please contact UPS for additional information.",
        "Exception",
        True,
    ),
    # Our choice: return with status code 034.
    Step.return_to_sender: _Activity(
        "X",
        "RS",
        "034",
        "The receiver refused the delivery. The package will be returned to the sender.",
        "Returned to Sender",
        True,
    ),
}

#: State, postal code and UTC offset for the catalogue's cities.
_PLACES: dict[str, tuple[str, str, timedelta]] = {
    "DALLAS": ("TX", "75201", timedelta(hours=-5)),
    "BROOKLYN": ("NY", "11201", timedelta(hours=-4)),
}
_DEFAULT_OFFSET = timedelta(hours=-5)


def install(app: web.Application, state: SandboxState) -> None:
    """Register the UPS token and tracking routes."""

    async def token(request: web.Request) -> web.Response:
        return await _token(request, state)

    async def track(request: web.Request) -> web.StreamResponse:
        return await _track(request, state)

    app.router.add_post(TOKEN_PATH, token)
    app.router.add_get(TRACK_PATH, track)


def render_error(status: int, code: str, message: str) -> web.Response:
    """The UPS error envelope, with the sandbox's generic codes turned into UPS ones."""
    body = {"response": {"errors": [{"code": _UPS_ERROR_CODES.get(code, code), "message": message}]}}
    return web.json_response(body, status=status)


async def _token(request: web.Request, state: SandboxState) -> web.Response:
    credentials = _basic_credentials(request.headers.get("Authorization", ""))
    form = await request.post()
    if credentials is None or not state.credentials_ok(Carrier.ups, *credentials):
        return render_error(401, "250002", "Invalid Authentication Information.")
    client_id = credentials[0]
    if form.get("grant_type") != "client_credentials":
        return render_error(400, "10400", "Invalid/Missing grant_type")
    access_token, ttl_s = state.issue_token(Carrier.ups)
    return web.json_response(
        {
            "token_type": "Bearer",
            "issued_at": str(int(time.time() * 1000)),
            "client_id": client_id,
            "access_token": access_token,
            "scope": "",
            "expires_in": str(ttl_s),
            "refresh_count": "0",
            "status": "approved",
        }
    )


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """``(client id, client secret)`` from an HTTP Basic header, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, client_secret = decoded.partition(":")
    return (client_id, client_secret) if sep else None


async def _track(request: web.Request, state: SandboxState) -> web.StreamResponse:
    # Which code UPS's Track API gives for a missing header is not documented; the
    # Track Alert API uses VSS002 / VSS004, so the sandbox does too.
    if not request.headers.get("transId"):
        return render_error(400, "VSS002", "Missing transId")
    if not request.headers.get("transactionSrc"):
        return render_error(400, "VSS004", "Missing transactionSrc")
    refused = await state.before_tracking(request, Carrier.ups, render_error)
    if refused is not None:
        return refused
    number = request.match_info["inquiryNumber"].strip().upper()
    if not 7 <= len(number) <= 34:
        return render_error(400, "TV1002", "Invalid inquiry number")
    scenario = state.scenario(Carrier.ups, number)
    if scenario is None or scenario.not_found:
        return web.json_response(not_found_body(number))
    if scenario.fault in FAULT_MODES:
        answer = await state.play_fault(
            request, FaultPlan(scenario.fault, 1), render_error, carrier=Carrier.ups
        )
        if answer is not None:
            return answer
    return web.json_response(tracking_body(scenario, datetime.now(UTC)))


def not_found_body(number: str) -> dict[str, Any]:
    """What UPS answers (with HTTP 200) for a number it has no record of."""
    return {
        "trackResponse": {
            "shipment": [
                {
                    "inquiryNumber": number,
                    "warnings": [{"code": "TW0001", "message": "Tracking Information Not Found"}],
                }
            ]
        }
    }


def tracking_body(scenario: Scenario, now: datetime) -> dict[str, Any]:
    """
    A Track API answer for ``scenario`` as of ``now``.

    Args:
        scenario: the parcel's story, steps oldest first with ages.
        now: the time the answer is given (UTC).

    Returns:
        The ``trackResponse`` body, activities newest first.
    """
    activities: list[dict[str, Any]] = []
    arrivals = 0
    for step, age in scenario.steps:
        if step is Step.arrival:
            arrivals += 1
        spec = _ACTIVITY_BY_STEP[step]
        # The first hub is at the origin; any later arrival is the destination hub.
        at_destination = spec.at_destination or (
            step in (Step.arrival, Step.departure) and arrivals > 1
        )
        city = scenario.destination_city if at_destination else scenario.origin_city
        activities.append(_activity(spec, city, now - age, address_only=step is Step.label))
    activities.reverse()

    package: dict[str, Any] = {
        "trackingNumber": scenario.number,
        "deliveryDate": [],
        "activity": activities,
        "packageCount": 1,
        "service": {"code": "003", "levelCode": "003", "description": "UPS Ground"},
    }
    if scenario.steps:
        newest = _ACTIVITY_BY_STEP[scenario.steps[-1][0]]
        package["currentStatus"] = {"description": newest.current, "code": newest.status_code}
    delivered = [age for step, age in scenario.steps if step is Step.delivered]
    if delivered:
        local = _local(now - delivered[-1], scenario.destination_city)
        package["deliveryDate"] = [{"type": "DEL", "date": local.strftime("%Y%m%d")}]
        package["deliveryTime"] = {"type": "DEL", "endTime": local.strftime("%H%M%S")}
        package["deliveryInformation"] = {"location": "Front Door", "receivedBy": ""}
    elif scenario.eta is not None:
        eta = _local(now + scenario.eta, scenario.destination_city)
        package["deliveryDate"] = [{"type": "SDD", "date": eta.strftime("%Y%m%d")}]
        package["deliveryTime"] = {"type": "EOD", "endTime": "200000"}
    return {
        "trackResponse": {
            "shipment": [
                {
                    "inquiryNumber": scenario.number,
                    "userRelation": ["SHIPPER"],
                    "package": [package],
                }
            ]
        }
    }


def _local(when: datetime, city: str) -> datetime:
    offset = _PLACES.get(city.upper(), ("", "", _DEFAULT_OFFSET))[2]
    return when.astimezone(timezone(offset))


def _activity(spec: _Activity, city: str, when: datetime, *, address_only: bool) -> dict[str, Any]:
    state, postal, _ = _PLACES.get(city.upper(), ("", "", _DEFAULT_OFFSET))
    local = _local(when, city)
    utc = when.astimezone(UTC)
    offset = local.strftime("%z")
    address: dict[str, str] = {"countryCode": "US", "country": "US"}
    location: dict[str, Any] = {"address": address}
    if not address_only:
        # A label is not scanned anywhere: UPS gives only the country.
        address.update({"city": city.upper(), "stateProvince": state, "postalCode": postal})
        location["slic"] = "0761"
    return {
        "location": location,
        "status": {
            "type": spec.type,
            "description": spec.description,
            "code": spec.code,
            "statusCode": spec.status_code,
        },
        "date": local.strftime("%Y%m%d"),
        "time": local.strftime("%H%M%S"),
        "gmtDate": utc.strftime("%Y%m%d"),
        "gmtOffset": f"{offset[:3]}:{offset[3:]}",
        "gmtTime": utc.strftime("%H:%M:%S"),
    }
