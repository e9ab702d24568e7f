"""
Asking a carrier about one number: through its gate (circuit breaker and
shared budget, :mod:`tracksvc.economy.gate`) or, for a carrier that takes
several numbers per call, its batcher (:mod:`tracksvc.economy.batching`);
within the lookup's deadline; the outcome as data.

The window of one call (:class:`CallWindow`): the carrier must have answered
by the lookup's deadline, and a budget turn later than :attr:`CallWindow.wait_until`
is refused at once rather than waited for: a background refresh never waits,
a lookup with a cached answer to fall back on waits at most
``quota_max_wait_s``, and no turn may leave the call less than
:data:`CALL_SHARE_OF_DEADLINE` of the deadline.

No Redis here (the budget's own round trip aside) and no cache: a flight
(:mod:`tracksvc.economy.flights`) asks, then stores what it got.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from carriers.base import CarrierAdapter, missing_from_answer, unavailable_message
from tracksvc.core.errors import CarrierError, CarrierTimeout
from tracksvc.core.metrics import Metrics
from tracksvc.core.models import Carrier, CarrierMessage, TrackingResult
from tracksvc.core.redis import RedisClient
from tracksvc.core.settings import Settings
from tracksvc.economy.batching import Batcher
from tracksvc.economy.breaker import BreakerState, CircuitBreaker
from tracksvc.economy.cache import CachedAnswer
from tracksvc.economy.gate import CarrierGate
from tracksvc.economy.policy import FlightResult
from tracksvc.economy.quota import Budget, QuotaLimits, QuotaShares

log = structlog.get_logger("tracker")

#: Share of a lookup's deadline kept for the carrier call itself: a budget turn later
#: than the rest is not waited for (the call would have too little time to answer).
CALL_SHARE_OF_DEADLINE = 0.25

#: Extra time a batched ask waits past its deadline before giving up on its own,
#: so that the call's own deadline (which counts for the breaker) fires first.
BATCH_GRACE_S = 0.05


@dataclass(frozen=True)
class CallWindow:
    """When one carrier call must have answered, and the latest budget turn it takes."""

    #: Event-loop time by which the carrier must have answered.
    deadline: float
    #: Event-loop time after which a budget turn is refused rather than waited for.
    wait_until: float


def _show_breaker(metrics: Metrics, carrier: str, state: BreakerState) -> None:
    metrics.set_breaker_state(carrier, state.value)


def unlimited_gates(
    adapters: Mapping[Carrier, CarrierAdapter], metrics: Metrics
) -> dict[Carrier, CarrierGate]:
    """Gates without budgets, with breakers that never open."""
    return {
        carrier: CarrierGate(
            adapter, budget=None, breaker=CircuitBreaker(failure_threshold=0, cooldown_s=0), metrics=metrics
        )
        for carrier, adapter in adapters.items()
    }


def gates_from_settings(
    adapters: Mapping[Carrier, CarrierAdapter], redis: RedisClient, settings: Settings, metrics: Metrics
) -> dict[Carrier, CarrierGate]:
    """Each carrier's gate with the shared budget and the circuit breaker the settings describe."""
    gates = {}
    for carrier, adapter in adapters.items():
        metrics.set_breaker_state(carrier.value, BreakerState.closed.value)
        breaker = CircuitBreaker(
            failure_threshold=settings.breaker_failure_threshold,
            cooldown_s=settings.breaker_cooldown_s,
            on_change=functools.partial(_show_breaker, metrics, carrier.value),
        )
        gates[carrier] = CarrierGate(
            adapter,
            budget=Budget(
                redis,
                carrier,
                QuotaLimits.from_settings(settings, carrier),
                QuotaShares.from_settings(settings),
            ),
            breaker=breaker,
            metrics=metrics,
            rate_limited_block_s=settings.rate_limited_block_s,
        )
    return gates


