"""
One Redis budget per lookup request, and a short "Redis is down" latch.

A lookup touches Redis many times (the registry, the cache, the single-flight
lock and its pub/sub, the carrier budgets, the unscanned-labels index). With
Redis hung, each step would wait out its own socket timeout; lookups that the
carriers could answer would take many seconds and end in ``unknown``.

Instead every such step runs inside :func:`redis_step`, under the budget of
the request it belongs to (:func:`request_budget`, installed by
:class:`tracksvc.service.TrackService` for each lookup request). The budget
counts the time the request spends waiting on Redis (steps running at once
count once), not the time it spends on carriers. Once it is spent, or once a
step found Redis hung and tripped the :class:`RedisLatch`, the steps
of that request (and, while the latch holds, of every request of this
process) fail at once with :class:`~tracksvc.errors.RedisBudgetSpent`, a
redis-py ``TimeoutError``: every Redis step already falls back on it
(registry: 503 or a carrier answer flagged ``registry_unavailable``; cache:
a miss; single flight and budgets: this process only), and the lookup goes
on with the carrier.

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

from tracksvc.errors import RedisBudgetSpent

log = structlog.get_logger("redis_budget")

#: Failures that mean "Redis hangs": each would cost the next request its whole budget again.
#: (A refused connection fails at once, so it costs nothing to try again: it does not latch.)
HANGS: tuple[type[BaseException], ...] = (RedisTimeoutError, TimeoutError)


class RedisLatch:
    """
    A per-process "Redis is down" latch: once a step found Redis hung (no
    answer in time), lookups skip Redis for ``hold_s`` seconds instead of each
    waiting out its budget. A refused connection fails at once and does not latch.

    Args:
        hold_s: how long the latch holds once tripped (0: never holds).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, hold_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_s = hold_s
        self._clock = clock
        self._until = 0.0

    def held_for_s(self) -> float:
        """Seconds the latch still holds (0 when Redis may be tried)."""
        return max(0.0, self._until - self._clock())

    def trip(self) -> None:
        """Redis did not answer: skip it for ``hold_s`` seconds."""
        if self.hold_s > 0 and self.held_for_s() <= 0:
            log.warning("redis_skipped", seconds=self.hold_s)
        self._until = max(self._until, self._clock() + self.hold_s)


class RedisBudget:
    """
    How long one request may still wait on Redis, in all.

    Time is charged while at least one of the request's steps is under way,
    so steps running at the same time are charged once.

    Args:
        seconds: the whole budget.
        latch: the process's latch, tripped when a step finds Redis hung.
    """

    def __init__(self, seconds: float, latch: RedisLatch | None = None) -> None:
        self.seconds = seconds
        self.latch = latch
        self._left_s = seconds
        self._active = 0
        self._since = 0.0

    def deadline(self, now: float) -> float:
        """Event-loop time by which the steps under way (and one starting now) must end."""
        return (self._since if self._active else now) + self._left_s

    def left_s(self, now: float) -> float:
        """Seconds of Redis time this request has left."""
        return self.deadline(now) - now

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
def request_budget(seconds: float, latch: RedisLatch | None = None) -> Iterator[RedisBudget]:
    """
    Give the code inside (and the tasks it starts) one Redis budget of ``seconds``.

    Args:
        seconds: the most the request waits on Redis, in all.
        latch: the process's "Redis is down" latch.
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
    raises :class:`~tracksvc.errors.RedisBudgetSpent` at once when the budget
    is spent or the latch holds, and when the step outlasts what is left;
    a step that outlasts it, or meets a Redis timeout, trips the latch.

    Args:
        what: the step, for the log and the error.
    """

    __slots__ = ("_budget", "_timeout", "what")

    def __init__(self, what: str) -> None:
        self.what = what
        self._budget: RedisBudget | None = None
        self._timeout: asyncio.Timeout | None = None

    async def __aenter__(self) -> None:
        budget = _current.get()
        if budget is None:
            return
        latch = budget.latch
        if latch is not None and latch.held_for_s() > 0:
            raise RedisBudgetSpent(f"{self.what}: skipped, Redis did not answer just before")
        now = asyncio.get_running_loop().time()
        if budget.left_s(now) <= 0:
            raise RedisBudgetSpent(f"{self.what}: skipped, this request's Redis budget is spent")
        budget.enter(now)
        self._budget = budget
        self._timeout = asyncio.timeout_at(budget.deadline(now))
        await self._timeout.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        budget, timeout = self._budget, self._timeout
        if budget is None or timeout is None:
            return
        self._budget = self._timeout = None
        try:
            await timeout.__aexit__(exc_type, exc, tb)
        except TimeoutError as spent:
            self._trip(budget)
            raise RedisBudgetSpent(
                f"{self.what}: no answer within this request's Redis budget ({budget.seconds:g} s)"
            ) from spent
        finally:
            budget.leave(asyncio.get_running_loop().time())
        if exc is not None and _is_hang(exc):
            self._trip(budget)

    @staticmethod
    def _trip(budget: RedisBudget) -> None:
        if budget.latch is not None:
            budget.latch.trip()


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
