"""
The gate in front of one carrier: every tracking call passes the circuit
breaker and the budget before it is sent, and its outcome is measured.

A call the breaker or the budget refuses is never sent; the tracker then
answers from the cache (stale) or with the reason (for a budget: which one,
and when the next call is allowed). A 429 the adapter could
not absorb (a long Retry-After, or none at all) blocks the carrier for every
replica through the shared budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import structlog

from carriers.base import CarrierAdapter, TrackAnswer
from tracksvc.core.errors import (
    CarrierError,
    CarrierRateLimited,
    CarrierTimeout,
    CarrierUnavailable,
)
from tracksvc.core.metrics import Metrics
from tracksvc.domain.advice import CARRIER_NAMES
from tracksvc.domain.failures import BREAKER_OPEN_CODE, BUDGET_SPENT_CODE, CARRIER_WAIT_CODE
from tracksvc.economy.breaker import BreakerState, CircuitBreaker
from tracksvc.economy.quota import Budget, Refusal, RefusalReason, Scope

log = structlog.get_logger("gate")

#: Which budget was spent, in words, per bucket scope (:mod:`tracksvc.economy.quota`).
SPENT_TEXT: Mapping[Scope, str] = {
    Scope.carrier: "{name} call budget spent ({limit})",
    Scope.adhoc: (
        "{name} call budget for unregistered numbers spent ({limit}; "
        "the rest is kept for registered shipments)"
    ),
    Scope.key: "{name} call budget of this API key spent ({limit} for unregistered numbers)",
}


def _utc(epoch_s: float) -> str:
    """A moment as people read it: the time of day in UTC, with the date when not today."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    if moment.date() == datetime.now(UTC).date():
        return f"{moment:%H:%M:%S} UTC"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


class CarrierGate:
    """
    Breaker, budget and metrics around one carrier adapter's ``track``.

    Args:
        adapter: the carrier adapter.
        budget: the carrier's shared budget, or None for no limits.
        breaker: the carrier's circuit breaker.
        metrics: where calls and refusals are counted.
        rate_limited_block_s: how long a 429 without Retry-After blocks the carrier.
    """

    def __init__(
        self,
        adapter: CarrierAdapter,
        *,
        budget: Budget | None,
        breaker: CircuitBreaker,
        metrics: Metrics,
        rate_limited_block_s: float = 10.0,
    ) -> None:
        self.adapter = adapter
        self.carrier = adapter.carrier
        self.budget = budget
        self.breaker = breaker
        self.metrics = metrics
        self.rate_limited_block_s = rate_limited_block_s
        # Each call counts in these: their per-carrier children are looked up once.
        self._latency = metrics.carrier_latency.labels(self.carrier.value)
        self._batch_size = metrics.batch_size.labels(self.carrier.value)
        self._shown: BreakerState | None = None

    @property
    def max_batch(self) -> int:
        """How many numbers one call may carry."""
        return max(1, int(self.adapter.max_batch))

    def state(self) -> BreakerState:
        """The breaker's state now (and the gauge set to it)."""
        state = self.breaker.state
        if state is not self._shown:
            self.metrics.set_breaker_state(self.carrier.value, state.value)
            self._shown = state
        return state

    async def track(self, numbers: Sequence[str], *, deadline: float, wait_until: float) -> TrackAnswer:
        """
        Ask the carrier about ``numbers`` if the breaker and the budget allow it.

        Args:
            numbers: at most :attr:`max_batch` numbers.
            deadline: event-loop time by which the call must have answered.
            wait_until: event-loop time until which to wait for budget.

        Raises:
            CarrierError: refused (breaker open: :class:`CarrierUnavailable`; budget or
                Retry-After: :class:`CarrierRateLimited`, never sent), or the call failed.
        """
        carrier = self.carrier.value
        if not self.breaker.allow():
            self.metrics.breaker_rejections.labels(carrier).inc()
            raise CarrierUnavailable(
                f"not asked: {self.breaker.failures} calls in a row failed; "
                f"the next try is in {self.breaker.retry_in_s():.0f} s",
                carrier=self.carrier,
                code=BREAKER_OPEN_CODE,
            )
        self.state()
        try:
            refusal = await self.budget.acquire(min(wait_until, deadline)) if self.budget else None
        except BaseException:
            self.breaker.release()
            raise
        if refusal is not None:
            self.breaker.release()
            self.metrics.quota_refusals.labels(carrier, refusal.reason.value).inc()
            raise self._refused(refusal)
        started = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline):
                answer = await self.adapter.track(numbers)
        except TimeoutError as exc:
            error: CarrierError = CarrierTimeout(
                "no answer within the lookup's deadline", carrier=self.carrier
            )
            self._failed(error, started)
            raise error from exc
        except CarrierRateLimited as exc:
            # Not the carrier failing: it is rationing. Block every replica until it said.
            self.breaker.release()
            self._measure("rate_limited", started)
            if self.budget is not None:
                seconds = exc.retry_after_s if exc.retry_after_s is not None else self.rate_limited_block_s
                await self.budget.block(seconds, "retry_after" if exc.retry_after_s else "429")
            raise
        except CarrierError as exc:
            self._failed(exc, started)
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.success()
        self.state()
        self._measure("ok", started)
        self._batch_size.observe(len(numbers))
        return answer

    def _refused(self, refusal: Refusal) -> CarrierRateLimited:
        bucket = refusal.bucket
        code = BUDGET_SPENT_CODE
        if refusal.reason is RefusalReason.retry_after or bucket is None:
            code = CARRIER_WAIT_CODE
            text = (
                "not asked: the carrier asked us to wait; "
                f"the next try is in {refusal.retry_after_s:.0f} s"
            )
        else:
            spent = SPENT_TEXT[bucket.scope].format(
                name=CARRIER_NAMES[self.carrier], limit=bucket.describe()
            )
            text = f"not asked: {spent}; next call allowed at {_utc(time.time() + refusal.retry_after_s)}"
        return CarrierRateLimited(
            text, carrier=self.carrier, status=None, retry_after_s=refusal.retry_after_s, code=code
        )

    def _failed(self, error: CarrierError, started: float) -> None:
        self.breaker.failure()
        self.state()
        self._measure(error.outcome.value, started)
        log.warning("carrier_call_failed", carrier=self.carrier.value, error=str(error))

    def _measure(self, outcome: str, started: float) -> None:
        self.metrics.carrier_calls.labels(self.carrier.value, outcome).inc()
        self._latency.observe(time.perf_counter() - started)