class CarrierCalls:
    """
    The carrier side of a lookup: gates, batchers and the deadline.

    Args:
        gates: breaker and budget per carrier.
        deadline_s: how long a lookup waits for a carrier.
        batch_window_s: how long asks wait to be merged, for carriers that batch (0: off).
        quota_max_wait_s: longest wait for budget when a cached answer can be served instead.
    """

    def __init__(
        self,
        gates: Mapping[Carrier, CarrierGate],
        *,
        deadline_s: float,
        batch_window_s: float = 0.0,
        quota_max_wait_s: float = 1.0,
    ) -> None:
        self.gates = dict(gates)
        self.deadline_s = deadline_s
        self.quota_max_wait_s = quota_max_wait_s
        self.batchers: dict[Carrier, Batcher] = {
            carrier: Batcher(carrier, gate.track, max_batch=gate.max_batch, window_s=batch_window_s)
            for carrier, gate in self.gates.items()
            if gate.max_batch > 1 and batch_window_s > 0
        }
        #: Fetches started for a batching carrier that have not asked their batcher yet.
        self._expected: set[tuple[Carrier, str]] = set()

    def window(self, *, has_cached: bool, background: bool) -> CallWindow:
        """
        The window of a call starting now.

        Args:
            has_cached: a cached answer can be served (stale) if the call is refused.
            background: a background refresh (never waits for budget).
        """
        now = asyncio.get_running_loop().time()
        deadline = now + self.deadline_s
        last_turn = deadline - self.deadline_s * CALL_SHARE_OF_DEADLINE
        if background:
            wait_until = now
        elif has_cached:
            wait_until = min(last_turn, now + self.quota_max_wait_s)
        else:
            wait_until = last_turn
        return CallWindow(deadline, wait_until)

    # -- batching: fetches on their way --------------------------------------------

    def expect(self, carrier: Carrier, number: str) -> None:
        """A fetch for ``number`` started: its batcher's window waits for it a little longer."""
        batcher = self.batchers.get(carrier)
        if batcher is not None:
            batcher.expect()  # it will ask the batcher shortly, after the replicas' lock
            self._expected.add((carrier, number))

    def arrived(self, carrier: Carrier, number: str) -> None:
        """The fetch for ``number`` asked its batcher, or ended without asking."""
        key = (carrier, number)
        if key in self._expected:
            self._expected.discard(key)
            self.batchers[carrier].expected()

    @contextmanager
    def asking_together(self, carrier: Carrier, count: int) -> Iterator[None]:
        """
        ``count`` lookups for ``carrier`` start together inside (the refresher's batch): its
        batcher's windows wait for them (up to the longest delay) instead of sending the
        first few alone before the others have passed their Redis round trips.
        """
        batcher = self.batchers.get(carrier)
        if batcher is None or count <= 1:
            yield
            return
        batcher.expect(count)
        try:
            yield
        finally:
            batcher.expected(count)

    # -- asking ------------------------------------------------------------------

    async def ask(self, carrier: Carrier, number: str, window: CallWindow) -> FlightResult:
        """
        The carrier's answer about ``number``, or why it could not be asked (never raises
        :class:`CarrierError`).

        Returns:
            The answer, stamped with when the carrier was asked (to be stored), or the failure.
        """
        fetched_at = time.time()
        try:
            answer = await self._call(carrier, number, window)
        except CarrierError as exc:
            log.warning(
                "carrier_lookup_failed",
                carrier=carrier.value,
                tracking_number=number,
                outcome=exc.outcome.value,
                error=str(exc),
            )
            return unavailable_message(exc, number)
        if isinstance(answer, TrackingResult):
            return CachedAnswer(result=answer, fetched_at=fetched_at)
        return CachedAnswer(message=answer, fetched_at=fetched_at)

    async def _call(
        self, carrier: Carrier, number: str, window: CallWindow
    ) -> TrackingResult | CarrierMessage:
        batcher = self.batchers.get(carrier)
        if batcher is not None:
            self.arrived(carrier, number)
            try:
                async with asyncio.timeout_at(window.deadline + BATCH_GRACE_S):
                    return await batcher.ask(number, deadline=window.deadline, wait_until=window.wait_until)
            except TimeoutError as exc:
                raise CarrierTimeout(
                    f"no answer within {self.deadline_s:g} s", carrier=carrier, tracking_number=number
                ) from exc
        answers = await self.gates[carrier].track(
            [number], deadline=window.deadline, wait_until=window.wait_until
        )
        return answers.get(number) or missing_from_answer(carrier, number)

    # -- state and lifecycle -------------------------------------------------------

    def breaker_states(self) -> dict[str, str]:
        """Each carrier's circuit breaker state (``closed``, ``half_open``, ``open``)."""
        return {carrier.value: gate.state().value for carrier, gate in self.gates.items()}

    async def aclose(self) -> None:
        """Cancel the batches under way (app shutdown)."""
        for batcher in self.batchers.values():
            await batcher.aclose()


def timed_out(carrier: Carrier, number: str, text: str) -> CarrierMessage:
    """A lookup that ran out of time, as data."""
    return unavailable_message(CarrierTimeout(text, carrier=carrier, tracking_number=number), number)
