"""The pure parts of the carrier economy: breaker, GCRA budget, batching window, TTL states."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from carriers.base import TrackAnswer
from tracksvc.core.errors import CarrierUnavailable
from tracksvc.core.models import Carrier, CarrierMessage, Outcome, TrackingResult, TrackingStatus
from tracksvc.economy.batching import Batcher
from tracksvc.economy.breaker import BreakerState, CircuitBreaker
from tracksvc.economy.cache import CachedAnswer, CacheState, TtlPolicy
from tracksvc.economy.quota import LocalBudget, QuotaLimits, RefusalReason, gcra


class FakeClock:
    """Monotonic seconds that only move when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_refuses() -> None:
    """N consecutive failures open the breaker; an open breaker lets nothing through."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is BreakerState.closed
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.open
    assert not breaker.allow()
    assert breaker.retry_in_s() == 30


def test_breaker_success_resets_the_count() -> None:
    """Failures must be consecutive: a success in between starts counting again."""
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30, clock=FakeClock())
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state is BreakerState.closed


def test_breaker_probes_once_after_cooldown_and_closes_on_success() -> None:
    """After the cool-down exactly one probe goes out; its success closes the breaker."""
    clock = FakeClock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10, clock=clock, on_change=changes.append)
    breaker.failure()
    clock.now += 10
    assert breaker.state is BreakerState.half_open
    assert breaker.allow()
    assert not breaker.allow()  # the probe is under way: nobody else
    breaker.success()
    assert breaker.state is BreakerState.closed
    assert changes == [BreakerState.open, BreakerState.half_open, BreakerState.closed]


def test_breaker_failed_probe_opens_again() -> None:
    """A failed probe opens the breaker for another full cool-down."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, cooldown_s=10, clock=clock)
    for _ in range(5):
        breaker.failure()
    clock.now += 11
    assert breaker.allow()
    breaker.failure()
    assert breaker.state is BreakerState.open
    assert breaker.retry_in_s() == 10


def test_breaker_released_probe_lets_the_next_one_go() -> None:
    """A probe that ended without a verdict (budget refused it) does not block the next."""
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=1, clock=clock)
    breaker.failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


def test_breaker_with_zero_threshold_never_opens() -> None:
    """Threshold 0 disables the breaker."""
    breaker = CircuitBreaker(failure_threshold=0, cooldown_s=1, clock=FakeClock())
    for _ in range(100):
        breaker.failure()
    assert breaker.allow()


def test_gcra_allows_a_full_burst_then_spaces_calls() -> None:
    """A full bucket gives ``limit`` calls at once, then one per interval."""
    tat = None
    for _ in range(10):
        decision = gcra(100.0, tat, 10, 1.0)
        assert decision.allowed
        tat = decision.tat
    refused = gcra(100.0, tat, 10, 1.0)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.1)
    assert refused.tat == tat
    assert gcra(100.1, tat, 10, 1.0).allowed


def test_gcra_below_one_per_period_still_allows_one() -> None:
    """Half a call per second still allows the first call, then one every two seconds."""
    first = gcra(0.0, None, 0.5, 1.0)
    assert first.allowed
    second = gcra(0.0, first.tat, 0.5, 1.0)
    assert not second.allowed
    assert second.retry_after_s == pytest.approx(2.0)


def test_local_budget_applies_both_limits_and_blocks() -> None:
    """The hourly limit refuses after its burst; a Retry-After block refuses everything."""
    clock = FakeClock()
    budget = LocalBudget(QuotaLimits(per_second=100, per_hour=2), clock=clock)
    assert budget.take() is None
    assert budget.take() is None
    refusal = budget.take()
    assert refusal is not None
    assert (refusal.reason, refusal.limit) == (RefusalReason.budget, "hour")
    assert refusal.retry_after_s == pytest.approx(1800)
    other = LocalBudget(QuotaLimits(), clock=clock)
    other.block(30)
    blocked = other.take()
    assert blocked is not None
    assert blocked.reason is RefusalReason.retry_after
    clock.now += 30
    assert other.take() is None


def test_unlimited_budget_never_refuses() -> None:
    """Zero limits mean no limit."""
    budget = LocalBudget(QuotaLimits(0, 0), clock=FakeClock())
    assert all(budget.take() is None for _ in range(1000))


def _answer(status: TrackingStatus | None, age_s: float) -> CachedAnswer:
    if status is None:
        message = CarrierMessage(carrier=Carrier.ups, outcome=Outcome.not_found)
        return CachedAnswer(message=message, fetched_at=time.time() - age_s)
    result = TrackingResult(carrier=Carrier.ups, tracking_number="1ZX", status=status)
    return CachedAnswer(result=result, fetched_at=time.time() - age_s)


