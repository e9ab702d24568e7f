"""
What the order and warehouse systems tell tracksvc: shipment and order
records (design.md section 3), validated with pydantic. Pure; the Redis side
is :mod:`tracksvc.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from tracksvc import references
from tracksvc.errors import InvalidReference
from tracksvc.models import Carrier

#: A reference-like identifier: printable, 1-64 characters.
Ident = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                         pattern=r"^[^\x00-\x1f\x7f]+$")]


class Direction(StrEnum):
    """Which way a parcel goes."""

    outbound = "outbound"
    return_ = "return"


#: Validation context for a record tracksvc stored itself (``model_validate_json(raw,
#: context=STORED)``): the JSON is still checked field by field, but the tracking
#: number, already in the form the carrier is asked, is not detected again.
STORED: Mapping[str, bool] = MappingProxyType({"stored": True})

#: Internal statuses that claim the parcel left our hands.
CLAIMS_SHIPPED = frozenset({"shipped", "in_transit", "out_for_delivery", "delivered", "departed"})


def _aware(value: datetime | None) -> datetime | None:
    # A naive time is refused rather than guessed: a warehouse clock in
    # Dallas read as UTC would move every label six hours and make labels
    # look tendered late (or early). Stored times are UTC.
    if value is None:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone offset, e.g. 2026-11-03T14:05:00Z or ...-06:00")
    return value.astimezone(UTC)


class ShipmentRecord(BaseModel):
    """One label the warehouse printed (``PUT /v1/shipments/{shipment_id}``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    shipment_id: Ident
    order_number: Ident | None = None
    carrier: Carrier
    tracking_number: Ident
    label_created_at: datetime
    origin: Ident | None = None
    direction: Direction = Direction.outbound
    promised_delivery_date: date | None = None
    #: What the internal system claims (shipped, in_transit, delivered, ...).
    internal_status: str | None = Field(default=None, max_length=64)
    #: Free text from internal systems; shown to agents, never to customers.
    internal_note: str | None = Field(default=None, max_length=500)
    #: The internal "shipping number", when it differs from the tracking number.
    internal_shipping_number: Ident | None = None
    destination_postal_code: str | None = Field(default=None, max_length=16)
    #: Other numbers the customer may hold: original online order, RMA, store order.
    aliases: list[Ident] = Field(default_factory=list, max_length=20)
    #: The label was voided in our system.
    voided: bool = False
    #: Set by tracksvc when a carrier first scanned the parcel.
    first_scan_at: datetime | None = None

    _aware_times = field_validator("label_created_at", "first_scan_at")(_aware)

    @field_validator("internal_status")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else value

    @field_validator("tracking_number")
    @classmethod
    def _tracking_number_fits_carrier(cls, value: str, info: ValidationInfo) -> str:
        """Store the number exactly as the carrier is asked (e.g. USPS without 420+ZIP)."""
        if info.context is not None and info.context.get("stored"):
            return value  # validated, and put in this form, when it was stored
        carrier = info.data.get("carrier")
        if not isinstance(carrier, Carrier):
            return value  # the carrier's own error says what is wrong
        try:
            reference = references.normalize(value)
        except InvalidReference as exc:
            raise ValueError(str(exc)) from exc
        for candidate in references.candidates(reference):
            if candidate.carrier is carrier:
                return candidate.number
        raise ValueError(
            f"{value!r} is not a valid {carrier.value} tracking number (format and check digit)"
        )

    @property
    def claims_shipped(self) -> bool:
        """The internal system says the parcel left us."""
        return (self.internal_status or "") in CLAIMS_SHIPPED


class OrderRecord(BaseModel):
    """An order, known before any label (``PUT /v1/orders/{order_number}``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_number: Ident
    ordered_at: datetime | None = None
    promised_ship_by: datetime | None = None
    promised_delivery_date: date | None = None
    destination_postal_code: str | None = Field(default=None, max_length=16)
    #: Earlier order numbers this order re-placed (cancelled and placed again).
    replaces: list[Ident] = Field(default_factory=list, max_length=20)
    channel: str | None = Field(default=None, max_length=32)
    cancelled: bool = False

    _aware_times = field_validator("ordered_at", "promised_ship_by")(_aware)
