"""
``POST /v1/track``: up to :data:`MAX_REFERENCES` references in one call.

Each reference is answered on its own, in the order given: the agent view,
or that reference's error. One bad reference never fails the batch; the
lookups run concurrently (at most ``batch_concurrency`` at once), and a
reference repeated in the batch is looked up once. Each reference gets its
own Redis budget; one the registry could not be checked for is an item error
``registry_unavailable``, never ``reference_not_found``. Unregistered numbers
are looked up within the API key's share of the carrier budgets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from tracksvc.api.keys import service_key, settings_key
from tracksvc.api.middlewares import presented_key, requires
from tracksvc.api.routes.track import json_response, read_json_object, validate
from tracksvc.core.errors import RegistryUnavailable, RequestError
from tracksvc.domain.views import TrackView
from tracksvc.economy.callers import acting_as, ad_hoc

log = structlog.get_logger("batch")

#: Most references one batch may carry.
MAX_REFERENCES = 100

#: Looks one reference up (``TrackService.track``).
TrackOne = Callable[[str], Awaitable[TrackView]]


class BatchRequest(BaseModel):
    """Body of ``POST /v1/track``."""

    model_config = ConfigDict(extra="forbid")

    references: list[Any] = Field(min_length=1, max_length=MAX_REFERENCES)


def reference_text(value: object) -> str | None:
    """A batch item as reference text: strings as given, integers as digits, else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _error(reference: str, code: str, message: str) -> dict[str, Any]:
    return {"reference": reference, "ok": False, "error": {"code": code, "message": message}}


async def answer_one(reference: str, track: TrackOne) -> dict[str, Any]:
    """One batch result: the view, or the error this reference alone met."""
    try:
        view = await track(reference)
    except RequestError as exc:
        return _error(reference, exc.code, exc.message)
    except RegistryUnavailable as exc:  # it may be registered: never "not found"
        return _error(reference, "registry_unavailable", str(exc))
    except Exception:  # one reference's failure must never fail the batch
        log.exception("batch_reference_failed", reference=reference)
        return _error(reference, "internal_error", "tracksvc failed to answer this reference")
    return {"reference": reference, "ok": True, "view": view.model_dump(mode="json")}


async def track_many(items: Sequence[object], track: TrackOne, *, concurrency: int) -> list[dict[str, Any]]:
    """
    Answer every item, in order, with at most ``concurrency`` lookups at once.

    Args:
        items: the references as sent (non-text items get an error result).
        track: looks one reference up.
        concurrency: how many lookups may run at the same time.
    """
    gate = asyncio.Semaphore(concurrency)

    async def gated(reference: str) -> dict[str, Any]:
        async with gate:
            return await answer_one(reference, track)

    texts = [reference_text(item) for item in items]
    unique = list(dict.fromkeys(t for t in texts if t is not None))
    answers = dict(zip(unique, await asyncio.gather(*(gated(r) for r in unique)), strict=True))
    results = []
    for item, text in zip(items, texts, strict=True):
        if text is None:
            shown = orjson.dumps(item).decode()
            results.append(_error(shown, "invalid_reference", "a reference must be a string"))
        else:
            results.append(answers[text])
    return results


@requires("agent")
async def track_batch(request: web.Request) -> web.Response:
    """``POST /v1/track``: many references, each answered independently."""
    body = validate(BatchRequest, await read_json_object(request))
    with acting_as(ad_hoc(presented_key(request))):  # unregistered numbers: this key's share
        results = await track_many(
            body.references,
            request.app[service_key].track,
            concurrency=request.app[settings_key].batch_concurrency,
        )
    return json_response({"results": results})


def add_batch_routes(app: web.Application) -> None:
    """Register the batch lookup route."""
    app.router.add_post("/v1/track", track_batch)
