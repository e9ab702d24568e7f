"""
HTTP handlers: thin. Read and validate the input, call the service or the
registry, answer JSON (or CSV where asked).
"""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from tracksvc.api.keys import registry_key, service_key, settings_key
from tracksvc.api.middlewares import error_response, presented_key, requires
from tracksvc.core.errors import (
    ImportInterrupted,
    ReferenceNotFound,
    RegistryUnavailable,
    RequestError,
    ValidationFailed,
)
from tracksvc.domain import references
from tracksvc.domain.records import BUSINESS_TIMEZONE, OrderRecord, ShipmentRecord
from tracksvc.domain.safe_csv import write_csv
from tracksvc.economy.callers import acting_as, ad_hoc
from tracksvc.registry.importer import MAX_LINE_BYTES, ImportFormat, import_lines
from tracksvc.registry.store import StalledLabel
from tracksvc.service.lookup import CLAIMS

M = TypeVar("M", bound=BaseModel)

log = structlog.get_logger("http")

STALLED_CSV_COLUMNS = (
    "shipment_id", "order_number", "carrier", "tracking_number", "origin",
    "label_created_at", "hours_since_label", "carrier_checked_at",
)

#: What the CSV, the CLI and the warehouse page say for a label no carrier was asked about yet.
NOT_YET_CHECKED = "not yet checked"

#: A path parameter that is any one segment.
ANY_SEGMENT = "[^/]+"

#: Seconds a client waits before sending an interrupted write (PUT or import) again.
IMPORT_RETRY_AFTER_S = 5


def json_response(model: BaseModel | dict[str, Any], status: int = 200) -> web.Response:
    """Serialize a view model (pydantic's own JSON, in one pass) or a plain dict (orjson)."""
    body = model.model_dump_json().encode() if isinstance(model, BaseModel) else orjson.dumps(model)
    return web.Response(status=status, body=body, content_type="application/json")


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/422 error that says what is wrong."""
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    return body


def validate(model: type[M], data: dict[str, Any], context: dict[str, Any] | None = None) -> M:
    """Validate ``data`` as ``model`` or raise a 422 naming and listing each field's error."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "message": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        fields = ", ".join(dict.fromkeys(d["field"] for d in details))
        raise ValidationFailed(f"the record did not validate: {fields}", details=details) from exc


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


@requires("agent")
async def track_reference(request: web.Request) -> web.Response:
    """
    ``GET /v1/track/{reference}``: the agent view; ``?claim=not_received`` adds what the customer says.

    Unregistered numbers are looked up as ad hoc for this API key (:mod:`tracksvc.economy.callers`);
    a reference the registry could not be checked for answers 503 with ``Retry-After``.
    """
    claims = frozenset(c for c in request.query.getall("claim", []) if c)
    unknown = claims - CLAIMS
    if unknown:
        raise ValidationFailed(
            f"claim must be one of: {', '.join(sorted(CLAIMS))}",
            details=[{"field": "claim", "message": f"unknown claim {sorted(unknown)[0]!r}"}],
        )
    service = request.app[service_key]
    raw = request.match_info.get("reference", "")
    try:
        with acting_as(ad_hoc(presented_key(request))):  # unregistered numbers: this key's share
            body = await service.answer(raw, claims=claims)
    except RegistryUnavailable as exc:
        return registry_unavailable(str(exc), service.retry_after_s())
    except ReferenceNotFound as exc:
        return reference_not_found(exc, await service.did_you_mean(raw))
    return web.Response(body=body, content_type="application/json")


def reference_not_found(exc: ReferenceNotFound, near: list[str] | None) -> web.Response:
    """
    404 ``reference_not_found`` with ``did_you_mean``: registered references one typo away.

    ``near`` None (the registry failed while looking for them) leaves ``did_you_mean`` out and
    says so: the reference itself was looked for and is not registered, but "no near match"
    would not be true.
    """
    if near is None:
        message = f"{exc.message} Near matches could not be looked up right now; try again shortly."
        return error_response(404, exc.code, message)
    return error_response(404, exc.code, exc.message, extra={"did_you_mean": near})


