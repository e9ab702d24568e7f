"""
The background refresher: keeps registered, undelivered shipments fresh, so
the warehouse list and the order statuses are current without anyone
looking them up (design.md section 4).

Each replica runs :data:`CYCLES_PER_PERIOD` cycles per refresher period. A
cycle takes, for each carrier, the refresher's share of its budget accrued
since the last cycle of any replica (:mod:`tracksvc.freshness.pace`: the
reserved share of the tighter limit, in calls, shared through Redis), and
refreshes as many due shipments as those calls cover (FedEx: 30 numbers a
call, asked together so they go out as one batch), at most
``refresher_batch_size``, spreading the calls over the cycle. Due shipments
are taken in this order:

1. labels past the tender grace period no carrier has been asked about (the
   registry's unchecked index), newest registrations first: they are on the
   warehouse's stalled list on nobody's word, e.g. right after an import;
2. label-only labels near the tender grace limit (label age within
   ``refresher_near_grace_hours`` of ``tender_grace_hours``): the ones about
   to enter, or just entered, the warehouse's stalled list;
3. other labels never checked, newest registrations first;
4. the other label-only labels, oldest first (2 and 4 from the registry's
   unscanned index, a range query by label time);
5. every other registered shipment that is due, most overdue first (the
   registry's ``tracksvc:refresh:due`` schedule).

Labels take at most three quarters of a batch and of each carrier's calls
while parcels in transit are due, so those never starve behind a backlog of
labels. Only shipments that are due are picked. Each pick is claimed in
Redis (``SET NX PX``, one period, in one pipeline), so no two replicas
refresh the same shipment within one period, and moved one period ahead in
the schedule while in hand, so other replicas' cycles look past it (should
this replica die, it is due again when its claim expires); calls a replica
took and could not use (another held the claims) go back to the pace. Due
shipments of a carrier whose pace ran out are moved to that carrier's next
turns, in order, so one slow carrier's backlog never fills the due window.

A refresh is :meth:`Tracker.refresh` (a lookup that refreshes an answer
past its soft TTL before answering; the cache, single flight, budgets and
breakers apply) and :meth:`TrackService.learn` (a carrier scan takes the
label off the unscanned list). The shipment is then scheduled again: one
revisit interval after its answer, earlier when the clock alone is about to
change its status (a label crossing the grace limit, a parcel about to be
stalled), later when the carrier could not be asked. Polling stops for
delivered and cancelled shipments, voided labels, and labels older than the
carrier keeps tracking data (:data:`RETENTION_DAYS`).

Keys::

    tracksvc:refresh:claim:{s:<shipment_id>}   who refreshes it this period (expires)

``last_cycle_lag_s`` (and the ``tracksvc_refresher_lag_seconds`` gauge when
metrics are wired) is how overdue the most overdue shipment still is after
a cycle, or how far ahead the last deferred shipment's turn lies if that is
longer: 0 when the refresher keeps up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import structlog
from redis.exceptions import RedisError

from tracksvc.core.errors import RegistryUnavailable
from tracksvc.core.models import Carrier, TrackingStatus
from tracksvc.core.redis import RedisClient
from tracksvc.core.redis_keys import claim_key_prefix
from tracksvc.core.settings import Settings
from tracksvc.domain.records import ShipmentRecord
from tracksvc.domain.status import AGE_RULES, Clocks, Limits
from tracksvc.economy.tracker import Freshness, Lookup, Tracker
from tracksvc.freshness.pace import Pace
from tracksvc.registry.store import Registry
from tracksvc.service.lookup import TrackService

log = structlog.get_logger("refresher")


#: How long each carrier keeps tracking data, in days after the label.
RETENTION_DAYS: Mapping[Carrier, int] = {
    # Documented: Track API data is kept 120 days (carrier-apis.md section 1.2).
    Carrier.ups: 120,
    # Not documented (carrier-apis.md section 8, item 6): taken as UPS's.
    Carrier.fedex: 120,
    # Not documented: taken as UPS's.
    Carrier.usps: 120,
}

#: Carrier statuses after which nothing more happens: polling stops.
STOP_POLLING: frozenset[TrackingStatus] = frozenset(
    {TrackingStatus.delivered, TrackingStatus.cancelled}
)

#: Share of a batch label-only labels may take (the rest is kept for active parcels).
LABEL_SHARE = 0.75

#: Candidates read per index and cycle, as a multiple of the most a cycle may refresh.
SCAN_FACTOR = 3

#: Cycles per refresher period: each takes the share of the budgets accrued since the last.
CYCLES_PER_PERIOD = 12

#: Cycles of one replica running at once (a slow carrier keeps a cycle waiting).
CYCLES_IN_FLIGHT = 3

#: Rounds of claiming per cycle: picks another replica holds make room for the next ones.
CLAIM_ROUNDS = 3

#: Part of a cycle its carrier calls are spread over (the rest is slack before the next).
SPREAD_SHARE = 0.8

#: After a failed lookup, try again after this many periods (at most the revisit interval).
RETRY_PERIODS = 5


def claim_key(shipment_id: str) -> str:
    """The claim of one shipment (same hash tag as its record)."""
    return f"{claim_key_prefix}{{s:{shipment_id}}}"


@dataclass(frozen=True)
class Pick:
    """A due shipment a cycle considers: its record (None: gone) and whether it is a label."""

    sid: str
    record: ShipmentRecord | None
    is_label: bool

    def asks_carrier(self, now: datetime) -> Carrier | None:
        """The carrier its refresh asks, or None when it is retired without asking."""
        if self.record is None or retire_before_asking(self.record, now) is not None:
            return None
        return self.record.carrier


class Retired(StrEnum):
    """Why a shipment is no longer polled."""

    missing = "missing"  # the record is gone
    voided = "voided"  # the label was voided in our system
    retention = "retention"  # older than the carrier keeps data
    finished = "finished"  # the carrier says delivered or cancelled


@dataclass(frozen=True)
class Schedule:
    """The timing the refresher works with, in seconds and hours."""

    period_s: float
    revisit_s: float
    limits: Limits

    @classmethod
    def from_settings(cls, settings: Settings) -> Schedule:
        """The schedule the settings describe."""
        return cls(
            period_s=settings.refresher_period_s,
            revisit_s=settings.refresher_revisit_s,
            limits=Limits(
                tender_grace_hours=settings.tender_grace_hours,
                stalled_after_hours=settings.stalled_after_hours,
            ),
        )


def past_retention(record: ShipmentRecord, now: datetime) -> bool:
    """Whether the carrier no longer keeps tracking data for this label."""
    return now - record.label_created_at > timedelta(days=RETENTION_DAYS[record.carrier])


def retire_before_asking(record: ShipmentRecord | None, now: datetime) -> Retired | None:
    """Why not to ask the carrier about a picked shipment at all, or None to ask."""
    if record is None:
        return Retired.missing
    if record.voided:
        return Retired.voided
    if past_retention(record, now):
        return Retired.retention
    return None


def next_change_at(record: ShipmentRecord, lookup: Lookup, now: datetime, limits: Limits) -> float | None:
    """
    When the clock alone changes this shipment's status, if it will.

    A label becomes ``not_tendered`` at the end of the grace period; a parcel
    in transit becomes ``stalled`` after too long without a scan. A
    registered label its carrier does not know yet counts as a label.

    Returns:
        Epoch seconds of the change, or None (no clock rule applies, or it already did).
    """
    result = lookup.result
    if result is not None:
        status = result.status
        clocks = Clocks(now, record.label_created_at or result.label_created_at, result.last_physical_scan_at)
    elif lookup.carrier_denies_it:
        status = TrackingStatus.label_created
        clocks = Clocks(now, record.label_created_at, None)
    else:
        return None
    rule = AGE_RULES.get(status)
    since = rule.since(clocks) if rule is not None else None
    if rule is None or since is None:
        return None
    at = since + timedelta(hours=float(getattr(limits, rule.limit_setting)))
    return at.timestamp() if at > now else None


def next_due(record: ShipmentRecord, lookup: Lookup, now: datetime, schedule: Schedule) -> float | None:
    """
    When to look at a refreshed shipment again (epoch seconds), or None to stop.

    One revisit interval after the answer's time, but never within the same
    period, and at the moment a clock rule will change its status if that
    comes sooner. A carrier that could not be asked is tried again after a
    few periods.
    """
    now_ts = now.timestamp()
    if lookup.result is not None and lookup.result.status in STOP_POLLING:
        return None
    floor = now_ts + schedule.period_s
    answered = lookup.result is not None or lookup.carrier_denies_it
    if lookup.freshness is Freshness.stale or not answered:
        return max(floor, now_ts + min(schedule.revisit_s, RETRY_PERIODS * schedule.period_s))
    base = lookup.as_of.timestamp() if lookup.as_of is not None else now_ts
    due = base + schedule.revisit_s
    change = next_change_at(record, lookup, now, schedule.limits)
    if change is not None:
        due = min(due, change + 1.0)
    return max(floor, due)


@dataclass
class CycleReport:
    """What one refresher cycle did."""

    started_at: float
    #: Shipments asked about, in the order they were picked.
    refreshed: list[str] = field(default_factory=list)
    #: Shipments no longer polled, and why.
    retired: dict[str, str] = field(default_factory=dict)
    #: Due shipments another replica (or an earlier cycle this period) had claimed.
    skipped_claimed: int = 0
    #: Shipments whose refresh failed unexpectedly (logged).
    failed: list[str] = field(default_factory=list)
    #: Carrier calls the pace granted this cycle, and how many were given back unused.
    granted: dict[str, int] = field(default_factory=dict)
    given_back: dict[str, int] = field(default_factory=dict)
    #: Due shipments moved to their carrier's next turns (its pace ran out this cycle).
    deferred: int = 0
    #: How overdue the most overdue shipment still is after the cycle, in seconds.
    lag_s: float = 0.0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able data (``tracksvc refresher --once``)."""
        return {
            "refreshed": self.refreshed,
            "retired": self.retired,
            "skipped_claimed": self.skipped_claimed,
            "failed": self.failed,
            "granted": self.granted,
            "given_back": self.given_back,
            "deferred": self.deferred,
            "lag_s": round(self.lag_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
        }


class LagGauge(Protocol):
    """Where the lag is published (the Prometheus gauge of :mod:`tracksvc.core.metrics`)."""

    def set(self, value: float) -> None:
        """Record the current lag in seconds."""


#: Work run after every cycle (the webhook sweep): returns anything, must not raise.
CycleHook = Callable[[], Awaitable[object]]


class Refresher:
    """Refreshes due shipments in bounded cycles; one per process, any number of replicas."""

    def __init__(
        self,
        *,
        registry: Registry,
        tracker: Tracker,
        service: TrackService,
        redis: RedisClient,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lag_gauge: LagGauge | None = None,
        after_cycle: Sequence[CycleHook] = (),
    ) -> None:
        self.registry = registry
        self.tracker = tracker
        self.service = service
        self.redis = redis
        self.schedule = Schedule.from_settings(settings)
        self.batch_size = settings.refresher_batch_size
        self.concurrency = settings.refresher_concurrency
        self.near_grace_s = settings.refresher_near_grace_hours * 3600
        self.grace_s = settings.tender_grace_hours * 3600
        self.clock = clock
        self.lag_gauge = lag_gauge
        self.after_cycle = list(after_cycle)
        self.owner = uuid.uuid4().hex[:12]
        #: Seconds between two cycles of this replica.
        self.cycle_s = self.schedule.period_s / CYCLES_PER_PERIOD
        self.pace = Pace(redis, settings, cycle_s=self.cycle_s)
        #: Per carrier: the latest turn a deferred shipment was given (epoch seconds).
        self._horizon: dict[Carrier, float] = {}
        #: Lag measured at the end of the last cycle (None before the first).
        self.last_cycle_lag_s: float | None = None
        self.last_report: CycleReport | None = None
        self.cycles = 0

    async def run_cycle(self, spread_s: float = 0.0) -> CycleReport:
        """
        Refresh the shipments that are due, as many as this cycle's share of the budgets
        allows (at most one batch); then run the hooks.

        Args:
            spread_s: spread the carrier calls evenly over this many seconds (the
                background loop spreads them over most of a cycle; 0: all at once).

        Raises:
            RegistryUnavailable: Redis could not be reached to pick or claim.
        """
        started = time.perf_counter()
        now = self.clock()
        report = CycleReport(started_at=now.timestamp())
        picks = await self._pick(now, report)
        await self._refresh_units(self._units(picks), now, report, spread_s)
        report.lag_s = await self._lag(self.clock())
        report.elapsed_s = time.perf_counter() - started
        self.last_cycle_lag_s = report.lag_s
        if self.lag_gauge is not None:
            self.lag_gauge.set(report.lag_s)
        self.last_report = report
        self.cycles += 1
        log.info(
            "refresher_cycle_completed",
            refreshed=len(report.refreshed),
            retired=len(report.retired),
            skipped_claimed=report.skipped_claimed,
            failed=len(report.failed),
            granted=report.granted,
            given_back=report.given_back,
            deferred=report.deferred,
            lag_s=round(report.lag_s, 1),
            elapsed_ms=round(report.elapsed_s * 1000, 1),
        )
        for hook in self.after_cycle:
            try:
                await hook()
            except Exception:  # a hook's failure must not stop the refresher
                log.exception("refresher_hook_failed")
        return report

    async def refresh_now(self, shipment_ids: Sequence[str]) -> CycleReport:
        """
        Ask the carriers about these shipments now, whatever their schedule and pace
        (``tracksvc demo`` checks its seeded labels before it says it is ready); they are
        scheduled as in a cycle.

        Raises:
            RegistryUnavailable: Redis could not be reached to read the shipments.
        """
        started = time.perf_counter()
        now = self.clock()
        report = CycleReport(started_at=now.timestamp())
        ids = list(dict.fromkeys(shipment_ids))
        records = await self.registry.get_shipments(ids)
        picks = [Pick(sid, record, False) for sid, record in zip(ids, records, strict=True)]
        await self._refresh_units(self._units(picks), now, report, 0.0)
        report.elapsed_s = time.perf_counter() - started
        return report

    def _units(self, picks: list[Pick]) -> list[list[Pick]]:
        """
        The picks as units of work, in priority order: one shipment each, or for a carrier
        that takes several numbers per call, up to that many together (one batched call).
        """
        units: list[list[Pick]] = []
        open_unit: dict[Carrier, list[Pick]] = {}
        for pick in picks:
            carrier = pick.asks_carrier(self.clock())
            per_call = self.pace.carriers[carrier].per_call if carrier is not None else 1
            if per_call <= 1 or carrier is None:
                units.append([pick])
                continue
            unit = open_unit.get(carrier)
            if unit is None or len(unit) >= per_call:
                unit = open_unit[carrier] = []
                units.append(unit)
            unit.append(pick)
        return units

    async def _refresh_units(
        self, units: list[list[Pick]], now: datetime, report: CycleReport, spread_s: float
    ) -> None:
        """
        Refresh the units, ``refresher_concurrency`` at a time, started evenly over
        ``spread_s``; each unit's shipments are scheduled (one round trip) once refreshed.
        """
        semaphore = asyncio.Semaphore(self.concurrency)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        step = spread_s / len(units) if units else 0.0

        async def refresh(position: int, unit: list[Pick]) -> None:
            if step > 0:
                await asyncio.sleep(max(0.0, begin + position * step - loop.time()))
            carrier = unit[0].asks_carrier(now) if len(unit) > 1 else None
            async with semaphore:
                if carrier is None:
                    dues = [await self._refresh(unit[0].sid, unit[0].record, now, report)]
                else:  # one batched call: the batcher waits for the whole unit
                    with self.tracker.calls.asking_together(carrier, len(unit)):
                        dues = await asyncio.gather(
                            *(self._refresh(p.sid, p.record, now, report) for p in unit)
                        )
                # At once, not at the end of the cycle: a cycle longer than its period
                # must not leave a refreshed shipment looking due once its claim expires.
                try:
                    await self.registry.schedule_refresh(
                        {p.sid: due for p, due in zip(unit, dues, strict=True)}
                    )
                except RegistryUnavailable as exc:  # they stay due; the next cycle retries
                    log.warning("refresher_schedule_failed", shipments=len(unit), error=str(exc))

        await asyncio.gather(*(refresh(i, unit) for i, unit in enumerate(units)))

    async def run(self) -> None:
        """
        Start a cycle every ``period / CYCLES_PER_PERIOD`` seconds, forever (cancel the task to
        stop). A cycle still waiting on a slow carrier does not hold the next one back (its
        shipments stay claimed), up to :data:`CYCLES_IN_FLIGHT` at once.
        """
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                started = time.monotonic()
                if len(running) < CYCLES_IN_FLIGHT:
                    task = asyncio.create_task(self._guarded_cycle())
                    running.add(task)
                    task.add_done_callback(running.discard)
                await asyncio.sleep(max(0.0, self.cycle_s - (time.monotonic() - started)))
        finally:
            for task in list(running):
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _guarded_cycle(self) -> None:
        try:
            await self.run_cycle(spread_s=self.cycle_s * SPREAD_SHARE)
        except RegistryUnavailable as exc:
            log.warning("refresher_cycle_failed", error=str(exc))
        except Exception:  # keep refreshing whatever one cycle met
            log.exception("refresher_cycle_failed")

    async def _candidates(self, now: datetime) -> list[tuple[str, bool]]:
        """Due shipments in priority order, each with whether it is a label-only label."""
        now_ts = now.timestamp()
        scan = self.pace.most_per_cycle(self.batch_size) * SCAN_FACTOR
        boundary = now_ts - self.grace_s
        # 1. On the warehouse's stalled list on nobody's word: newest registrations first.
        unchecked_past = await self.registry.unchecked_ids(float("-inf"), boundary, scan, newest_first=True)
        # 2. About to enter, or just entered, the stalled list.
        near = await self.registry.unscanned_ids(
            boundary - self.near_grace_s, min(now_ts, boundary + self.near_grace_s), scan
        )
        # 3. Every other label never checked, newest registrations first.
        unchecked = await self.registry.unchecked_ids(boundary, now_ts, scan, newest_first=True)
        # 4. The other labels, oldest first.
        oldest = await self.registry.unscanned_ids(float("-inf"), now_ts, scan)
        labels = list(dict.fromkeys([*unchecked_past, *near, *unchecked, *oldest]))
        due_times = await self.registry.refresh_due_times(labels)
        # An unscheduled label is not polled: voided, finished or past retention.
        picked = [
            (sid, True)
            for sid, at in zip(labels, due_times, strict=True)
            if at is not None and at <= now_ts
        ]
        seen = {sid for sid, _ in picked}
        # 5. Every other shipment due, most overdue first.
        for sid, _ in await self.registry.due_for_refresh(now_ts, scan):
            if sid not in seen:
                picked.append((sid, False))
                seen.add(sid)
        return picked[:scan]

    async def _pick(self, now: datetime, report: CycleReport) -> list[Pick]:
        """
        This cycle's shipments: the due candidates, as many of each carrier as its pace
        grants now, claimed; the calls taken and not used go back to the pace.
        """
        candidates = await self._candidates(now)
        records = await self.registry.get_shipments([sid for sid, _ in candidates])
        picks = [
            Pick(sid, record, is_label)
            for (sid, is_label), record in zip(candidates, records, strict=True)
        ]
        wanted: Counter[Carrier] = Counter()
        for pick in picks:
            carrier = pick.asks_carrier(now)
            if carrier is not None:
                wanted[carrier] += 1
        granted: dict[Carrier, int | None] = {}
        short: set[Carrier] = set()  # carriers whose pace gave fewer calls than their due shipments need
        for carrier, count in wanted.items():
            pace = self.pace.carriers[carrier]
            asked = pace.calls_for(min(count, self.batch_size))
            granted[carrier] = await self.pace.take(carrier, asked)
            if granted[carrier] is not None and (granted[carrier] or 0) < asked:
                short.add(carrier)
            if granted[carrier] is not None:
                report.granted[carrier.value] = granted[carrier] or 0
        room = {
            carrier: self.batch_size if calls is None else calls * self.pace.carriers[carrier].per_call
            for carrier, calls in granted.items()
        }
        claimed: list[Pick] = []
        used: Counter[Carrier] = Counter()
        left = list(picks)
        for _ in range(CLAIM_ROUNDS):
            chosen = self._select(left, {c: n - used[c] for c, n in room.items()}, now,
                                  self.batch_size - len(claimed))
            if not chosen:
                break
            won = await self._claim(chosen, report)
            claimed += won
            for pick in won:
                carrier = pick.asks_carrier(now)
                if carrier is not None:
                    used[carrier] += 1
            if len(won) == len(chosen):
                break
            tried = {pick.sid for pick in chosen}
            left = [pick for pick in left if pick.sid not in tried]
        for carrier, calls in granted.items():
            unused = (calls or 0) - self.pace.carriers[carrier].calls_for(used[carrier])
            if unused > 0:
                report.given_back[carrier.value] = unused
                await self.pace.give_back(carrier, unused)
        await self._defer(picks, claimed, short, now, report)
        return claimed

    async def _defer(
        self, picks: list[Pick], claimed: list[Pick], full: set[Carrier], now: datetime, report: CycleReport
    ) -> None:
        """
        Move the due shipments of carriers whose pace ran out this cycle to when their turn
        comes at that pace, in priority order: a backlog of one slow carrier (USPS's small
        quota) then stays out of the due window, and never crowds out the other carriers'.
        """
        if not full:
            return
        taken = {pick.sid for pick in claimed}
        now_ts = now.timestamp()
        later: dict[str, float | None] = {}
        for pick in picks:
            carrier = pick.asks_carrier(now)
            if carrier is None or carrier not in full or pick.sid in taken:
                continue
            pace = self.pace.carriers[carrier]
            if pace.rate is None:
                continue
            at = max(now_ts, self._horizon.get(carrier, 0.0)) + 1.0 / (pace.rate * pace.per_call)
            self._horizon[carrier] = at
            later[pick.sid] = at
        if later:
            report.deferred = len(later)
            await self.registry.schedule_refresh(later)

    def _select(
        self, picks: list[Pick], room: Mapping[Carrier, int], now: datetime, batch: int
    ) -> list[Pick]:
        """
        The picks that fit: at most a batch, each carrier within its room; labels take at
        most :data:`LABEL_SHARE` of the batch and of each carrier's room while parcels in
        transit wait, and the room left over once none do.
        """
        left = dict(room)
        label_room = {carrier: max(1, int(n * LABEL_SHARE)) for carrier, n in room.items()}
        labels_left = max(1, int(batch * LABEL_SHARE))
        chosen: set[int] = set()
        deferred: list[int] = []
        for position, pick in enumerate(picks):
            if len(chosen) >= batch:
                break
            carrier = pick.asks_carrier(now)
            if carrier is not None and left[carrier] <= 0:
                continue
            if pick.is_label and (labels_left <= 0 or (carrier is not None and label_room[carrier] <= 0)):
                deferred.append(position)
                continue
            chosen.add(position)
            if carrier is not None:
                left[carrier] -= 1
            if pick.is_label:
                labels_left -= 1
                if carrier is not None:
                    label_room[carrier] -= 1
        for position in deferred:  # nothing else wanted the room: labels beyond their share
            if len(chosen) >= batch:
                break
            carrier = picks[position].asks_carrier(now)
            if carrier is not None and left[carrier] <= 0:
                continue
            chosen.add(position)
            if carrier is not None:
                left[carrier] -= 1
        return [picks[position] for position in sorted(chosen)]

    async def _claim(self, picks: list[Pick], report: CycleReport) -> list[Pick]:
        """Claim the picks for one period (one round trip); those another replica holds are skipped."""
        if not picks:
            return []
        ttl_ms = max(1, int(self.schedule.period_s * 1000))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for pick in picks:
                    pipe.set(claim_key(pick.sid), self.owner, nx=True, px=ttl_ms)
                won = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
        claimed = [pick for pick, ok in zip(picks, won, strict=True) if ok]
        report.skipped_claimed += len(picks) - len(claimed)
        if claimed:  # out of the due window while in hand: other replicas look further down
            hold_until = time.time() + self.schedule.period_s
            await self.registry.schedule_refresh(dict.fromkeys((p.sid for p in claimed), hold_until))
        return claimed

    async def _refresh(
        self, sid: str, record: ShipmentRecord | None, now: datetime, report: CycleReport
    ) -> float | None:
        """Refresh one claimed shipment; returns when it is due next (None: stop polling)."""
        retired = retire_before_asking(record, now)
        if retired is not None or record is None:
            report.retired[sid] = (retired or Retired.missing).value
            log.info("refresher_retired", shipment_id=sid, reason=report.retired[sid])
            return None
        try:
            lookup = await self.tracker.refresh(record.carrier, record.tracking_number)
            await self.service.learn(record, lookup)
        except Exception:  # one shipment's failure must not end the cycle
            log.exception("refresher_refresh_failed", shipment_id=sid)
            report.failed.append(sid)
            return now.timestamp() + RETRY_PERIODS * self.schedule.period_s
        report.refreshed.append(sid)
        due = next_due(record, lookup, now, self.schedule)
        if due is None:
            report.retired[sid] = Retired.finished.value
            log.info("refresher_retired", shipment_id=sid, reason=Retired.finished.value)
        return due

    async def _lag(self, now: datetime) -> float:
        """
        How far behind: how overdue the most overdue shipment is, or if longer, how far ahead
        the last deferred shipment's turn lies (a slow carrier's backlog, at its pace).
        """
        oldest = await self.registry.due_for_refresh(now.timestamp(), 1)
        overdue = max(0.0, now.timestamp() - oldest[0][1]) if oldest else 0.0
        ahead = max(self._horizon.values(), default=0.0) - now.timestamp()
        return max(overdue, ahead)
