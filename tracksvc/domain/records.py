"""
What the order and warehouse systems tell tracksvc: shipment and order
records (design.md section 3), validated with pydantic. Pure; the Redis side
is :mod:`tracksvc.registry.store`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tracksvc.core.errors import InvalidReference
from tracksvc.core.models import Carrier
from tracksvc.domain import references

#: Longest identifier (shipment id, order number, alias, internal shipping number, origin):
#: the longest reference ``GET /v1/track/{reference}`` takes, so every stored one can be found.
MAX_IDENTIFIER_LENGTH = references.MAX_REFERENCE_LENGTH

_LETTER_OR_DIGIT = re.compile(r"[^\W_]")

#: Validation context key: the zone a plain date is read in (a :class:`datetime.tzinfo`;
#: UTC when absent), from ``TRACKSVC_BUSINESS_TIMEZONE``.
BUSINESS_TIMEZONE = "business_timezone"


def _stored(info: ValidationInfo) -> bool:
    return bool(info.context is not None and info.context.get("stored"))


def check_identifier(value: str) -> str:
    """
    The one identifier rule: what is accepted here, ``GET /v1/track`` finds by the same text.

    Args:
        value: A shipment id, order number, alias, internal shipping number or origin.

    Returns:
        The value without surrounding spaces, as it is stored (its lookup key is
        :func:`tracksvc.references.normalize` of it).

    Raises:
        ValueError: The value holds a control, format or other invisible character
            (Unicode category ``C*``: a zero-width space, a bidi override, a BOM, a
            newline or tab anywhere, NUL), is empty, has no letter or digit, is
            longer than :data:`MAX_IDENTIFIER_LENGTH` characters, or has no lookup key.
    """
    if not value.isprintable():  # C-level scan; only then look for which character it is
        for char in value:
            if unicodedata.category(char).startswith("C"):
                name = unicodedata.name(char, "a control character")
                raise ValueError(f"contains U+{ord(char):04X} ({name}); control and format characters "
                                 "are not allowed")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if _LETTER_OR_DIGIT.search(text) is None:
        # "." or "-" alone: no URL can carry it (clients resolve "." and ".." segments).
        raise ValueError("must contain a letter or a digit")
    if len(text) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"is {len(text)} characters long; at most {MAX_IDENTIFIER_LENGTH} are allowed")
    if not text.isascii():  # printable ASCII with a letter or digit always has its key
        try:
            references.normalize(text)  # what a lookup of the same text computes
        except InvalidReference as exc:
            raise ValueError(exc.message) from exc
    return text


def _identifier(value: object, info: ValidationInfo) -> object:
    # Before pydantic strips whitespace: a trailing newline is refused, not trimmed away.
    if not isinstance(value, str) or _stored(info):
        return value  # a wrong type is pydantic's error; stored records were checked when written
    return check_identifier(value)


#: A reference-like identifier (:func:`check_identifier`): 1-64 characters, no control or
#: format characters, found by ``GET /v1/track`` under the same text.
Ident = Annotated[str, BeforeValidator(_identifier)]


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
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59:59-14:00 is in year 10000 in UTC
        raise ValueError("is out of range once converted to UTC") from exc


def end_of_day(day: date, zone: tzinfo) -> datetime:
    """
    The last instant of ``day`` in ``zone``, in UTC: what a plain-date deadline means.

    Args:
        day: The calendar day.
        zone: The business time zone (``TRACKSVC_BUSINESS_TIMEZONE``).
    """
    return datetime.combine(day, time.max, tzinfo=zone).astimezone(UTC)


def _plain_date_is_end_of_day(value: object, info: ValidationInfo) -> object:
    # "2026-11-23" (or a date) means the end of that day in the business zone; a time
    # keeps its own offset (and a time without one is refused by _aware).
    day: date | None = None
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str) and len(value.strip()) == 10:
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            return value  # pydantic's own error says what is wrong
    if day is None:
        return value
    zone = (info.context or {}).get(BUSINESS_TIMEZONE) or UTC
    try:
        return end_of_day(day, zone)
    except OverflowError as exc:
        raise ValueError("is out of range once converted to UTC") from exc


#: The currency of a ``label_cost`` sent without one (UPS, FedEx and USPS bill US accounts in USD).
DEFAULT_COST_CURRENCY = "USD"


def _plain_decimal(value: Decimal) -> Decimal:
    # "1e3" is stored and answered as "1000", not "1E+3"; "-0" as "0".
    return Decimal(0) if value.is_zero() else Decimal(format(value, "f"))


#: A label's cost: 0 to 100,000, at most 4 decimal places; sent as a JSON number or a string
#: ("7.35"), answered as a string so no digit is lost.
LabelCost = Annotated[
    Decimal,
    Field(ge=0, le=100_000, decimal_places=4, allow_inf_nan=False),
    AfterValidator(_plain_decimal),
]


class ShipmentRecord(BaseModel):
    """One label the warehouse printed (``PUT /v1/shipments/{shipment_id}``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    shipment_id: Ident
    #: Required on the way in: every label, returns included, belongs to an order.
    order_number: Ident | None = Field(default=None, validate_default=True)
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
    #: Set by tracksvc when a warehouse key voids the label (``POST .../void``): when, and who
    #: (the key's role and a one-way id of the key, never the key).
    voided_at: datetime | None = None
    voided_by: str | None = Field(default=None, max_length=64)
    #: Set by tracksvc when a carrier first scanned the parcel.
    first_scan_at: datetime | None = None
    #: What the label cost (optional): a non-negative decimal, at most 4 decimal places,
    #: in ``label_cost_currency`` (ISO 4217, ``USD`` when not given).
    label_cost: LabelCost | None = None
    label_cost_currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")

    _aware_times = field_validator("label_created_at", "first_scan_at", "voided_at")(_aware)

    @field_validator("label_cost_currency", mode="before")
    @classmethod
    def _currency_upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cost_has_a_currency(self) -> ShipmentRecord:
        # The carriers here bill in US dollars: a cost without a currency is USD.
        if self.label_cost is not None and self.label_cost_currency is None:
            self.label_cost_currency = DEFAULT_COST_CURRENCY
        return self

    @field_validator("order_number")
    @classmethod
    def _has_an_order(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Records stored before the rule may have none; they are still read.
        if value is None and not _stored(info):
            raise ValueError("is required: every label, returns included, belongs to an order")
        return value

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

    _end_of_day = field_validator("promised_ship_by", mode="before")(_plain_date_is_end_of_day)
    _aware_times = field_validator("ordered_at", "promised_ship_by")(_aware)
