"""
Labels never picked up, as the warehouse acts on them: until when each can
still be voided or refunded, what is at stake, and how old they are.

Pure rules: no I/O. The windows come from settings (``TRACKSVC_VOID_WINDOW_DAYS_*``),
the labels from the registry's unscanned index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tracksvc.core.models import Carrier
from tracksvc.domain.records import ShipmentRecord

#: Where the default void and refund windows come from (README, "Labels to void"). To be
#: confirmed with the shipper's own carrier contract, which may say otherwise.
WINDOW_SOURCES: dict[Carrier, str] = {
    Carrier.ups: "an unused UPS label can be voided up to 90 days after it was created, later only "
                 "through UPS customer service (UPS-integrated platforms' void guides)",
    Carrier.fedex: "FedEx bills on scan; an unused label can be cancelled up to 90 days after "
                   "it was created (EasyPost's FedEx refund guide)",
    Carrier.usps: "USPS refunds an unused Click-N-Ship label requested within 30 days of its "
                  "print date (USPS Click-N-Ship refunds article; 30-60 days only by e-mail)",
}

EN_DASH = "\u2013"

#: Edges of the chart's age buckets, in hours (3 days, 7 days).
BUCKET_EDGES_H = (72.0, 168.0)


def void_deadline(record: ShipmentRecord, window_days: float) -> datetime:
    """When a label's carrier window for voiding or refunding it closes (label time + window)."""
    return record.label_created_at + timedelta(days=window_days)


def voidable(record: ShipmentRecord, window_days: float, now: datetime) -> bool:
    """The label can still be voided: a window of more than 0 days that has not closed yet."""
    return window_days > 0 and void_deadline(record, window_days) > now


def widest_window(window_days: Callable[[Carrier], float]) -> float:
    """The longest window of any carrier, in days: older labels cannot be on the list."""
    return max(window_days(carrier) for carrier in Carrier)


@dataclass(frozen=True)
class Stake:
    """Money at stake in one currency: the sum of the known label costs, and how many labels."""

    currency: str
    amount: Decimal
    labels: int

    def as_dict(self) -> dict[str, object]:
        """The JSON shape (the amount as a decimal string, no digit lost)."""
        return {"currency": self.currency, "amount": format(self.amount, "f"), "labels": self.labels}


def stakes(records: Iterable[ShipmentRecord]) -> tuple[list[Stake], int]:
    """
    The total of the known label costs per currency (currencies in alphabetical order).

    Returns:
        The totals, and how many labels have no cost (they are not in any total).
    """
    sums: dict[str, tuple[Decimal, int]] = {}
    unknown = 0
    for record in records:
        if record.label_cost is None:
            unknown += 1
            continue
        currency = record.label_cost_currency or "USD"
        amount, count = sums.get(currency, (Decimal(0), 0))
        sums[currency] = (amount + record.label_cost, count + 1)
    return [Stake(c, amount, n) for c, (amount, n) in sorted(sums.items())], unknown


@dataclass(frozen=True)
class AgeBucket:
    """One column of the chart: labels at least ``min_hours`` and less than ``max_hours`` old."""

    key: str
    label: str
    min_hours: float
    max_hours: float | None

    def bounds(self, now_ts: float) -> tuple[float, float]:
        """The label-time range ``(low, high]`` (epoch seconds) of this bucket at ``now_ts``."""
        low = -math.inf if self.max_hours is None else now_ts - self.max_hours * 3600
        return low, now_ts - self.min_hours * 3600

    def as_dict(self) -> dict[str, object]:
        """The JSON shape."""
        return {
            "key": self.key, "label": self.label, "min_hours": self.min_hours, "max_hours": self.max_hours,
        }


def _days(hours: float) -> str:
    return f"{hours / 24:g}"


def age_buckets(grace_hours: float) -> list[AgeBucket]:
    """
    The chart's age buckets past the tender grace period: by default 2-3 days, 3-7 days, over 7.

    A bucket that ends before the grace period is left out; the first one starts at it.
    """
    buckets: list[AgeBucket] = []
    low = grace_hours
    for high in (*BUCKET_EDGES_H, None):
        if high is not None and high <= low:
            continue
        if high is None:
            buckets.append(AgeBucket(f"over-{_days(low)}d", f"> {_days(low)} d", low, None))
        else:
            span = f"{_days(low)}{EN_DASH}{_days(high)}"
            buckets.append(AgeBucket(f"{_days(low)}-{_days(high)}d", f"{span} d", low, high))
            low = high
    return buckets
