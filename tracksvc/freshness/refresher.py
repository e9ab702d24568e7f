"""
The background refresher: keeps registered, undelivered shipments fresh, so
the warehouse list and the order statuses are current without anyone
looking them up (design.md section 4).

One cycle picks at most ``refresher_batch_size`` shipments, in this order:

1. labels already past the tender grace period that no carrier has been
   asked about (the registry's unchecked index, oldest first): they are on
   the warehouse's stalled list on nobody's word, e.g. right after an import;
2. label-only labels near the tender grace limit (label age within
   ``refresher_near_grace_hours`` of ``tender_grace_hours``): the ones about
   to enter, or just entered, the warehouse's stalled list;
3. the other label-only labels, oldest first (2 and 3 from the registry's
   unscanned index, a range query by label time);
4. every other registered shipment that is due, most overdue first (the
   registry's ``tracksvc:refresh:due`` schedule).

Labels take at most three quarters of a batch, so parcels in transit never
starve behind a backlog of labels. Only shipments that are due are picked.
Each pick is claimed in Redis (``SET NX PX``, one period), so no two
replicas refresh the same shipment within one period.

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
a cycle: 0 when the refresher keeps up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
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

#: Candidates read per index and cycle, as a multiple of the batch size.
SCAN_FACTOR = 4

#: After a failed lookup, try again after this many periods (at most the revisit interval).
RETRY_PERIODS = 5


def claim_key(shipment_id: str) -> str:
    """The claim of one shipment (same hash tag as its record)."""
    return f"{claim_key_prefix}{{s:{shipment_id}}}"


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
        #: Lag measured at the end of the last cycle (None before the first).
        self.last_cycle_lag_s: float | None = None
        self.last_report: CycleReport | None = None
        self.cycles = 0

    async def run_cycle(self) -> CycleReport:
        """
        Refresh the shipments that are due, at most one batch; then run the hooks.

        Raises:
            RegistryUnavailable: Redis could not be reached to pick or claim.
        """
        started = time.perf_counter()
        now = self.clock()
        report = CycleReport(started_at=now.timestamp())
        claimed = await self._claim(await self._candidates(now), report)
        await self._refresh_all(claimed, now, report)
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
        Ask the carriers about these shipments now, whatever their schedule (``tracksvc demo``
        checks its seeded labels before it says it is ready); they are scheduled as in a cycle.

        Raises:
            RegistryUnavailable: Redis could not be reached to read the shipments.
        """
        started = time.perf_counter()
        now = self.clock()
        report = CycleReport(started_at=now.timestamp())
        await self._refresh_all(list(dict.fromkeys(shipment_ids)), now, report)
        report.elapsed_s = time.perf_counter() - started
        return report

    async def _refresh_all(self, shipment_ids: list[str], now: datetime, report: CycleReport) -> None:
        """Refresh shipments, ``refresher_concurrency`` at a time, each scheduled once refreshed."""
        records = await self.registry.get_shipments(shipment_ids)
        semaphore = asyncio.Semaphore(self.concurrency)

        async def refresh(sid: str, record: ShipmentRecord | None) -> None:
            async with semaphore:
                due = await self._refresh(sid, record, now, report)
                # At once, not at the end of the cycle: a cycle longer than its period
                # must not leave a refreshed shipment looking due once its claim expires.
                try:
                    await self.registry.schedule_refresh({sid: due})
                except RegistryUnavailable as exc:  # it stays due; the next cycle retries
                    log.warning("refresher_schedule_failed", shipment_id=sid, error=str(exc))

        await asyncio.gather(*(refresh(sid, rec) for sid, rec in zip(shipment_ids, records, strict=True)))

    async def run(self) -> None:
        """Run cycles forever, one per period (cancel the task to stop)."""
        while True:
            started = time.monotonic()
            try:
                await self.run_cycle()
            except RegistryUnavailable as exc:
                log.warning("refresher_cycle_failed", error=str(exc))
            except Exception:  # keep refreshing whatever one cycle met
                log.exception("refresher_cycle_failed")
            await asyncio.sleep(max(0.0, self.schedule.period_s - (time.monotonic() - started)))

    async def _candidates(self, now: datetime) -> list[tuple[str, bool]]:
        """Due shipments in priority order, each with whether it is a label-only label."""
        now_ts = now.timestamp()
        scan = self.batch_size * SCAN_FACTOR
        boundary = now_ts - self.grace_s
        unchecked = await self.registry.unchecked_ids(float("-inf"), boundary, scan)
        near = await self.registry.unscanned_ids(
            boundary - self.near_grace_s, min(now_ts, boundary + self.near_grace_s), scan
        )
        oldest = await self.registry.unscanned_ids(float("-inf"), now_ts, scan)
        labels = list(dict.fromkeys([*unchecked, *near, *oldest]))
        due_times = await self.registry.refresh_due_times(labels)
        # An unscheduled label is not polled: voided, finished or past retention.
        picked = [
            (sid, True)
            for sid, at in zip(labels, due_times, strict=True)
            if at is not None and at <= now_ts
        ]
        seen = {sid for sid, _ in picked}
        for sid, _ in await self.registry.due_for_refresh(now_ts, scan):
            if sid not in seen:
                picked.append((sid, False))
                seen.add(sid)
        return picked

    async def _claim(self, candidates: list[tuple[str, bool]], report: CycleReport) -> list[str]:
        """Claim candidates in order until a batch is claimed; labels up to their share."""
        label_cap = max(1, int(self.batch_size * LABEL_SHARE))
        ttl_ms = max(1, int(self.schedule.period_s * 1000))
        claimed: list[str] = []
        labels_claimed = 0
        queue = list(candidates)
        try:
            while queue and len(claimed) < self.batch_size:
                chunk: list[tuple[str, bool]] = []
                labels_in_chunk = 0
                while queue and len(chunk) < self.batch_size - len(claimed):
                    sid, is_label = queue.pop(0)
                    if is_label and labels_claimed + labels_in_chunk >= label_cap:
                        continue
                    chunk.append((sid, is_label))
                    labels_in_chunk += is_label
                if not chunk:
                    break
                async with self.redis.pipeline(transaction=False) as pipe:
                    for sid, _ in chunk:
                        pipe.set(claim_key(sid), self.owner, nx=True, px=ttl_ms)
                    won = await pipe.execute()
                for (sid, is_label), ok in zip(chunk, won, strict=True):
                    if ok:
                        claimed.append(sid)
                        labels_claimed += is_label
                    else:
                        report.skipped_claimed += 1
        except (RedisError, OSError) as exc:
            raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
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
        oldest = await self.registry.due_for_refresh(now.timestamp(), 1)
        return max(0.0, now.timestamp() - oldest[0][1]) if oldest else 0.0
