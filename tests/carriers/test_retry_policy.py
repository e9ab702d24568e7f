"""Which carrier failures are worth another try (carriers.base retry policy)."""

from __future__ import annotations

import pytest

from carriers.base import MAX_RETRY_AFTER_S, RETRYABLE_STATUSES, _worth_retrying
from tracksvc.core.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierRateLimited,
    CarrierResponseError,
    CarrierTimeout,
    CarrierUnavailable,
)
from tracksvc.core.models import Carrier

UPS = Carrier.ups


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (CarrierUnavailable("reset", carrier=UPS), True),  # connection failed: no status
        *(
            (CarrierUnavailable("5xx", carrier=UPS, status=status), True)
            for status in sorted(RETRYABLE_STATUSES - {429})
        ),
        (CarrierUnavailable("not implemented", carrier=UPS, status=501), False),
        (CarrierUnavailable("version", carrier=UPS, status=505), False),
        (CarrierTimeout("slow", carrier=UPS), True),
        (CarrierRateLimited("429", carrier=UPS, retry_after_s=None), True),
        (CarrierRateLimited("429", carrier=UPS, retry_after_s=MAX_RETRY_AFTER_S), True),
        (CarrierRateLimited("429", carrier=UPS, retry_after_s=MAX_RETRY_AFTER_S + 1), False),
        (CarrierAuthError("401", carrier=UPS, status=401), False),
        (CarrierResponseError("bad JSON", carrier=UPS, status=200), False),
    ],
    ids=lambda v: v if isinstance(v, bool) else f"{type(v).__name__}-{getattr(v, 'status', '')}",
)
def test_only_transient_failures_are_retried(error: CarrierError, retry: bool) -> None:
    """Transport errors, the retryable statuses and short 429s are retried; nothing else."""
    assert _worth_retrying(error) is retry
