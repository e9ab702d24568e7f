"""
One Redis budget per lookup request, and a short "Redis is hung" latch.

A lookup touches Redis many times (the registry, the cache, the single-flight
lock and its pub/sub, the carrier budgets, the unscanned-labels index). With
Redis hung, each step would wait out its own socket timeout; lookups that the
carriers could answer would take many seconds and end in ``unknown``.

Instead every such step runs inside :class:`redis_step`, under the budget of
the request it belongs to (:func:`request_budget`, installed by
:class:`tracksvc.service.TrackService` for each lookup request). The budget
counts the time the request spends waiting on Redis (steps running at once
count once), not the time it spends on carriers.

The budget is against a Redis that does not answer, not against a busy one.
A step still waiting when the budget runs out is cut only if Redis has
answered no step of this process since it began: a Redis (or an event loop)
that answers others, only late, is waited for (each command stays bounded by
the connection pool's socket timeout), so load never turns into refusals.
A cut step trips the process's :class:`RedisLatch`; while it holds, and once
a request's budget is spent with no answer from Redis lately, steps fail at
once with :class:`~tracksvc.errors.RedisBudgetSpent`, a redis-py
``TimeoutError``: every Redis step already falls back on it (registry: 503 or
a carrier answer flagged ``registry_unavailable``; cache: a miss; single
flight and budgets: this process only), and the lookup goes on with the
carrier.

The budget travels in a context variable, so tasks started for the request
(a carrier fetch, its lock renewal) carry it too. Code run outside a lookup
request (the refresher, the import, the CLI) has no budget: its steps run as
they are, under the connection pool's own socket timeouts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType

import structlog
from redis.exceptions import TimeoutError as RedisTimeoutError

from tracksvc.core.errors import RedisBudgetSpent

log = structlog.get_logger("redis_budget")

#: Failures that mean "Redis did not answer in time" (a refused connection fails at once,
#: so trying again costs nothing: it never trips the latch).
HANGS: tuple[type[BaseException], ...] = (RedisTimeoutError, TimeoutError)

#: A step past the budget looks again this often whether Redis still answers others; a
#: request whose budget is spent still uses Redis if it answered within this long.
LIVENESS_S = 0.25


class RedisLatch:
    """
    What this process knows of Redis's health: when a step last got an answer,
    and a latch that, once a step found Redis hung (no answer to anyone in
    time), makes lookups skip Redis for ``hold_s`` seconds instead of each
    waiting out its budget.

    Args:
        hold_s: how long the latch holds once tripped (0: never holds).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, hold_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self.clock = clock
        self._until = 0.0
        self._answered_at = float("-inf")

    def held_for_s(self) -> float:
        """Seconds the latch still holds (0 when Redis may be tried)."""
        return max(0.0, self._until - self.clock())

    def trip(self) -> None:
        """Redis answered nobody in time: skip it for ``hold_s`` seconds."""
        if self.hold_s > 0 and self.held_for_s() <= 0:
            log.warning("redis_skipped", seconds=self.hold_s)
        self._until = max(self._until, self.clock() + self.hold_s)

    def answered(self) -> None:
        """A step got its answer: Redis is alive."""
        self._answered_at = self.clock()

    def answered_since(self, moment: float) -> bool:
        """Whether any step got an answer after ``moment`` (this latch's clock)."""
        return self._answered_at > moment


class RedisBudget:
    """
    How long one request may still wait on Redis, in all.

    Time is charged while at least one of the request's steps is under way,
    so steps running at the same time are charged once.

    Args:
        seconds: the whole budget.
        latch: the process's Redis health and latch.
    """

    def __init__(self, seconds: float, latch: RedisLatch) -> None:
        self.seconds = seconds
        self.latch = latch
        self._left_s = seconds
        self._active = 0
        self._since = 0.0

    def left_s(self, now: float) -> float:
        """Seconds of Redis time this request has left (negative: overdrawn)."""
        return self._left_s - (now - self._since if self._active else 0.0)

    def enter(self, now: float) -> None:
        """A step starts."""
        if self._active == 0:
            self._since = now
        self._active += 1

    def leave(self, now: float) -> None:
        """A step ended: charge the time Redis kept the request waiting."""
        self._active -= 1
        if self._active == 0:
            self._left_s -= now - self._since


