"""
HTTP side of push: UPS Track Alert in (``POST /v1/carrier-events/ups``),
webhook subscriptions out (``POST /v1/subscriptions``,
``DELETE /v1/subscriptions/{subscription_id}``). Thin: check, parse, call
:mod:`tracksvc.carrier_events` or :mod:`tracksvc.webhooks`, answer JSON.
"""

from __future__ import annotations

import hmac
import time

from aiohttp import web
from redis.exceptions import RedisError

from carriers.ups.alerts import parse_track_alert, scheduled_delivery
from tracksvc import references
from tracksvc.carrier_events import apply_event
from tracksvc.errors import (
    CarrierResponseError,
    NotFound,
    RegistryUnavailable,
    Unauthorized,
    ValidationFailed,
)
from tracksvc.handlers import json_response, read_json_object, validate
from tracksvc.keys import notifier_key, service_key, settings_key, tracker_key
from tracksvc.middlewares import requires
from tracksvc.models import Carrier
from tracksvc.settings import Settings
from tracksvc.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, SubscriptionRequest

#: The header UPS Track Alert authenticates with (carrier-apis.md section 1.7).
UPS_KEY_HEADER = "x-api-key"


def ups_webhook_key(settings: Settings) -> str:
    """The key UPS must present: ``TRACKSVC_UPS_WEBHOOK_KEY``, else the UPS OAuth client id."""
    configured = settings.ups_webhook_key or settings.ups_client_id
    return configured.get_secret_value()


def _check_ups_key(request: web.Request) -> None:
    expected = ups_webhook_key(request.app[settings_key])
    presented = request.headers.get(UPS_KEY_HEADER, "")
    # An unconfigured key matches nothing (compare_digest("", "") would be True).
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        raise Unauthorized(f"send the UPS webhook credential in the {UPS_KEY_HEADER} header")


async def ups_track_alert(request: web.Request) -> web.Response:
    """``POST /v1/carrier-events/ups``: one UPS Track Alert event; updates status and cache at once."""
    _check_ups_key(request)
    payload = await read_json_object(request)
    try:
        raw_number, event = parse_track_alert(payload)
    except CarrierResponseError as exc:
        raise ValidationFailed(exc.message) from exc
    number = references.compact(references.normalize(raw_number))
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
    try:
        sub, secret, view = await request.app[notifier_key].subscribe(body)
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


def add_push_routes(app: web.Application) -> None:
    """Register the push routes (carrier events in, subscriptions out)."""
    app.router.add_post("/v1/carrier-events/ups", ups_track_alert)
    app.router.add_post("/v1/subscriptions", create_subscription)
    app.router.add_delete("/v1/subscriptions/{subscription_id}", delete_subscription)
