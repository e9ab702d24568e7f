"""
The JSON shapes tracksvc answers with (agent view, errors), as pydantic
models that mirror ``openapi.yaml``.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from tracksvc.core.models import Carrier, Location, TrackingStatus
from tracksvc.domain.flags import Flag


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventView(_View):
    """One carrier event as shown to people."""

    occurred_at: datetime | None
    status: TrackingStatus
    code: str
    description: str
    location: str | None


class CarrierProblem(_View):
    """
    Why the carrier could not be asked, kept for support (agent view only).

    ``kind`` names the failure (:class:`tracksvc.domain.failures.FailureKind`);
    ``detail`` is the raw reason (HTTP status, parser or transport message),
    never shown as advice: :mod:`tracksvc.domain.failures` words it.
    """

    carrier: Carrier
    kind: str
    #: When the lookup met the failure.
    asked_at: datetime
    detail: str


class ShipmentView(_View):
    """One shipment (one carrier tracking number), agent view."""

    shipment_id: str | None = None
    carrier: Carrier
    tracking_number: str
    tracking_url: str
    direction: str = "outbound"
    status: TrackingStatus
    status_detail: str | None = None
    carrier_status_code: str | None = None
    label_created_at: datetime | None = None
    #: When the deciding clock started: label time for not_tendered, last scan for stalled.
    status_since: datetime | None = None
    last_event: EventView | None = None
    events: list[EventView] = Field(default_factory=list)
    estimated_delivery: date | None = None
    delivered_at: datetime | None = None
    as_of: datetime | None = None
    freshness: str
    #: Why the carrier could not be asked, or why the answer is stale, in words (never raw text).
    reason: str | None = None
    #: The failure behind ``reason``, with its raw detail for support; None when the carrier answered.
    carrier_problem: CarrierProblem | None = None
    flags: list[Flag] = Field(default_factory=list)
    #: Registry facts (agent view only): where it left from, what our systems claim.
    order_number: str | None = None
    origin: str | None = None
    internal_status: str | None = None
    internal_note: str | None = None
    internal_shipping_number: str | None = None
    #: Other numbers the customer may hold for this parcel (an RMA, a store order).
    aliases: list[str] = Field(default_factory=list)
    promised_delivery_date: date | None = None


class TrackView(_View):
    """Answer of ``GET /v1/track/{reference}``: the agent view."""

    reference: str
    #: What the reference was: order_number, shipment_id, tracking_number,
    #: internal_shipping_number, alias, replaced_order, or carrier_number (unregistered).
    matched: str
    order_number: str | None = None
    #: The earlier order number the reference was, when that order was re-placed.
    replaced_from: str | None = None
    status: TrackingStatus
    summary: str
    flags: list[Flag] = Field(default_factory=list)
    agent_advice: str
    customer_message: str
    shipments: list[ShipmentView]


class ErrorDetail(_View):
    """The ``error`` member of every error answer."""

    code: str
    message: str
    details: object | None = None


class ErrorBody(_View):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def location_text(location: Location | None) -> str | None:
    """A location as one line, or None when the carrier gave none."""
    if location is None:
        return None
    return str(location) or None
