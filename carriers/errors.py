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
    """
    A carrier call failed as a whole.

    ``code`` names a failure that has no HTTP status of its own (a call the
    caller's breaker or budget refused, say); the per-number message carries
    it instead of the status.
    """

    outcome: Outcome = Outcome.unavailable

    def __init__(
        self,
        message: str,
        *,
        carrier: Carrier,
        tracking_number: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.status = status
        self.code = code

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
        code: str | None = None,
    ) -> None:
        super().__init__(
            message, carrier=carrier, tracking_number=tracking_number, status=status, code=code
        )
        self.retry_after_s = retry_after_s


class CarrierAuthError(CarrierError):
    """The carrier refused our credentials."""

    outcome = Outcome.auth_failed


class CarrierResponseError(CarrierError):
    """The carrier's answer could not be parsed."""

    outcome = Outcome.malformed


#: How each carrier writes its name in messages.
CARRIER_NAMES: Mapping[Carrier, str] = {Carrier.ups: "UPS", Carrier.fedex: "FedEx", Carrier.usps: "USPS"}

#: HTTP statuses that fail a carrier call as a whole, whatever the body says (any 5xx too).
_STATUS_ERRORS: Mapping[int, tuple[type[CarrierError], str]] = {
    401: (CarrierAuthError, "refused the call"),
    403: (CarrierAuthError, "refused the call"),
    429: (CarrierRateLimited, "rate limit reached"),
}

#: Statuses one carrier gives a meaning of its own (checked before the common table).
_CARRIER_STATUS_ERRORS: Mapping[Carrier, Mapping[int, tuple[type[CarrierError], str]]] = {
    # FedEx's 404 NOT.FOUND.ERROR is about the resource (the path), never about a number.
    Carrier.fedex: {404: (CarrierUnavailable, "could not serve the call")},
}

#: The OAuth token endpoint: a refused client (RFC 6749 5.2 answers 400) is an auth failure.
_TOKEN_STATUS_ERRORS: Mapping[int, tuple[type[CarrierError], str]] = {
    400: (CarrierAuthError, "refused the client credentials"),
    401: (CarrierAuthError, "refused the client credentials"),
    403: (CarrierAuthError, "refused the client credentials"),
    429: (CarrierRateLimited, "rate limit reached"),
}

#: Any 5xx; and a token endpoint answer that is neither a token nor one of the above.
_SERVER_ERROR = (CarrierUnavailable, "server error")
_TOKEN_UNEXPECTED = (CarrierUnavailable, "sent an unexpected answer from the token endpoint")


def carrier_name(carrier: Carrier) -> str:
    """The carrier's name as people write it (``UPS``, ``FedEx``, ``USPS``)."""
    return CARRIER_NAMES.get(carrier, carrier.value)


def error_for_status(
    status: int,
    *,
    carrier: Carrier,
    detail: str,
    tracking_number: str | None = None,
    retry_after_s: float | None = None,
    token_endpoint: bool = False,
) -> CarrierError | None:
    """
    The whole-call failure an HTTP status means, or None for a status the parser reads.

    The one place that maps HTTP statuses to errors. A tracking call: 401/403
    are auth failures, 429 a rate limit, any 5xx the carrier being unavailable,
    plus the few statuses one carrier gives a meaning of its own (FedEx's 404);
    everything else (2xx, 400, 404) carries per-number answers for the parser.
    The token endpoint: any status but a 2xx is a failure, 400/401/403 refused
    credentials.

    Args:
        status: the HTTP status of the answer.
        carrier: who answered.
        detail: what the answer said, for the message.
        tracking_number: the number asked, when the call asked one.
        retry_after_s: the carrier's Retry-After, kept on a rate limit.
        token_endpoint: the answer is the OAuth token endpoint's.

    Returns:
        The error to raise, or None when the answer is the parser's to read.
    """
    if token_endpoint:
        if 200 <= status < 300:
            return None
        found = _TOKEN_STATUS_ERRORS.get(status)
        if found is None:
            found = _SERVER_ERROR if status >= 500 else _TOKEN_UNEXPECTED
    else:
        found = _CARRIER_STATUS_ERRORS.get(carrier, {}).get(status) or _STATUS_ERRORS.get(status)
        if found is None and status >= 500:
            found = _SERVER_ERROR
        if found is None:
            return None
    return _build(found, status, carrier, detail, tracking_number, retry_after_s)


def _build(
    found: tuple[type[CarrierError], str],
    status: int,
    carrier: Carrier,
    detail: str,
    tracking_number: str | None,
    retry_after_s: float | None,
) -> CarrierError:
    cls, phrase = found
    message = f"{carrier_name(carrier)} {phrase} ({detail})"
    if cls is CarrierRateLimited:
        return CarrierRateLimited(
            message,
            carrier=carrier,
            tracking_number=tracking_number,
            status=status,
            retry_after_s=retry_after_s,
        )
    return cls(message, carrier=carrier, tracking_number=tracking_number, status=status)