def registry_unavailable(message: str, retry_after_s: int) -> web.Response:
    """503 ``registry_unavailable`` with ``Retry-After``: never "not found" when we could not look."""
    response = error_response(503, "registry_unavailable", message)
    response.headers["Retry-After"] = str(retry_after_s)
    return response


def _same_id(body: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    # Exactly the path's text: "dup-1\n" in the body is not "dup-1" (the path is validated as the id).
    if name in body and body[name] != value:
        raise ValidationFailed(
            f"{name} in the body ({body[name]!r}) differs from the one in the path ({value!r})",
            details=[{"field": name, "message": "must match the path"}],
        )
    return {**body, name: value}


@requires("ingest")
async def put_shipment(request: web.Request) -> web.Response:
    """``PUT /v1/shipments/{shipment_id}``: idempotent upsert of one label."""
    shipment_id = request.match_info["shipment_id"]
    body = _same_id(await read_json_object(request), "shipment_id", shipment_id)
    record = validate(ShipmentRecord, body)
    registry = request.app[registry_key]
    existed = await registry.get_shipment(record.shipment_id) is not None
    try:
        stored = await registry.put_shipment(record)
    except RegistryUnavailable as exc:
        return write_interrupted("shipment", exc)
    return json_response(stored, status=200 if existed else 201)


@requires("ingest")
async def put_order(request: web.Request) -> web.Response:
    """``PUT /v1/orders/{order_number}``: idempotent upsert of one order."""
    order_number = request.match_info["order_number"]
    body = _same_id(await read_json_object(request), "order_number", order_number)
    zone = request.app[settings_key].business_zone
    record = validate(OrderRecord, body, context={BUSINESS_TIMEZONE: zone})
    registry = request.app[registry_key]
    existing = await registry.get_order(record.order_number)
    try:
        stored = await registry.put_order(record, previous=existing)
    except RegistryUnavailable as exc:
        return write_interrupted("order", exc)
    existed = existing is not None
    return json_response(stored, status=200 if existed else 201)


def write_interrupted(what: str, exc: RegistryUnavailable) -> web.Response:
    """
    503 ``registry_unavailable`` for a PUT whose write Redis cut short, with ``Retry-After``.

    The write may be partly done (never "nothing was written"); the same PUT again
    completes it, since every write is idempotent.
    """
    log.warning("registry_write_interrupted", record=what, error=str(exc))
    response = error_response(
        503, "registry_unavailable",
        f"the registry (Redis) failed while writing the {what}; it may be partly written: "
        "send the same PUT again (it is idempotent)",
    )
    response.headers["Retry-After"] = str(IMPORT_RETRY_AFTER_S)
    return response


def _import_format(request: web.Request) -> ImportFormat:
    wanted = request.query.get("format") or request.content_type
    if "csv" in wanted:
        return ImportFormat.csv
    if "ndjson" in wanted or "jsonl" in wanted or "json" in wanted:
        return ImportFormat.ndjson
    raise ValidationFailed(
        "send NDJSON (Content-Type: application/x-ndjson) or CSV (text/csv), or say ?format=csv|ndjson"
    )


async def _body_lines(request: web.Request) -> AsyncIterator[bytes]:
    buffer, overlong = b"", False
    async for chunk in request.content.iter_chunked(1 << 16):
        if overlong:  # drop the rest of a line already too long, up to its newline
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            chunk, overlong = chunk[cut:], False
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line
        if len(buffer) > MAX_LINE_BYTES:
            # Memory stays bounded; the importer refuses the line as too long.
            buffer, overlong = buffer[: MAX_LINE_BYTES + 1], True
    if buffer:
        yield buffer


@requires("ingest")
async def import_shipments(request: web.Request) -> web.Response:
    """``POST /v1/shipments/import``: NDJSON or CSV, streamed; per-row errors with line numbers."""
    fmt = _import_format(request)
    try:
        report = await import_lines(_body_lines(request), fmt, request.app[registry_key])
    except ImportInterrupted as exc:
        response = error_response(
            503, "registry_unavailable", exc.message,
            details={"committed_rows": exc.committed_rows, "rejected_rows": exc.rejected_rows,
                     "resume_from_line": exc.resume_line},
        )
        response.headers["Retry-After"] = str(IMPORT_RETRY_AFTER_S)
        return response
    return json_response(report.as_dict())


def query_number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not low <= value <= high:
        raise ValidationFailed(f"{name} must be a number from {low:g} to {high:g}")
    return value


@requires("warehouse")
async def stalled_labels(request: web.Request) -> web.StreamResponse:
    """
    ``GET /v1/labels/stalled``: labels never picked up (never scanned), past the grace period, oldest first.

    ("Stalled" in the path is historical: the status ``stalled`` means in transit without a scan.)
    """
    settings = request.app[settings_key]
    older_than_h = query_number(
        request, "older_than_hours", settings.tender_grace_hours, 0, 24 * 3650
    )
    wants_csv = "text/csv" in request.headers.get("Accept", "")
    limit = int(query_number(request, "limit", 100_000 if wants_csv else 100, 1,
                              100_000 if wants_csv else 1000))
    origin = request.query.get("origin") or None
    now = time.time()
    labels, next_cursor = await request.app[registry_key].stalled(
        before_ts=now - older_than_h * 3600,
        origin=origin,
        limit=limit,
        cursor=request.query.get("cursor") or None,
    )
    rows = [stalled_row(label, now) for label in labels]
    if wants_csv:
        return stalled_csv(rows, next_cursor)
    return json_response({"labels": rows, "next_cursor": next_cursor})


def stalled_row(label: StalledLabel, now: float) -> dict[str, Any]:
    """One line of the warehouse list (``carrier_checked_at`` None: no carrier was asked yet)."""
    record, checked = label.record, label.checked_at
    return {
        "shipment_id": record.shipment_id,
        "order_number": record.order_number,
        "carrier": record.carrier.value,
        "tracking_number": record.tracking_number,
        "tracking_url": references.tracking_url(record.carrier, record.tracking_number),
        "origin": record.origin,
        "label_created_at": record.label_created_at.astimezone(UTC).isoformat(),
        "hours_since_label": round((now - record.label_created_at.timestamp()) / 3600, 1),
        "carrier_checked_at": None if checked is None else checked.astimezone(UTC).isoformat(),
    }


def stalled_csv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the CSV writes them: a label nobody checked says so."""
    return [{**row, "carrier_checked_at": row["carrier_checked_at"] or NOT_YET_CHECKED} for row in rows]


def stalled_csv(rows: list[dict[str, Any]], next_cursor: str | None) -> web.Response:
    """The warehouse list as CSV with a header row, safe to open in a spreadsheet."""
    out = io.StringIO()
    write_csv(out, STALLED_CSV_COLUMNS, stalled_csv_rows(rows))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    response = web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="never-picked-up-labels-{stamp}.csv"'
    if next_cursor:
        response.headers["X-Next-Cursor"] = next_cursor
    return response


def add_routes(app: web.Application) -> None:
    """Register every route of the service."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/track/", track_reference)  # empty reference: a clear 400
    # Any text but "/" in one segment (aiohttp's default also refuses "{" and "}"), so every
    # identifier the registry accepts can be written and looked up by URL (%2F for a slash).
    app.router.add_get(f"/v1/track/{{reference:{ANY_SEGMENT}}}", track_reference)
    app.router.add_put(f"/v1/shipments/{{shipment_id:{ANY_SEGMENT}}}", put_shipment)
    app.router.add_put(f"/v1/orders/{{order_number:{ANY_SEGMENT}}}", put_order)
    app.router.add_post("/v1/shipments/import", import_shipments)
    app.router.add_get("/v1/labels/stalled", stalled_labels)
