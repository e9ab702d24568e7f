"""
Errors of the carrier library: a carrier call that failed as a whole.

::

    CarrierError                 a carrier could not be asked (whole call failed)
    ├── CarrierTimeout           no answer within the timeout
    ├── CarrierUnavailable       connection refused/reset, 5xx
    ├── CarrierRateLimited       429; carries retry_after_s when the carrier said
    ├── CarrierAuthError         OAuth token refused, 401/403 after one refresh
    └── CarrierResponseError     the body was not the documented shape (malformed JSON, ...)

Outcomes for a single number (not found, invalid number) are data
(:class:`carriers.models.CarrierMessage`), never exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping

from carriers.models import Carrier, Outcome


class CarrierError(Exception):
    """A carrier call failed as a whole."""

    outcome: Outcome = Outcome.unavailable

    def __init__(
        self,
        message: str,
        *,
        carrier: Carrier,
        tracking_number: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.status = status

    def __str__(self) -> str:
        where = f"{self.carrier.value}"
        if self.status is not None:
            where += f" HTTP {self.status}"
        return f"{where}: {self.message}"


class CarrierTimeout(CarrierError):
    """The carrier did not answer within the configured timeout."""

    outcome = Outcome.timeout


class CarrierUnavailable(CarrierError):
    """Connection failure or a 5xx answer."""

    outcome = Outcome.unavailable


class CarrierRateLimited(CarrierError):
    """The carrier answered 429 (or our own quota refused the call)."""

    outcome = Outcome.rate_limited

    def __init__(
        self,
        message: str,
        *,
        carrier: Carrier,
        tracking_number: str | None = None,
        status: int | None = 429,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, carrier=carrier, tracking_number=tracking_number, status=status)
        self.retry_after_s = retry_after_s


class CarrierAuthError(CarrierError):
    """The carrier refused our credentials."""

    outcome = Outcome.auth_failed


class CarrierResponseError(CarrierError):
    """The carrier's answer could not be parsed."""

    outcome = Outcome.malformed


#: HTTP statuses that fail a carrier call as a whole, whatever the body says.
_STATUS_ERRORS: Mapping[int, tuple[type[CarrierError], str]] = {
    401: (CarrierAuthError, "refused the call"),
    403: (CarrierAuthError, "refused the call"),
    429: (CarrierRateLimited, "rate limit reached"),
}


def error_for_status(
    status: int, *, carrier: Carrier, detail: str, tracking_number: str | None = None
) -> CarrierError | None:
    """
    The whole-call failure an HTTP status means, or None for a status the parser reads.

    401/403 are auth failures, 429 a rate limit, any 5xx the carrier being unavailable.
    """
    cls, phrase = _STATUS_ERRORS.get(status, (None, ""))
    if cls is None and status >= 500:
        cls, phrase = CarrierUnavailable, "server error"
    if cls is None:
        return None
    name = carrier.value.upper() if carrier is not Carrier.fedex else "FedEx"
    return cls(f"{name} {phrase} ({detail})", carrier=carrier, tracking_number=tracking_number,
               status=status)
