"""
HTTP side of push: UPS Track Alert in (``POST /v1/carrier-events/ups``),
webhook subscriptions out (``POST /v1/subscriptions``,
``DELETE /v1/subscriptions/{subscription_id}``). Thin: check, parse, call
:mod:`tracksvc.freshness.carrier_events` or :mod:`tracksvc.freshness.webhooks`, answer JSON.

A UPS push is taken only with ``TRACKSVC_UPS_WEBHOOK_KEY`` configured (503
``push_not_configured`` otherwise, and a warning at start), from a caller
presenting it, about a valid UPS number, with an event not dated in the
future (422 naming the field otherwise).
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from carriers.ups.alerts import AlertFieldError, parse_track_alert, scheduled_delivery, time_field
from tracksvc.api.keys import notifier_key, service_key, settings_key, tracker_key
from tracksvc.api.middlewares import presented_key, requires
from tracksvc.api.routes.track import json_response, read_json_object, validate
from tracksvc.core.errors import (
    CarrierResponseError,
    InvalidReference,
    NotFound,
    PushNotConfigured,
    RegistryUnavailable,
    Unauthorized,
    ValidationFailed,
)
from tracksvc.core.models import Carrier
from tracksvc.core.settings import Settings
from tracksvc.domain import references
from tracksvc.freshness.carrier_events import apply_event, future_event_problem
from tracksvc.freshness.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, SubscriptionRequest, owner_of

log = structlog.get_logger("push")

#: The header UPS Track Alert authenticates with (carrier-apis.md section 1.7).
UPS_KEY_HEADER = "x-api-key"

#: The field of a Track Alert that holds the tracking number.
NUMBER_FIELD = "trackingNumber"


def ups_webhook_key(settings: Settings) -> str | None:
    """The key UPS must present: ``TRACKSVC_UPS_WEBHOOK_KEY``; None when unset or empty."""
    configured = settings.ups_webhook_key
    if configured is None or not configured.get_secret_value():
        return None
    return configured.get_secret_value()


def _check_ups_key(request: web.Request) -> None:
    expected = ups_webhook_key(request.app[settings_key])
    if expected is None:
        raise PushNotConfigured(
            "UPS push is not configured on this service (TRACKSVC_UPS_WEBHOOK_KEY is not set)"
        )
    presented = request.headers.get(UPS_KEY_HEADER, "")
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Unauthorized(f"send the UPS webhook credential in the {UPS_KEY_HEADER} header")


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": field, "message": message}])


def ups_number(raw: str) -> str:
    """
    The UPS tracking number a push names, compacted.

    Raises:
        ValidationFailed: not a UPS number (format and check digit), naming the field.
    """
    try:
        compacted = references.compact(references.normalize(raw))
    except InvalidReference as exc:
        raise _invalid(NUMBER_FIELD, f"{NUMBER_FIELD} is not a tracking number: {exc.message}") from exc
    for candidate in references.candidates(compacted):
        if candidate.carrier is Carrier.ups:
            return candidate.number
    raise _invalid(
        NUMBER_FIELD,
        f"{NUMBER_FIELD} {raw[:40]!r} is not a UPS tracking number (format or check digit)",
    )


async def ups_track_alert(request: web.Request) -> web.Response:
    """``POST /v1/carrier-events/ups``: one UPS Track Alert event; updates status and cache at once."""
    _check_ups_key(request)
    payload = await read_json_object(request)
    try:
        raw_number, event = parse_track_alert(payload)
    except AlertFieldError as exc:
        raise _invalid(exc.field, exc.message) from exc
    except CarrierResponseError as exc:
        raise ValidationFailed(exc.message) from exc
    number = ups_number(raw_number)
    problem = future_event_problem(event, datetime.now(UTC))
    if problem is not None:
        raise _invalid(time_field(payload), problem)
    lookup = await apply_event(
        request.app[tracker_key],
        request.app[service_key],
        Carrier.ups,
        number,
        event,
        received_at=time.time(),
        scheduled_delivery=scheduled_delivery(payload),
    )
    return json_response(
        {
            "accepted": True,
            "carrier": Carrier.ups.value,
            "tracking_number": number,
            "status": lookup.result.status.value if lookup.result is not None else None,
            "as_of": lookup.as_of.isoformat() if lookup.as_of is not None else None,
        }
    )


@requires("agent")
async def create_subscription(request: web.Request) -> web.Response:
    """``POST /v1/subscriptions``: a signed webhook on every status change of a reference."""
    body = validate(SubscriptionRequest, await read_json_object(request))
    key = presented_key(request)  # authenticated by now; only its hash is kept
    try:
        sub, secret, view = await request.app[notifier_key].subscribe(
            body, owner=owner_of(key) if key is not None else None
        )
    except (RedisError, OSError) as exc:
        raise RegistryUnavailable(f"Redis is not reachable: {exc}") from exc
    return json_response(
        {
            "id": sub.id,
            "reference": sub.reference,
            "callback_url": sub.callback_url,
            "created_at": sub.created_at.isoformat(),
            "status": view.status.value,
            "secret": secret,
            "signature": {
                "header": SIGNATURE_HEADER,
                "timestamp_header": TIMESTAMP_HEADER,
                "algorithm": "sha256=hex(HMAC-SHA256(secret, timestamp + '.' + raw body))",
            },
        },
        status=201,
    )


@requires("agent")
async def delete_subscription(request: web.Request) -> web.Response:
    """``DELETE /v1/subscriptions/{subscription_id}``: no more POSTs, pending retries dropped."""
    sub_id = request.match_info["subscription_id"]
    try:
        removed = await request.app[notifier_key].unsubscribe(sub_id)
    except (RedisError, OSError) as exc:
        raise RegistryUnavailable(f"Redis is not reachable: {exc}") from exc
    if not removed:
        raise NotFound(f"no subscription {sub_id!r}")
    return web.Response(status=204)


async def _warn_if_push_unconfigured(app: web.Application) -> None:
    """Say once, at start, why UPS pushes will be refused."""
    if ups_webhook_key(app[settings_key]) is None:
        log.warning(
            "ups_push_not_configured",
            reason="TRACKSVC_UPS_WEBHOOK_KEY is not set: POST /v1/carrier-events/ups answers 503 "
            "until it is (the UPS client id is not a secret and is never accepted instead)",
        )


def add_push_routes(app: web.Application) -> None:
    """Register the push routes (carrier events in, subscriptions out)."""
    app.on_startup.append(_warn_if_push_unconfigured)
    app.router.add_post("/v1/carrier-events/ups", ups_track_alert)
    app.router.add_post("/v1/subscriptions", create_subscription)
    app.router.add_delete("/v1/subscriptions/{subscription_id}", delete_subscription)