_current: ContextVar[RedisBudget | None] = ContextVar("tracksvc_redis_budget", default=None)


def current_budget() -> RedisBudget | None:
    """The Redis budget of the request being served, if any."""
    return _current.get()


@contextmanager
def request_budget(seconds: float, latch: RedisLatch) -> Iterator[RedisBudget]:
    """
    Give the code inside (and the tasks it starts) one Redis budget of ``seconds``.

    Args:
        seconds: the most the request waits on a Redis that does not answer, in all.
        latch: the process's Redis health and latch.
    """
    budget = RedisBudget(seconds, latch)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


class redis_step:  # lower case: used like a function, ``async with redis_step("cache get"):``
    """
    One Redis round trip (or a few) of a lookup, bounded by the request's budget.

    Without a budget (outside a lookup request) it does nothing. With one, it
    raises :class:`~tracksvc.errors.RedisBudgetSpent` at once while the latch
    holds, or when the budget is spent and Redis answered nobody lately; and
    it cuts the step (same error, and trips the latch) when the budget runs
    out while Redis answers nobody.

    Args:
        what: the step, for the log and the error.
    """

    __slots__ = ("_budget", "_check", "_started", "_timeout", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self._budget: RedisBudget | None = None
        self._timeout: asyncio.Timeout | None = None
        self._check: asyncio.TimerHandle | None = None
        self._started = 0.0

    async def __aenter__(self) -> None:
        budget = _current.get()
        if budget is None:
            return
        latch = budget.latch
        if latch.held_for_s() > 0:
            raise RedisBudgetSpent(f"{self.what}: skipped, Redis answered nobody just before")
        now = latch.clock()
        left_s = budget.left_s(now)
        if left_s <= 0 and not latch.answered_since(now - LIVENESS_S):
            raise RedisBudgetSpent(f"{self.what}: skipped, this request's Redis budget is spent")
        budget.enter(now)
        self._budget, self._started = budget, now
        self._timeout = asyncio.timeout(None)
        await self._timeout.__aenter__()
        self._check = asyncio.get_running_loop().call_later(max(left_s, LIVENESS_S), self._on_deadline)

    def _on_deadline(self) -> None:
        budget, timeout = self._budget, self._timeout
        if budget is None or timeout is None:
            return
        if budget.latch.answered_since(self._started):  # Redis answers others: busy, not hung
            self._check = asyncio.get_running_loop().call_later(LIVENESS_S, self._on_deadline)
            return
        timeout.reschedule(asyncio.get_running_loop().time())  # expires now: cancels the step

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        budget, timeout, check = self._budget, self._timeout, self._check
        if budget is None or timeout is None:
            return
        self._budget = self._timeout = self._check = None
        if check is not None:
            check.cancel()
        latch = budget.latch
        try:
            await timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError as cut:
            latch.trip()
            raise RedisBudgetSpent(
                f"{self.what}: Redis answered nobody within this request's budget ({budget.seconds:g} s)"
            ) from cut
        finally:
            budget.leave(latch.clock())
        if exc is None:
            latch.answered()
        elif _is_hang(exc) and not latch.answered_since(self._started):
            latch.trip()


def _is_hang(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says Redis did not answer in time."""
    seen: BaseException | None = exc
    for _ in range(4):  # a RegistryUnavailable wraps the redis-py error it met
        if seen is None or isinstance(seen, RedisBudgetSpent):
            return False  # a skipped step: whoever ran out of time has tripped the latch
        if isinstance(seen, HANGS):
            return True
        seen = seen.__cause__
    return False
