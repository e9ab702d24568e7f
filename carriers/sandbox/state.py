"""
The sandbox's mutable state: scenarios, issued tokens, queued faults,
latency and call counters. Shared by the three carrier emulations and the
control routes (``/_sandbox/...``).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from carriers.models import Carrier
from carriers.sandbox.scenarios import CATALOGUE, Scenario

#: Fault modes the sandbox can inject into tracking calls.
FAULT_MODES = ("500", "503", "429", "malformed", "hang", "reset", "401", "omit")

#: What the ``omit`` fault answers: a well-formed 200 that mentions no number at all.
OMITTING_ANSWERS: dict[Carrier, bytes] = {
    Carrier.ups: b'{"trackResponse": {"shipment": []}}',
    Carrier.fedex: b'{"transactionId": "sandbox-omit", "output": {"completeTrackResults": []}}',
    Carrier.usps: b"{}",
}

#: Renders a carrier-shaped error: (http status, carrier error code, message) -> response.
ErrorRenderer = Callable[[int, str, str], web.Response]


@dataclass
class FaultPlan:
    """Faults queued for one carrier: each tracking call pops one."""

    mode: str
    remaining: int
    retry_after_s: int = 1


@dataclass
class SandboxState:
    """Everything the sandbox remembers between requests."""

    latency_s: float = 0.0
    token_ttl_s: int = 3600
    #: Accepted client credentials per carrier; None accepts any non-empty pair.
    credentials: dict[Carrier, tuple[str, str]] | None = None
    scenarios: dict[tuple[Carrier, str], Scenario] = field(default_factory=dict)
    tokens: dict[str, tuple[Carrier, float]] = field(default_factory=dict)
    faults: dict[Carrier, list[FaultPlan]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    #: Numbers asked per carrier (a FedEx batch of 30 counts 30 here and 1 in ``calls``).
    numbers_asked: Counter[str] = field(default_factory=Counter)
    #: The most numbers one tracking call asked about, per carrier.
    largest_batch: Counter[str] = field(default_factory=Counter)
    hang_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.scenarios:
            self.scenarios = {(s.carrier, s.number): s for s in CATALOGUE}

    # -- scenarios ---------------------------------------------------------

    def scenario(self, carrier: Carrier, number: str) -> Scenario | None:
        """The scenario for a number, or None (the carrier's not-found answer)."""
        return self.scenarios.get((carrier, number))

    def add(self, scenario: Scenario) -> None:
        """Add or replace a scenario."""
        self.scenarios[(scenario.carrier, scenario.number)] = scenario

    # -- tokens ------------------------------------------------------------

    def credentials_ok(self, carrier: Carrier, client_id: str, client_secret: str) -> bool:
        """Whether a token request's credentials are accepted."""
        if not client_id or not client_secret:
            return False
        if self.credentials is None or carrier not in self.credentials:
            return True
        want_id, want_secret = self.credentials[carrier]
        return secrets.compare_digest(client_id, want_id) and secrets.compare_digest(
            client_secret, want_secret
        )

    def issue_token(self, carrier: Carrier) -> tuple[str, int]:
        """A new bearer token for ``carrier`` and its lifetime in seconds."""
        self.calls[f"{carrier.value}:token"] += 1
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (carrier, time.monotonic() + self.token_ttl_s)
        return token, self.token_ttl_s

    def token_ok(self, carrier: Carrier, request: web.Request) -> bool:
        """Whether the request carries a live token issued for ``carrier``."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        entry = self.tokens.get(token.strip())
        return entry is not None and entry[0] is carrier and entry[1] > time.monotonic()

    def revoke_tokens(self, carrier: Carrier | None = None) -> int:
        """Expire every token (of one carrier); returns how many."""
        doomed = [t for t, (c, _) in self.tokens.items() if carrier is None or c is carrier]
        for token in doomed:
            del self.tokens[token]
        return len(doomed)

    # -- faults and latency ------------------------------------------------

    def queue_fault(self, carrier: Carrier, mode: str, count: int, retry_after_s: int = 1) -> None:
        """Make the next ``count`` tracking calls to ``carrier`` fail with ``mode``."""
        if mode not in FAULT_MODES:
            raise ValueError(f"fault mode must be one of {', '.join(FAULT_MODES)}")
        self.faults.setdefault(carrier, []).append(FaultPlan(mode, count, retry_after_s))

    def pop_fault(self, carrier: Carrier) -> FaultPlan | None:
        """The fault for this call, if one is queued."""
        plans = self.faults.get(carrier) or []
        while plans and plans[0].remaining <= 0:
            plans.pop(0)
        if not plans:
            return None
        plans[0].remaining -= 1
        return plans[0]

    async def before_tracking(
        self, request: web.Request, carrier: Carrier, render_error: ErrorRenderer, numbers: int = 1
    ) -> web.StreamResponse | None:
        """
        Common work of every tracking call: count it, wait the latency, play a
        queued fault, check the bearer token.

        Returns:
            A response to send instead of tracking data, or None to go on.
        """
        self.calls[f"{carrier.value}:track"] += 1
        self.numbers_asked[carrier.value] += numbers
        self.largest_batch[carrier.value] = max(self.largest_batch[carrier.value], numbers)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        plan = self.pop_fault(carrier)
        if plan is not None:
            response = await self.play_fault(request, plan, render_error, carrier=carrier)
            if response is not None:
                return response
        if not self.token_ok(carrier, request):
            return render_error(401, "unauthorized", "Invalid token or token is not present")
        return None

    async def play_fault(
        self,
        request: web.Request,
        plan: FaultPlan,
        render_error: ErrorRenderer,
        *,
        carrier: Carrier | None = None,
    ) -> web.StreamResponse | None:
        """Answer as the fault says (None: the fault needs no answer of its own)."""
        if plan.mode in ("500", "503"):
            return render_error(int(plan.mode), "server_error", "Something went wrong")
        if plan.mode == "429":
            response = render_error(429, "too_many_requests", "Too Many Requests")
            response.headers["Retry-After"] = str(plan.retry_after_s)
            return response
        if plan.mode == "401":
            return render_error(401, "token_expired", "Bearer Token expired (oauth)")
        if plan.mode == "malformed":
            return web.Response(
                status=200, body=b'{"trackResponse": {"shipment": [', content_type="application/json"
            )
        if plan.mode == "omit" and carrier is not None:
            return web.Response(status=200, body=OMITTING_ANSWERS[carrier], content_type="application/json")
        if plan.mode == "hang":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=504)
        if plan.mode == "reset" and request.transport is not None:
            # A zero linger turns the close into a TCP RST (a plain abort() sends a FIN,
            # which the client sees as a polite disconnect, not a reset).
            sock = request.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            request.transport.abort()
            raise asyncio.CancelledError
        return None

    def stats(self) -> dict[str, object]:
        """Counters for tests and benchmarks."""
        return {
            "calls": dict(self.calls),
            "numbers_asked": dict(self.numbers_asked),
            "largest_batch": dict(self.largest_batch),
        }
