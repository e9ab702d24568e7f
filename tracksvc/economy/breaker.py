"""
A per-carrier circuit breaker: stop calling a carrier that keeps failing,
probe it after a cool-down, close again when a probe succeeds.

::

    closed --(N consecutive failures)--> open --(cool-down passed)--> half_open
       ^                                   ^                              |
       +------------(probe succeeded)------+------(probe failed)----------+

Pure state with an injectable clock; no I/O. Each replica keeps its own
breaker: it reacts to what this process sees, which is what it needs to
stop hammering a carrier that is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Where a breaker is."""

    closed = "closed"  # calls go through
    open = "open"  # calls are refused until the cool-down has passed
    half_open = "half_open"  # one probe call at a time decides


class CircuitBreaker:
    """
    Counts consecutive failures of one carrier and refuses calls while open.

    Args:
        failure_threshold: consecutive failures that open the breaker (0 disables it).
        cooldown_s: how long it stays open before one probe is let through.
        clock: monotonic seconds; tests pass their own.
        on_change: told the new state at every transition (metrics).
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.closed
        self.failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker turns half-open once the cool-down has passed)."""
        if self._state is BreakerState.open and self.retry_in_s() <= 0:
            self._move(BreakerState.half_open)
        return self._state

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self._state is not BreakerState.open:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_s - self._clock())

    def allow(self) -> bool:
        """
        Whether a call may go out now; a half-open breaker lets one probe through.

        A caller that was allowed must then call :meth:`success`,
        :meth:`failure` or :meth:`release`.
        """
        state = self.state
        if state is BreakerState.closed:
            return True
        if state is BreakerState.half_open and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        """The call worked: close the breaker."""
        self.failures = 0
        self._probing = False
        if self._state is not BreakerState.closed:
            self._move(BreakerState.closed)

    def failure(self) -> None:
        """The call failed: count it; open the breaker at the threshold or when a probe failed."""
        self.failures += 1
        was_probe = self._probing
        self._probing = False
        if self.failure_threshold <= 0 or self._state is BreakerState.open:
            return  # disabled, or a call that was already under way when it opened
        if was_probe or self._state is BreakerState.half_open or self.failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._move(BreakerState.open)

    def release(self) -> None:
        """The call ended without a verdict (refused by the budget, rate limited, cancelled)."""
        self._probing = False

    def _move(self, state: BreakerState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
