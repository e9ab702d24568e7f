"""
``tracksvc track REFERENCE``: one lookup in-process, the agent view as JSON on stdout.

Exit 0 when the carrier (or the registry) gave the status, 1 when nothing is
found under the reference, 2 when tracksvc could not find out (a carrier or
Redis could not be asked, a setting is missing, the reference is not valid).
At most one line goes to stderr: what could not be asked and the setting to
look at. The service's own log lines appear only with ``--verbose``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from carriers.errors import CARRIER_NAMES
from tracksvc.cli.inprocess import track_once
from tracksvc.cli.say import EXIT_NO, EXIT_OK, EXIT_TROUBLE, redis_unreachable, say
from tracksvc.core.errors import ReferenceNotFound, RegistryUnavailable, RequestError
from tracksvc.core.logs import configure_logging
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.core.redaction import strip_url
from tracksvc.core.settings import PRODUCTION_BASE_URLS, Settings
from tracksvc.domain.flags import Flag
from tracksvc.domain.views import ShipmentView, TrackView
from tracksvc.economy.policy import Freshness

#: The log level of a ``track`` without ``--verbose``: nothing but the one line it prints itself.
QUIET_LOG_LEVEL = "critical"


def add_track_command(sub: Any) -> None:
    """Add ``track`` to the ``tracksvc`` subcommands."""
    track = sub.add_parser(
        "track", help="look one reference up and print the agent view as JSON",
        description="Look one reference up, in this process, and print the agent view as JSON. "
        "It needs the registry's Redis (TRACKSVC_REDIS_URL) and each carrier's base URL and "
        "credentials (TRACKSVC_UPS_BASE_URL, TRACKSVC_UPS_CLIENT_ID, TRACKSVC_UPS_CLIENT_SECRET, "
        "the same for FEDEX and USPS); tracksvc demo prints the lines that point it at the "
        "demo's Redis and carrier sandbox. Exit 0 when the carrier (or the registry) gave the "
        "status, 1 when nothing is found under the reference, 2 when tracksvc could not find out.",
    )
    track.add_argument(
        "reference", help="an order, shipment, return or internal shipping number, or a "
        "UPS, FedEx or USPS tracking number (required, no default)",
    )
    track.add_argument(
        "-v", "--verbose", action="store_true",
        help="also print the service's log lines on stderr, at TRACKSVC_LOG_LEVEL "
        "(default: off: at most one line saying what could not be asked)",
    )
    track.set_defaults(func=run_track)


def run_track(args: argparse.Namespace) -> int:
    """``tracksvc track``: print the view, say what could not be asked, return the exit code."""
    settings = Settings()
    level = settings.log_level if args.verbose else QUIET_LOG_LEVEL
    configure_logging(settings.model_copy(update={"log_level": level}), cache_loggers=False)
    try:
        view = asyncio.run(track_once(settings, args.reference))
    except RequestError as exc:  # the HTTP route's error body, details (e.g. near matches) included
        error: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if exc.details is not None:
            error["details"] = exc.details
        _print_json({"error": error})
        if isinstance(exc, ReferenceNotFound):
            return EXIT_NO
        say(_sentence(exc.message))
        return EXIT_TROUBLE
    except RegistryUnavailable as exc:
        _print_json({"error": {"code": "registry_unavailable", "message": str(exc)}})
        say(redis_unreachable(settings, "so tracksvc could not tell whether this reference is registered"))
        return EXIT_TROUBLE
    _print_json(view.model_dump(mode="json"))
    line = warnings(view, settings)
    if line:
        say(line if args.verbose else f"{line} Run with --verbose for the details.")
    return exit_code(view)


def exit_code(view: TrackView) -> int:
    """0 the status is known, 1 nothing was found, 2 a carrier could not be asked."""
    if view.status is TrackingStatus.unknown or any(
        s.status is TrackingStatus.unknown for s in view.shipments
    ):
        return EXIT_TROUBLE
    if view.status is TrackingStatus.not_found:
        return EXIT_NO
    return EXIT_OK


def warnings(view: TrackView, settings: Settings) -> str:
    """
    One line of whole sentences: what could not be asked and which setting to look at ("" if none).

    Built from the view and the settings (never from log lines), so it says the same
    whatever the service logged.
    """
    sentences: list[str] = []
    if Flag.registry_unavailable in view.flags:
        sentences.append(
            redis_unreachable(settings, "so registered orders and shipments could not be looked up")
        )
    told: set[Carrier] = set()
    for shipment in view.shipments:
        if shipment.status is TrackingStatus.unknown and shipment.carrier not in told:
            told.add(shipment.carrier)
            sentences.append(carrier_not_asked(settings, shipment))
    for shipment in view.shipments:
        if shipment.freshness == Freshness.stale.value and shipment.carrier not in told:
            told.add(shipment.carrier)
            when = f" from {shipment.as_of:%Y-%m-%d %H:%M} UTC" if shipment.as_of else ""
            sentences.append(
                f"{CARRIER_NAMES[shipment.carrier]} could not be asked just now, so the status "
                f"shown is its last answer{when}."
            )
    return " ".join(sentences)


def carrier_not_asked(settings: Settings, shipment: ShipmentView) -> str:
    """Why one carrier gave no status, and the settings that point tracksvc at it."""
    carrier = shipment.carrier
    name = CARRIER_NAMES[carrier]
    env = f"TRACKSVC_{carrier.value.upper()}"
    config = settings.carrier(carrier)
    if not config.client_id.get_secret_value() or not config.client_secret.get_secret_value():
        return (
            f"{name} could not be asked: {env}_CLIENT_ID and {env}_CLIENT_SECRET are not set "
            f"(for the demo's carrier sandbox, paste the export lines tracksvc demo prints)."
        )
    reason = (shipment.reason or shipment.status_detail or "no reason given").rstrip(". ")
    where = strip_url(config.base_url)
    hint = (
        f" To use the demo's carrier sandbox instead, set {env}_BASE_URL (tracksvc demo prints it)."
        if config.base_url.rstrip("/") == PRODUCTION_BASE_URLS[carrier]
        else ""
    )
    return (
        f"{name} at {where} gave no status ({reason}): try again in a few minutes, and if it "
        f"lasts, check {env}_BASE_URL and {env}_CLIENT_ID / {env}_CLIENT_SECRET.{hint}"
    )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _print_json(value: object) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
