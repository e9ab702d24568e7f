"""
USPS emulation for the sandbox: OAuth ``POST /oauth2/v3/token`` and Tracking
v3 ``GET /tracking/v3/tracking/{trackingNumber}``, in the wire format of the
real API (carrier-apis.md section 3 and the captured samples in
``../shared/carrier-samples/usps``).

Scenario steps become USPS event codes:

=================  =====  =============================================
step               code   eventType
=================  =====  =============================================
label              GX     Shipping Label Created, USPS Awaiting Item
pickup             03     USPS in possession of item
arrival            10     Arrived at USPS Regional Origin Facility
                   A1     Arrived at USPS Regional Facility (after a departure)
departure          T1     Departed USPS Regional Facility
out_for_delivery   OF     Out for Delivery
attempt            02     Notice Left (No Authorized Recipient Available)
ready_for_pickup   16     Available for Pickup
delivered          01     Delivered, In/At Mailbox
exception          05     Undeliverable as Addressed
return_to_sender   09     Return to Sender Processed
void               --     nothing: USPS documents no void event
=================  =====  =============================================

A number USPS has no events for answers like real v3: HTTP 400 with sub-code
150001 "12: A status update is not yet available ...".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from carriers.models import Carrier
from carriers.sandbox.scenarios import Scenario, Step
from carriers.sandbox.state import FaultPlan, SandboxState

API_VERSION = "/tracking/v3"

#: Real v3 wording (omniship capture), including USPS's broken "reg;" entity.
NOT_YET_AVAILABLE = (
    "12: A status update is not yet available on your package. It will be available when the "
    "shipper provides an update or the package is given to USPS. Check back soon. Sign up for "
    "Informed Delivery<SUP>reg;</SUP> to receive notifications for packages addressed to you. - "
)

#: Real 401 wording for a token the tracking API does not accept (issue #56).
INVALID_CLIENT_APP = "The client application identifier is invalid."


@dataclass(frozen=True)
class _Place:
    city: str
    state: str | None
    zip_code: str | None
    zone: tzinfo


_CENTRAL = ZoneInfo("America/Chicago")
_EASTERN = ZoneInfo("America/New_York")

#: Where scenario cities are; unknown cities fall back to Eastern time.
_CITIES: Mapping[str, tuple[str | None, str | None, tzinfo]] = {
    "DALLAS": ("TX", "75201", _CENTRAL),
    "BROOKLYN": ("NY", "11201", _EASTERN),
}


@dataclass(frozen=True)
class _EventSpec:
    code: str
    event_type: str
    category: str


#: Step -> what USPS says; arrival has two forms (origin / after a departure).
_EVENTS: Mapping[Step, _EventSpec] = {
    Step.label: _EventSpec("GX", "Shipping Label Created, USPS Awaiting Item", "Pre-Shipment"),
    Step.pickup: _EventSpec("03", "USPS in possession of item", "Accepted"),
    Step.arrival: _EventSpec(
        "10", "Arrived at USPS Regional Origin Facility", "Moving Through Network"
    ),
    Step.departure: _EventSpec("T1", "Departed USPS Regional Facility", "Moving Through Network"),
    Step.out_for_delivery: _EventSpec("OF", "Out for Delivery", "Out for Delivery"),
    Step.attempt: _EventSpec(
        "02", "Notice Left (No Authorized Recipient Available)", "Delivery Attempt"
    ),
    Step.ready_for_pickup: _EventSpec("16", "Available for Pickup", "Available for Pickup"),
    Step.delivered: _EventSpec("01", "Delivered, In/At Mailbox", "Delivered"),
    Step.exception: _EventSpec("05", "Undeliverable as Addressed", "Alert"),
    Step.return_to_sender: _EventSpec("09", "Return to Sender Processed", "Alert"),
}
_ARRIVAL_DOWNSTREAM = _EventSpec("A1", "Arrived at USPS Regional Facility", "Moving Through Network")

_SUMMARY_VERBS: Mapping[str, str] = {
    "Pre-Shipment": "A shipping label has been prepared for your item",
    "Accepted": "USPS is now in possession of your item",
    "Moving Through Network": "Your item is moving through the USPS network",
    "Out for Delivery": "Your item is out for delivery",
    "Delivery Attempt": "We attempted to deliver your item",
    "Available for Pickup": "Your item is available for pickup",
    "Delivered": "Your item was delivered",
    "Alert": "There is an issue with your item",
}


def install(app: web.Application, state: SandboxState) -> None:
    """Register the USPS token and tracking routes."""

    async def token(request: web.Request) -> web.Response:
        return await _token(request, state)

    async def tracking(request: web.Request) -> web.StreamResponse:
        return await _tracking(request, state)

    app.router.add_post("/oauth2/v3/token", token)
    app.router.add_get("/tracking/v3/tracking/{trackingNumber}", tracking)


# -- OAuth ------------------------------------------------------------------


async def _token(request: web.Request, state: SandboxState) -> web.Response:
    """Client credentials as JSON (USPS README) or a form (karrio) body."""
    fields: Mapping[str, Any]
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            body = None
        fields = body if isinstance(body, dict) else {}
    else:
        fields = await request.post()
    if fields.get("grant_type") != "client_credentials":
        return web.json_response(
            {
                "error": "unsupported_grant_type",
                "error_description": "Only client_credentials is supported here.",
            },
            status=400,
        )
    client_id = str(fields.get("client_id") or "")
    client_secret = str(fields.get("client_secret") or "")
    if not state.credentials_ok(Carrier.usps, client_id, client_secret):
        return web.json_response(
            {
                "error": "invalid_client",
                "error_description": "Client authentication failed.",
                "error_uri": "https://datatracker.ietf.org/doc/html/rfc6749#page-45",
            },
            status=401,
        )
    access_token, ttl_s = state.issue_token(Carrier.usps)
    return web.json_response(
        {
            "access_token": access_token,
            "token_type": "Bearer",
            "issued_at": int(time.time() * 1000),
            "expires_in": ttl_s,
            "status": "approved",
            "scope": "tracking addresses locations prices labels",
            "issuer": "https://keyc.usps.com/realms/USPS",
            "client_id": client_id,
            "application_name": "tracksvc-sandbox",
            "api_products": "[Public Access I]",
            "public_key": "c2FuZGJveC1wdWJsaWMta2V5",
        }
    )


# -- tracking ---------------------------------------------------------------


def render_error(status: int, code: str, message: str) -> web.Response:
    """The USPS v3 error envelope (``error.code`` is the HTTP status as text)."""
    errors: list[dict[str, Any]]
    headers: dict[str, str] = {}
    if status == 401:
        # Real 401s carry an empty errors list (issue #56).
        message, errors = INVALID_CLIENT_APP, []
        headers["WWW-Authenticate"] = 'Bearer realm="https://api.usps.com"'
    elif status == 429:
        # Real quota body (magento/quality-patches#154).
        message = (
            "Exceeded quota limit. Please contact https://emailus.usps.com/s/web-tools-inquiry "
            "and a representative will assist."
        )
        errors = [
            {
                "title": "Too Many Requests.",
                "detail": "Quota limit exceeded. The number of requests has exceeded the quota "
                "established for the time period.",
                "status": "429",
                "source": {"parameter": "API product or default", "APIProduct": "Public Access I"},
            }
        ]
    else:
        errors = [{"status": str(status), "code": code, "title": message, "detail": ""}]
    body = {
        "apiVersion": API_VERSION,
        "error": {"code": str(status), "message": message, "errors": errors},
    }
    return web.json_response(body, status=status, headers=headers)


def _not_yet_available() -> web.Response:
    return web.json_response(
        {
            "apiVersion": API_VERSION,
            "error": {
                "code": "400",
                "message": NOT_YET_AVAILABLE,
                "errors": [{"title": NOT_YET_AVAILABLE, "detail": "", "code": "150001"}],
            },
        },
        status=400,
    )


async def _tracking(request: web.Request, state: SandboxState) -> web.StreamResponse:
    number = request.match_info["trackingNumber"]
    early = await state.before_tracking(request, Carrier.usps, render_error)
    if early is not None:
        return early
    scenario = state.scenario(Carrier.usps, number)
    if scenario is None or scenario.not_found:
        return _not_yet_available()
    if scenario.fault == "malformed":
        # Cut off mid-object, as a dropped proxy connection leaves it.
        return web.Response(
            status=200,
            body=b'{"trackingNumber":"' + number.encode() + b'","trackingEvents":[{"eventType":',
            content_type="application/json",
        )
    if scenario.fault:
        response = await state.play_fault(
            request, FaultPlan(scenario.fault, 1), render_error, carrier=Carrier.usps
        )
        if response is not None:
            return response
    details = render_details(scenario, now=datetime.now(UTC))
    if details is None:
        return _not_yet_available()
    if request.query.get("expand", "SUMMARY").upper() != "DETAIL":
        # The default SUMMARY view carries only the summary text.
        details = {
            "trackingNumber": details["trackingNumber"],
            "statusSummary": details["statusSummary"],
        }
    return web.json_response(details)


def render_details(scenario: Scenario, *, now: datetime) -> dict[str, Any] | None:
    """
    A scenario as v3 ``TrackingDetails`` (None when USPS would have no events).

    Args:
        scenario: the story to tell.
        now: the moment the step ages are measured from (aware).
    """
    origin = _place(scenario.origin_city)
    destination = _place(scenario.destination_city)
    origin_dc = _Place(f"{origin.city} {origin.state} DISTRIBUTION CENTER", None, None, origin.zone)
    dest_dc = _Place(
        f"{destination.city} {destination.state} DISTRIBUTION CENTER", None, None, destination.zone
    )
    events: list[tuple[_EventSpec, datetime, _Place]] = []  # oldest first
    departed = False
    for step, age in scenario.steps:
        spec = _EVENTS.get(step)
        if spec is None:  # void: USPS has no such event
            continue
        place = destination
        if step in (Step.label, Step.pickup):
            place = origin
        elif step is Step.arrival:
            spec, place = (_ARRIVAL_DOWNSTREAM, dest_dc) if departed else (spec, origin_dc)
        elif step is Step.departure:
            place = dest_dc if departed else origin_dc
            departed = True
        events.append((spec, now - age, place))
    if not events:
        return None

    newest_spec, newest_at, newest_place = events[-1]
    local = newest_at.astimezone(newest_place.zone)
    clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'pm' if local.hour >= 12 else 'am'}"
    summary = (
        f"{_SUMMARY_VERBS.get(newest_spec.category, newest_spec.event_type)} "
        f"({newest_spec.event_type}) at {clock} on "
        f"{local.strftime('%B')} {local.day}, {local.year} in {newest_place.city}"
        f"{', ' + newest_place.state if newest_place.state else ''}"
        f"{' ' + newest_place.zip_code if newest_place.zip_code else ''}."
    )
    details: dict[str, Any] = {
        "trackingNumber": scenario.number,
        "mailClass": "USPS Ground Advantage<SUP>&#153;</SUP>",
        "mailType": "DM",
        "serviceTypeCode": "001",
        "services": ["USPS Tracking<SUP>&#174;</SUP>", "Up to $100 insurance included"],
        "originCity": origin.city,
        "originState": origin.state,
        "originZIP": origin.zip_code,
        "destinationCity": destination.city,
        "destinationState": destination.state,
        "destinationZIP": destination.zip_code,
        "emailEnabled": "true",
        "kahalaIndicator": "false",
        "proofOfDeliveryEnabled": "false",
        "restoreEnabled": "false",
        "RRAMEnabled": "false",
        "RREEnabled": "false",
        "status": newest_spec.event_type,
        "statusCategory": newest_spec.category,
        "statusSummary": summary,
        "tableCode": "T",
        "trackingEvents": [_event(spec, at, place) for spec, at, place in reversed(events)],
    }
    if scenario.eta is not None:
        eta = (now + scenario.eta).astimezone(destination.zone).date()
        details["expectedDeliveryTimeStamp"] = f"{eta.isoformat()}T00:00:00"
    return details


def _event(spec: _EventSpec, at: datetime, place: _Place) -> dict[str, Any]:
    local = at.astimezone(place.zone)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return {
        "eventType": spec.event_type,
        # Local wall time to the minute, no offset; GMT to the second (as USPS sends).
        "eventTimestamp": local.replace(second=0, microsecond=0, tzinfo=None).isoformat(),
        "GMTTimestamp": at.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z",
        "GMTOffset": f"{sign}{minutes // 60:02d}:{minutes % 60:02d}",
        "eventCountry": None,
        "eventCity": place.city,
        "eventState": place.state,
        "eventZIP": place.zip_code,
        "firm": None,
        "name": None,
        "authorizedAgent": "false",
        "eventCode": spec.code,
        "additionalProp": None,
    }


def _place(city: str) -> _Place:
    state, zip_code, zone = _CITIES.get(city.upper(), (None, None, _EASTERN))
    return _Place(city.upper(), state, zip_code, zone)