POLICY = TtlPolicy(
    active_s=900, final_s=86400, not_found_s=600, keep_s=7 * 86400,
    hard_active_s=3600, hard_final_s=7 * 86400, hard_not_found_s=1200,
)


@pytest.mark.parametrize(
    ("status", "age_s", "state"),
    [
        (TrackingStatus.in_transit, 100, CacheState.fresh),
        (TrackingStatus.in_transit, 1000, CacheState.revalidate),
        (TrackingStatus.in_transit, 4000, CacheState.expired),
        (TrackingStatus.delivered, 4000, CacheState.fresh),
        (TrackingStatus.delivered, 2 * 86400, CacheState.revalidate),
        (None, 700, CacheState.revalidate),
        (None, 1300, CacheState.expired),
    ],
)
def test_soft_and_hard_ttl_per_status(status: TrackingStatus | None, age_s: float, state: CacheState) -> None:
    """Fresh within the soft TTL, revalidated within the hard TTL, expired past it, per status."""
    assert POLICY.state(_answer(status, age_s)) is state


def test_hard_ttl_never_below_soft_and_expiry_keeps_answers() -> None:
    """A hard TTL below the soft one counts as the soft one; Redis keeps answers for keep_s."""
    policy = TtlPolicy(active_s=900, final_s=86400, not_found_s=600, keep_s=3600)
    answer = _answer(TrackingStatus.in_transit, 0)
    assert policy.hard_ttl_for(answer) == 900
    assert policy.expire_s(answer) == 3600
    assert policy.expire_s(_answer(TrackingStatus.delivered, 0)) == 86400


class Recorder:
    """A batch call that records what it was asked and answers from a table."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    async def __call__(self, numbers: Sequence[str], *, deadline: float, wait_until: float) -> TrackAnswer:
        self.calls.append(list(numbers))
        await asyncio.sleep(0)
        if self.fail:
            raise CarrierUnavailable("down", carrier=Carrier.fedex)
        answer: TrackAnswer = {}
        for number in numbers:
            if number.startswith("9"):
                answer[number] = CarrierMessage(
                    carrier=Carrier.fedex, tracking_number=number, outcome=Outcome.not_found
                )
            else:
                answer[number] = TrackingResult(
                    carrier=Carrier.fedex, tracking_number=number, status=TrackingStatus.in_transit
                )
        return answer


async def _ask_all(batcher: Batcher, numbers: list[str]) -> list[object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    return await asyncio.gather(
        *(batcher.ask(n, deadline=deadline, wait_until=deadline) for n in numbers), return_exceptions=True
    )


async def test_batcher_merges_concurrent_asks_up_to_max_batch() -> None:
    """65 concurrent asks become calls of 30, 30 and 5; each asker gets its own answer."""
    call = Recorder()
    batcher = Batcher(Carrier.fedex, call, max_batch=30, window_s=0.05)
    numbers = [f"1{i:011d}" for i in range(64)] + ["900000000000"]
    answers = await _ask_all(batcher, numbers)
    assert sorted(len(c) for c in call.calls) == [5, 30, 30]
    assert [getattr(a, "tracking_number", None) for a in answers] == numbers
    assert isinstance(answers[-1], CarrierMessage)
    assert answers[-1].outcome is Outcome.not_found
    assert all(isinstance(a, TrackingResult) for a in answers[:-1])
    await batcher.aclose()


async def test_batcher_whole_call_failure_reaches_each_asker_only() -> None:
    """A failed call fails each of its askers with the error; a later batch is unaffected."""
    failing = Recorder(fail=True)
    batcher = Batcher(Carrier.fedex, failing, max_batch=30, window_s=0.01)
    answers = await _ask_all(batcher, ["100000000001", "100000000002"])
    assert len(failing.calls) == 1
    assert all(isinstance(a, CarrierUnavailable) for a in answers)
    failing.fail = False
    (answer,) = await _ask_all(batcher, ["100000000003"])
    assert isinstance(answer, TrackingResult)
    await batcher.aclose()


async def test_batcher_waits_for_a_fetch_known_to_be_coming() -> None:
    """A window stays open (within its limit) while a fetch on its way has not asked yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5

    async def late(batcher: Batcher, number: str, expected: bool) -> object:
        await asyncio.sleep(0.08)
        if expected:
            batcher.expected()
        return await batcher.ask(number, deadline=deadline, wait_until=deadline)

    for expected, grouping in ((True, [["100000000001", "100000000002"]]),
                               (False, [["100000000001"], ["100000000002"]])):
        call = Recorder()
        batcher = Batcher(Carrier.fedex, call, max_batch=30, window_s=0.05)
        if expected:
            batcher.expect()
        await asyncio.gather(
            batcher.ask("100000000001", deadline=deadline, wait_until=deadline),
            late(batcher, "100000000002", expected),
        )
        assert call.calls == grouping
        await batcher.aclose()
