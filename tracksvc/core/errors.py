"""
The one exception tree of tracksvc.

::

    TrackingError
    ├── RegistryUnavailable          Redis could not be reached
    │   └── ImportInterrupted        ... during an import, after some rows were committed
    └── RequestError                 the caller's fault; rendered as a JSON error
        ├── InvalidReference         400: cannot be a reference at all
        ├── ReferenceNotFound        404: not registered and no carrier's format
        ├── Unauthorized             401: no valid API key
        ├── Forbidden                403: key valid, role not allowed
        ├── ValidationFailed         422: body did not validate
        │   └── CallbackRefused      422: a webhook callback aimed where webhooks may not go
        ├── SubscriptionLimitReached 409: this API key holds as many subscriptions as allowed
        ├── PushNotConfigured        503: a carrier push route has no credential configured
        ├── IdentifierConflict       409: an identifier is already another record's (same lookup key)
        ├── NotFound                 404: a resource (subscription, ...) does not exist
        │   └── ShipmentNotFound     404: no shipment registered under this id
        ├── LabelPickedUp            409: a label a carrier scanned cannot be voided
        ├── PortalNotFound           404: no such order OR wrong postal code (one answer)
        ├── PostalCodeRequired       400: portal lookup without a postal code
        ├── BodyTooLarge             413: the body is over TRACKSVC_MAX_BODY_BYTES
        └── TooManyAttempts          429: too many failed portal verifications

A carrier call that failed as a whole raises the carrier library's own tree,
:class:`carriers.errors.CarrierError` and its subclasses (re-exported here);
carrier outcomes for a single number (not found, invalid number) are data
(:class:`carriers.models.CarrierMessage`), never exceptions.

Outside the tree, :class:`RedisBudgetSpent` is a redis-py ``TimeoutError``: a
lookup's Redis step that is skipped (its request's Redis budget is spent, or
Redis just failed) meets the same fallbacks as Redis failing
(:mod:`tracksvc.core.redis_budget`).
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import TimeoutError as RedisTimeoutError

from carriers.errors import CarrierAuthError as CarrierAuthError
from carriers.errors import CarrierError as CarrierError
from carriers.errors import CarrierRateLimited as CarrierRateLimited
from carriers.errors import CarrierResponseError as CarrierResponseError
from carriers.errors import CarrierTimeout as CarrierTimeout
from carriers.errors import CarrierUnavailable as CarrierUnavailable
from carriers.errors import error_for_status as error_for_status


class TrackingError(Exception):
    """Base of every tracksvc error."""


class RegistryUnavailable(TrackingError):
    """Redis could not be reached for the registry or the cache."""


class RedisBudgetSpent(RedisTimeoutError):
    """A lookup's Redis step was skipped or cut: its Redis budget is spent, or Redis just failed."""


class ImportInterrupted(RegistryUnavailable):
    """
    Redis failed during an import: rows before ``resume_line`` were committed, the rest not (or partly).

    Rows are idempotent, so sending the file again from ``resume_line`` (with the
    CSV header) completes the import.
    """

    def __init__(self, message: str, *, committed_rows: int, rejected_rows: int, resume_line: int) -> None:
        super().__init__(message)
        self.message = message
        self.committed_rows = committed_rows
        self.rejected_rows = rejected_rows
        self.resume_line = resume_line


class RequestError(TrackingError):
    """An error caused by the request; carries its HTTP status and error code."""

    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidReference(RequestError):
    """The input cannot be a reference at all."""

    http_status = 400
    code = "invalid_reference"


class ReferenceNotFound(RequestError):
    """Neither registered nor a valid number of any carrier."""

    http_status = 404
    code = "reference_not_found"


class Unauthorized(RequestError):
    """No valid API key was presented."""

    http_status = 401
    code = "unauthorized"


class Forbidden(RequestError):
    """The key is valid but its role may not use this route."""

    http_status = 403
    code = "forbidden"


class ValidationFailed(RequestError):
    """The request body did not validate."""

    http_status = 422
    code = "validation_failed"


class IdentifierConflict(RequestError):
    """An identifier has the same lookup key as one of another record (``dup-1`` and ``DUP-1``)."""

    http_status = 409
    code = "identifier_conflict"


class CallbackRefused(ValidationFailed):
    """A webhook callback URL aims at a host or address webhooks may not reach (SSRF guard)."""

    code = "callback_refused"


class SubscriptionLimitReached(RequestError):
    """The API key already holds ``TRACKSVC_WEBHOOK_MAX_SUBSCRIPTIONS_PER_KEY`` subscriptions."""

    http_status = 409
    code = "subscription_limit_reached"


class PushNotConfigured(RequestError):
    """A carrier push route is called but its credential is not configured (the operator's to fix)."""

    http_status = 503
    code = "push_not_configured"


class NotFound(RequestError):
    """A resource (order, subscription) does not exist."""

    http_status = 404
    code = "not_found"


class ShipmentNotFound(NotFound):
    """No shipment is registered under this id."""

    code = "shipment_not_found"


class LabelPickedUp(RequestError):
    """The label cannot be voided: a carrier has scanned the parcel."""

    http_status = 409
    code = "label_picked_up"


class PortalNotFound(RequestError):
    """No such order, or the postal code does not match: one answer for both."""

    http_status = 404
    code = "order_not_found"

    def __init__(self) -> None:
        super().__init__("No order matches this order number and postal code.")


class PostalCodeRequired(RequestError):
    """The query has no (usable) postal code."""

    http_status = 400
    code = "postal_code_required"


class BodyTooLarge(RequestError):
    """The request body is larger than a JSON route accepts."""

    http_status = 413
    code = "body_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"the request body is larger than {limit_bytes} bytes, the most this route accepts"
            " (TRACKSVC_MAX_BODY_BYTES)"
        )
        self.limit_bytes = limit_bytes


class TooManyAttempts(RequestError):
    """Too many failed verifications from this client or for this order number."""

    http_status = 429
    code = "too_many_attempts"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"Too many attempts. Try again in {max(1, -(-retry_after_s // 60))} minute(s)."
        )
        self.retry_after_s = retry_after_s
