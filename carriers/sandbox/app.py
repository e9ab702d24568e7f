"""
The carrier sandbox: one aiohttp app that answers UPS, FedEx and USPS OAuth
and tracking calls in their real wire formats, plus ``/_sandbox/*`` control
routes for tests and the demo (scenarios, faults, latency, tokens, stats).

Run it with ``tracksvc sandbox``; point ``TRACKSVC_<CARRIER>_BASE_URL`` at it.
The service never imports this package.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from carriers.models import Carrier, TrackingStatus
from carriers.sandbox import fedex, ups, usps
from carriers.sandbox.scenarios import Scenario, Step
from carriers.sandbox.state import FAULT_MODES, SandboxState

state_key = web.AppKey("state_key", SandboxState)


def create_sandbox_app(state: SandboxState | None = None) -> web.Application:
    """Build the sandbox app around ``state`` (a fresh catalogue by default)."""
    app = web.Application()
    app[state_key] = state or SandboxState()
    for carrier_module in (ups, fedex, usps):
        carrier_module.install(app, app[state_key])
    app.router.add_get("/_sandbox/scenarios", _list_scenarios)
    app.router.add_post("/_sandbox/scenarios", _add_scenario)
    app.router.add_post("/_sandbox/faults", _add_fault)
    app.router.add_post("/_sandbox/latency", _set_latency)
    app.router.add_post("/_sandbox/tokens/revoke", _revoke_tokens)
    app.router.add_get("/_sandbox/stats", _stats)
    app.router.add_post("/_sandbox/reset", _reset)
    return app


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _list_scenarios(request: web.Request) -> web.Response:
    state = request.app[state_key]
    return web.json_response(
        {
            "scenarios": [
                {
                    "name": s.name,
                    "carrier": s.carrier.value,
                    "number": s.number,
                    "expect": s.expect.value,
                    "description": s.description,
                }
                for s in state.scenarios.values()
            ]
        }
    )


async def _add_scenario(request: web.Request) -> web.Response:
    """Add a scenario: ``{"carrier", "number", "steps": [["label", hours_ago], ...]}``."""
    state = request.app[state_key]
    body = await _json(request)
    try:
        carrier = Carrier(body["carrier"])
        number = str(body["number"])
        steps = tuple((Step(step), timedelta(hours=float(age))) for step, age in body.get("steps", []))
        eta_days = body.get("eta_days")
        scenario = Scenario(
            carrier=carrier,
            number=number,
            name=str(body.get("name") or f"{carrier.value}-{number}"),
            expect=TrackingStatus(body.get("expect", "unknown")),
            steps=steps,
            not_found=bool(body.get("not_found", False)),
            eta=None if eta_days is None else timedelta(days=float(eta_days)),
            fault=body.get("fault"),
            description=str(body.get("description", "")),
        )
    except (KeyError, ValueError, TypeError) as exc:
        return _bad(f"bad scenario: {exc}")
    state.add(scenario)
    return web.json_response({"added": scenario.name}, status=201)


async def _add_fault(request: web.Request) -> web.Response:
    """Queue faults: ``{"carrier": "ups", "mode": "429", "count": 2, "retry_after_s": 1}``."""
    state = request.app[state_key]
    body = await _json(request)
    try:
        carrier = Carrier(body["carrier"])
        mode = str(body["mode"])
        state.queue_fault(carrier, mode, int(body.get("count", 1)), int(body.get("retry_after_s", 1)))
    except (KeyError, ValueError, TypeError) as exc:
        return _bad(f"bad fault ({exc}); modes: {', '.join(FAULT_MODES)}")
    return web.json_response({"queued": mode})


async def _set_latency(request: web.Request) -> web.Response:
    state = request.app[state_key]
    body = await _json(request)
    try:
        state.latency_s = max(0.0, float(body["latency_ms"]) / 1000)
    except (KeyError, ValueError, TypeError) as exc:
        return _bad(f"bad latency: {exc}")
    return web.json_response({"latency_ms": state.latency_s * 1000})


async def _revoke_tokens(request: web.Request) -> web.Response:
    state = request.app[state_key]
    body = await _json(request)
    carrier = Carrier(body["carrier"]) if body.get("carrier") else None
    return web.json_response({"revoked": state.revoke_tokens(carrier)})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[state_key].stats())


async def _reset(request: web.Request) -> web.Response:
    state = request.app[state_key]
    state.calls.clear()
    state.numbers_asked.clear()
    state.largest_batch.clear()
    state.faults.clear()
    state.latency_s = 0.0
    return web.json_response({"reset": True})
