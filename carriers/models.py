"""
The carrier contract: carrier-neutral models every adapter parses into.

The adapters turn their wire formats into :class:`TrackingResult` (and
:class:`CarrierMessage` for per-number outcomes); the service classifies and
aggregates them. Nothing here does I/O, and nothing here imports ``tracksvc``.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Carrier(StrEnum):
    """The carriers tracksvc speaks to."""

    ups = "ups"
    fedex = "fedex"
    usps = "usps"


class TrackingStatus(StrEnum):
    """Normalized status of a shipment or an order (design.md section 2)."""

    label_created = "label_created"
    not_tendered = "not_tendered"
    in_transit = "in_transit"
    stalled = "stalled"
    out_for_delivery = "out_for_delivery"
    delivery_attempted = "delivery_attempted"
    available_for_pickup = "available_for_pickup"
    delivered = "delivered"
    exception = "exception"
    returned_to_sender = "returned_to_sender"
    cancelled = "cancelled"
    not_found = "not_found"
    unknown = "unknown"
    awaiting_shipment = "awaiting_shipment"


class Outcome(StrEnum):
    """How a carrier answered for one number when it gave no tracking data."""

    not_found = "not_found"
    invalid_number = "invalid_number"
    auth_failed = "auth_failed"
    rate_limited = "rate_limited"
    unavailable = "unavailable"
    timeout = "timeout"
    malformed = "malformed"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Location(_Frozen):
    """Where a scan happened, as far as the carrier says."""

    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.city, self.state, self.postal_code, self.country) if p]
        return ", ".join(parts)


class TrackingEvent(_Frozen):
    """
    One carrier event, newest first in :attr:`TrackingResult.events`.

    ``status`` is the normalized meaning of this single event; ``code`` and
    ``description`` are the carrier's own code and words, kept verbatim
    (whitespace-trimmed).
    """

    occurred_at: datetime | None = None
    status: TrackingStatus
    code: str
    description: str = ""
    location: Location | None = None
    #: True when the carrier physically handled the parcel (not a label/manifest/info event).
    physical: bool = True


class CarrierMessage(_Frozen):
    """A carrier-level outcome returned as data (not found, invalid number, warnings)."""

    carrier: Carrier
    tracking_number: str | None = None
    outcome: Outcome
    code: str = ""
    message: str = ""


class TrackingResult(_Frozen):
    """
    What one carrier says about one tracking number, normalized.

    ``status`` is what the carrier data alone says; time-based statuses
    (``not_tendered``, ``stalled``) are decided later in ``tracksvc.domain.status``.
    """

    carrier: Carrier
    tracking_number: str
    status: TrackingStatus
    carrier_status_code: str | None = None
    status_detail: str | None = None
    events: list[TrackingEvent] = Field(default_factory=list)
    label_created_at: datetime | None = None
    estimated_delivery: date | None = None
    delivered_at: datetime | None = None
    #: Problems met while parsing that did not stop parsing (e.g. an odd date format).
    parse_warnings: list[str] = Field(default_factory=list)

    @property
    def last_event(self) -> TrackingEvent | None:
        """The newest event, if any."""
        return self.events[0] if self.events else None

    @property
    def last_physical_scan_at(self) -> datetime | None:
        """Time of the newest event in which the carrier handled the parcel."""
        for event in self.events:
            if event.physical and event.occurred_at is not None:
                return event.occurred_at
        return None
