"""HTTP statuses that fail a carrier call as a whole, shared by the three parsers."""

from __future__ import annotations

import pytest

from tracksvc.core.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierRateLimited,
    CarrierUnavailable,
    error_for_status,
)
from tracksvc.core.models import Carrier


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, CarrierAuthError), (403, CarrierAuthError), (429, CarrierRateLimited),
     (500, CarrierUnavailable), (503, CarrierUnavailable)],
)
def test_whole_call_failures_by_status(status: int, expected: type[CarrierError]) -> None:
    """Auth, rate limit and 5xx become the matching error, naming the carrier and the detail."""
    error = error_for_status(status, carrier=Carrier.fedex, detail="NOT.AUTHORIZED", tracking_number="1")
    assert type(error) is expected
    assert error is not None
    assert error.status == status
    assert error.tracking_number == "1"
    assert error is not None
    assert str(error).startswith(f"fedex HTTP {status}")
    assert error.message.startswith("FedEx ")
    assert "NOT.AUTHORIZED" in error.message


@pytest.mark.parametrize("status", [200, 207, 400, 404])
def test_statuses_the_parser_reads_are_not_errors(status: int) -> None:
    """2xx, 400 and 404 carry per-number answers: the parser decides, not this table."""
    assert error_for_status(status, carrier=Carrier.ups, detail="") is None
