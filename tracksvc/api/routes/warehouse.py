"""
The warehouse's actions on labels never picked up: the labels still worth
voiding (``GET /v1/labels/to-void``, JSON or CSV), the list's ages per origin
for the page's chart (``GET /v1/labels/stalled/ages``) and marking a label
voided (``POST /v1/shipments/{shipment_id}/void``). Role ``warehouse``.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from tracksvc.api.keys import registry_key, settings_key
from tracksvc.api.middlewares import presented_key, requires, role_key
from tracksvc.api.routes.track import ANY_SEGMENT, NOT_YET_CHECKED, json_response, query_number, stalled_row
from tracksvc.core.errors import ShipmentNotFound
from tracksvc.core.models import Carrier
from tracksvc.domain.safe_csv import write_csv
from tracksvc.domain.voiding import (
    WINDOW_SOURCES,
    age_buckets,
    stakes,
    void_deadline,
    voidable,
    widest_window,
)
from tracksvc.economy.callers import key_id
from tracksvc.registry.store import StalledLabel

log = structlog.get_logger("http")

#: Most labels the to-void list reads from the index in one answer (its totals cover these).
MAX_TO_VOID_SCAN = 20_000
#: Default and largest JSON page of the to-void list (the CSV takes every label read).
TO_VOID_PAGE = 1000

TO_VOID_CSV_COLUMNS = (
    "void_deadline", "days_left", "shipment_id", "order_number", "carrier", "tracking_number", "origin",
    "label_created_at", "hours_since_label", "label_cost", "label_cost_currency", "carrier_checked_at",
)


def to_void_row(label: StalledLabel, deadline: datetime, now: float) -> dict[str, Any]:
    """One line of the labels to void: the warehouse row, its deadline and cost."""
    record = label.record
    return {
        **stalled_row(label, now),
        "void_deadline": deadline.astimezone(UTC).isoformat(),
        "days_left": round((deadline.timestamp() - now) / 86400, 1),
        "label_cost": None if record.label_cost is None else format(record.label_cost, "f"),
        "label_cost_currency": record.label_cost_currency if record.label_cost is not None else None,
    }


@requires("warehouse")
async def labels_to_void(request: web.Request) -> web.StreamResponse:
    """
    ``GET /v1/labels/to-void``: never-tendered labels still inside their carrier's void window.

    Oldest deadline first; totals of the known label costs per currency over every label
    listed (not one page). A label past its window is not listed: it can no longer be voided.
    """
    settings = request.app[settings_key]
    wants_csv = "text/csv" in request.headers.get("Accept", "")
    limit = int(query_number(request, "limit", MAX_TO_VOID_SCAN if wants_csv else TO_VOID_PAGE, 1,
                             MAX_TO_VOID_SCAN if wants_csv else TO_VOID_PAGE))
    origin = request.query.get("origin") or None
    now = time.time()
    moment = datetime.fromtimestamp(now, tz=UTC)
    widest = widest_window(settings.void_window_days)
    labels, truncated = await request.app[registry_key].unscanned_between(
        low_ts=now - widest * 86400,
        high_ts=now - settings.tender_grace_hours * 3600,
        origin=origin,
        limit=MAX_TO_VOID_SCAN,
    )
    listed: list[tuple[datetime, StalledLabel]] = []
    for label in labels:
        days = settings.void_window_days(label.record.carrier)
        if voidable(label.record, days, moment):
            listed.append((void_deadline(label.record, days), label))
    listed.sort(key=lambda item: (item[0], item[1].record.shipment_id))
    rows = [to_void_row(label, deadline, now) for deadline, label in listed[:limit]]
    if wants_csv:
        return _csv(rows)
    totals, without_cost = stakes(label.record for _, label in listed)
    return json_response({
        "labels": rows,
        "count": len(listed),
        "total_at_stake": [stake.as_dict() for stake in totals],
        "labels_without_cost": without_cost,
        "windows": {
            carrier.value: {"days": settings.void_window_days(carrier), "source": WINDOW_SOURCES[carrier]}
            for carrier in Carrier
        },
        "truncated": truncated or len(listed) > limit,
    })


def _csv(rows: list[dict[str, Any]]) -> web.Response:
    out = io.StringIO()
    write_csv(out, TO_VOID_CSV_COLUMNS, [
        {**row, "carrier_checked_at": row["carrier_checked_at"] or NOT_YET_CHECKED} for row in rows
    ])
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    response = web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="labels-to-void-{stamp}.csv"'
    return response


@requires("warehouse")
async def label_ages(request: web.Request) -> web.Response:
    """``GET /v1/labels/stalled/ages``: labels never picked up, per origin and age bucket (the chart)."""
    settings = request.app[settings_key]
    now = time.time()
    buckets = age_buckets(settings.tender_grace_hours)
    counts = await request.app[registry_key].unscanned_counts([b.bounds(now) for b in buckets])
    named: list[str | None] = [*sorted(o for o in counts if o is not None and any(counts[o]))]
    if any(counts.get(None, [])):
        named.append(None)  # labels of no origin last
    return json_response({
        "buckets": [b.as_dict() for b in buckets],
        "origins": [{"origin": o, "counts": counts[o], "total": sum(counts[o])} for o in named],
        "total": sum(sum(found) for found in counts.values()),
        "as_of": datetime.fromtimestamp(now, tz=UTC).isoformat(),
    })


@requires("warehouse")
async def void_label(request: web.Request) -> web.Response:
    """
    ``POST /v1/shipments/{shipment_id}/void``: mark a label voided; idempotent, audited.

    Who is the key's role and a one-way id of the key (never the key); the first void
    of a label is the one kept and answered, 200 every time.
    """
    shipment_id = request.match_info["shipment_id"]
    by = f"{request[role_key]}:{key_id(presented_key(request) or '')}"
    outcome = await request.app[registry_key].void_label(shipment_id, by=by, at=datetime.now(UTC))
    if outcome is None:
        raise ShipmentNotFound(f"no shipment is registered under the id {shipment_id!r}")
    if outcome.newly_voided:
        log.info("label_voided", shipment_id=shipment_id, voided_by=by)
    return json_response(outcome.record)


def add_warehouse_routes(app: web.Application) -> None:
    """Register the warehouse's routes."""
    app.router.add_get("/v1/labels/to-void", labels_to_void)
    app.router.add_get("/v1/labels/stalled/ages", label_ages)
    app.router.add_post(f"/v1/shipments/{{shipment_id:{ANY_SEGMENT}}}/void", void_label)
