"""
The lookup flow of design.md section 1: normalize, resolve through the
registry, else detect carriers; ask the carriers (through
:class:`~tracksvc.tracker.Tracker`), classify with the clock and the
registry's facts, aggregate, and build the agent view. No aiohttp.web here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo

import structlog
from redis.exceptions import RedisError

from tracksvc.core.errors import ReferenceNotFound, RegistryUnavailable
from tracksvc.core.models import Carrier, TrackingEvent, TrackingStatus
from tracksvc.core.redis_budget import RedisLatch, current_budget, redis_step, request_budget
from tracksvc.core.settings import Settings, zone_named
from tracksvc.domain import changes, failures, references, typos
from tracksvc.domain.advice import CARRIER_NAMES, advice_for, humanize_age
from tracksvc.domain.flags import CLAIMS as CLAIMS  # re-exported: the track route checks ?claim=
from tracksvc.domain.flags import (
    PROMISE_KEPT_OR_MOOT,
    Flag,
    OrderFacts,
    ShipmentFacts,
    order_flags,
    shipment_flags,
)
from tracksvc.domain.records import OrderRecord, ShipmentRecord, end_of_day
from tracksvc.domain.status import (
    Classified,
    Clocks,
    Limits,
    aggregate,
    apply_age_rule,
    classify,
    next_age_change,
)
from tracksvc.domain.summary import summarize
from tracksvc.domain.views import CarrierProblem, EventView, ShipmentView, TrackView, location_text
from tracksvc.economy.cache import CachedAnswer
from tracksvc.economy.callers import REGISTERED, acting_as
from tracksvc.economy.tracker import Freshness, Lookup, Tracker
from tracksvc.registry.store import Registry, Resolution
from tracksvc.service.answers import AnswerCache

log = structlog.get_logger("service")

#: Freshness of shipments a view may be kept with (the carrier answered; nothing stale).
KEEPABLE = frozenset({Freshness.live.value, Freshness.cached.value})


def event_view(event: TrackingEvent) -> EventView:
    """A carrier event as shown to people."""
    return EventView(
        occurred_at=event.occurred_at,
        status=event.status,
        code=event.code,
        description=event.description,
        location=location_text(event.location),
    )


def _reason(lookup: Lookup, problem: CarrierProblem | None) -> str | None:
    """Why the carrier gave no fresh answer, in words: the failure, and the older answer shown."""
    if problem is None:
        return None
    if lookup.freshness is Freshness.stale and lookup.as_of is not None:
        return failures.stale_reason(problem, lookup.as_of)
    return failures.sentence(problem)


def _registered_but_unknown(record: ShipmentRecord, now: datetime, limits: Limits) -> Classified:
    # A registered label the carrier does not know yet (USPS 150001 "not yet
    # available", UPS TW0001, FedEx NOTFOUND): the label exists, so it is a
    # label within the grace period and never tendered after it.
    clocks = Clocks(now=now, label_created_at=record.label_created_at, last_scan_at=None)
    return apply_age_rule(TrackingStatus.label_created, clocks, limits)


def shipment_view(
    lookup: Lookup,
    *,
    now: datetime,
    limits: Limits,
    record: ShipmentRecord | None = None,
    promised: datetime | None = None,
) -> ShipmentView:
    """
    One shipment as the agent sees it, classified with the clock.

    Args:
        lookup: what the carrier (or cache) said.
        now: the current time.
        limits: grace and stall limits.
        record: the registry's record, when the shipment is registered.
        promised: end of the promised delivery day, when one was promised.
    """
    registry_facts: dict[str, object] = {}
    if record is not None:
        registry_facts = dict(
            shipment_id=record.shipment_id,
            direction=record.direction.value,
            order_number=record.order_number,
            origin=record.origin,
            internal_status=record.internal_status,
            internal_note=record.internal_note,
            internal_shipping_number=record.internal_shipping_number,
            aliases=list(record.aliases),
            promised_delivery_date=record.promised_delivery_date,
        )
    label_created_at = record.label_created_at if record is not None else None
    problem = failures.carrier_problem(lookup.message, now)
    common = dict(
        carrier=lookup.carrier,
        tracking_number=lookup.number,
        tracking_url=references.tracking_url(lookup.carrier, lookup.number),
        as_of=lookup.as_of,
        freshness=lookup.freshness.value,
        reason=_reason(lookup, problem),
        carrier_problem=problem,
        **registry_facts,
    )
    result = lookup.result
    if result is None:
        message = lookup.message
        if lookup.carrier_denies_it and record is not None:
            classified = _registered_but_unknown(record, now, limits)
        elif lookup.carrier_denies_it:
            classified = Classified(TrackingStatus.not_found, None)
        else:
            classified = Classified(TrackingStatus.unknown, None)
        # The carrier's own words (USPS "not yet available") when it answered; a failure's
        # raw text stays in carrier_problem.detail, never in status_detail.
        said = message if message is not None and problem is None else None
        view = ShipmentView(
            **common,
            status=classified.status,
            status_since=classified.since,
            status_detail=said.message or None if said else None,
            carrier_status_code=said.code or None if said else None,
            label_created_at=label_created_at,
        )
    else:
        classified = classify(result, now=now, limits=limits, label_created_at=label_created_at)
        events = [event_view(e) for e in result.events]
        view = ShipmentView(
            **common,
            status=classified.status,
            status_detail=result.status_detail,
            carrier_status_code=result.carrier_status_code,
            label_created_at=label_created_at or result.label_created_at,
            status_since=classified.since,
            last_event=events[0] if events else None,
            events=events,
            estimated_delivery=result.estimated_delivery,
            delivered_at=result.delivered_at,
        )
    if record is not None and record.voided:
        view = view.model_copy(update=voided_facts(record))
    view.flags.extend(shipment_flags(ShipmentFacts(
        status=view.status,
        now=now,
        stale=lookup.freshness is Freshness.stale,
        claims_shipped=record is not None and record.claims_shipped,
        promised=promised,
    )))
    return view


def voided_facts(record: ShipmentRecord) -> dict[str, object]:
    """
    A label voided in our system is ``cancelled``; voided by the warehouse (``POST .../void``),
    it says so and since when, never the carrier's "label created" words beside it.
    """
    if record.voided_at is None:
        return {"status": TrackingStatus.cancelled}
    when = record.voided_at.astimezone(UTC)
    return {
        "status": TrackingStatus.cancelled,
        "status_detail": f"Label voided by the warehouse on {when:%Y-%m-%d %H:%M} UTC",
        "status_since": when,
    }


def promise_deadline(value: date | None, zone: tzinfo) -> datetime | None:
    """The end of a promised day in the business time zone (None when nothing was promised)."""
    return None if value is None else end_of_day(value, zone)


def matched_field(reference: str, resolution: Resolution) -> str:
    """Which registry field the reference matched (tells the agent what the customer holds)."""
    if resolution.replaced_from is not None:
        return "replaced_order"
    keys = {reference, references.compact(reference)}

    def hit(value: str | None) -> bool:
        return value is not None and bool({value.upper(), references.compact(value.upper())} & keys)

    if hit(resolution.order_number):
        return "order_number"
    table: Mapping[str, Callable[[ShipmentRecord], list[str | None]]] = {
        "shipment_id": lambda r: [r.shipment_id],
        "tracking_number": lambda r: [r.tracking_number],
        "internal_shipping_number": lambda r: [r.internal_shipping_number],
        "alias": lambda r: list(r.aliases),
    }
    for name, values in table.items():
        if any(hit(v) for r in resolution.shipments for v in values(r)):
            return name
    return "alias"


class TrackService:
    """
    Answers ``GET /v1/track/{reference}`` and the order views built on it.

    Each lookup (:meth:`track`, or :meth:`resolved_view` called on its own)
    gets one Redis budget, ``TRACKSVC_REDIS_REQUEST_BUDGET_S`` in all
    (:mod:`tracksvc.core.redis_budget`), and the service keeps the process's
    "Redis is down" latch: with Redis down or hung, a lookup spends at most its
    budget on Redis and goes on with the carriers. Registered shipments are
    looked up as :data:`~tracksvc.callers.REGISTERED`, so they may use the
    share of the carrier budgets kept for them.
    """

    def __init__(
        self,
        tracker: Tracker,
        settings: Settings,
        registry: Registry | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        answers: AnswerCache | None = None,
    ) -> None:
        self.tracker = tracker
        self.answers = answers
        if answers is not None:
            tracker.add_listener(self._carrier_answer_changed)
        self.settings = settings
        self.registry = registry
        self.limits = Limits(
            tender_grace_hours=settings.tender_grace_hours,
            stalled_after_hours=settings.stalled_after_hours,
        )
        self.clock = clock
        self.zone = zone_named(settings.business_timezone)
        self.redis_latch = RedisLatch(settings.redis_down_latch_s)
        self.order_formats = [typos.order_format(t) for t in settings.order_number_formats]

    @contextlib.contextmanager
    def redis_budget(self) -> Iterator[None]:
        """One Redis budget for the lookup inside, unless it already runs under one."""
        if current_budget() is not None:
            yield
            return
        with request_budget(self.settings.redis_request_budget_s, self.redis_latch):
            yield

    def retry_after_s(self) -> int:
        """When to try again after the registry could not be read (whole seconds, at least 1)."""
        return max(1, math.ceil(max(self.redis_latch.held_for_s(), self.settings.redis_down_latch_s)))

    async def answer(self, raw_reference: str, *, claims: frozenset[str] = frozenset()) -> bytes:
        """
        The agent view of any reference as JSON bytes: the kept answer when there is
        one (:mod:`tracksvc.service.answers`), else :meth:`track`'s, kept if it may be.

        Raises:
            the errors of :meth:`track`.
        """
        reference = references.normalize(raw_reference)
        key = (reference, claims)
        if self.answers is not None:
            kept = self.answers.get(key)
            if kept is not None:
                return kept
        view = await self.track(raw_reference, claims=claims)
        body = view.model_dump_json().encode()
        if self.answers is not None:
            self._keep(key, view)
        return body

    def _keep(self, key: tuple[str, frozenset[str]], view: TrackView) -> None:
        """Keep ``view`` while it stays true (see :mod:`tracksvc.service.answers`)."""
        assert self.answers is not None
        if not view.shipments or Flag.registry_unavailable in view.flags:
            return  # nothing asked of a carrier, or built without the registry: cheap or doubtful
        if any(s.freshness not in KEEPABLE or s.status is TrackingStatus.unknown for s in view.shipments):
            return
        now = self.clock()
        until = [self._valid_until(s, now) for s in view.shipments]
        valid_s = (min(until) - now).total_seconds()
        tags = changes.reference_tags(key[0], view.order_number, view.replaced_from)
        for s in view.shipments:
            tags |= changes.reference_tags(s.shipment_id, s.tracking_number, s.order_number)
            tags.add(changes.carrier_tag(s.carrier, s.tracking_number))
        kept = view.model_copy(update={"shipments": [
            s.model_copy(update={"freshness": Freshness.cached.value}) if s.freshness == Freshness.live.value
            else s
            for s in view.shipments
        ]})
        self.answers.put(key, kept.model_dump_json().encode(), valid_s=valid_s, tags=tags)

    def _valid_until(self, shipment: ShipmentView, now: datetime) -> datetime:
        """Until when a shipment's part of a view stays true: its carrier answer's freshness, its clocks."""
        # A final answer pushed by the carrier is fresh for the active TTL only (the carrier's next
        # answer must replace it), and the view cannot tell it from a fetched one: the shorter wins.
        ttl = self.tracker.cache.ttl  # the carrier cache's own policy, not a copy of its numbers
        not_found = shipment.status is TrackingStatus.not_found
        ttl_s = ttl.not_found_s if not_found else min(ttl.active_s, ttl.final_s)
        candidates = [(shipment.as_of or now) + timedelta(seconds=ttl_s)]
        turns = next_age_change(shipment.status, shipment.status_since, self.limits)
        if turns is not None:
            candidates.append(turns)
        if shipment.promised_delivery_date is not None and shipment.status not in PROMISE_KEPT_OR_MOOT:
            promised = promise_deadline(shipment.promised_delivery_date, self.zone)
            if promised is not None and promised > now:
                candidates.append(promised)
        return min(candidates)

    def heard(self, tags: set[str]) -> None:
        """Another replica changed what ``tags`` name: forget this replica's copies of those answers."""
        if changes.EVERYTHING in tags:
            self.tracker.cache.local.clear()
            return
        for carrier, number in changes.carriers_named(tags):
            self.tracker.cache.local.discard(carrier, number)

    async def _carrier_answer_changed(
        self, carrier: Carrier, number: str, previous: CachedAnswer | None, current: CachedAnswer
    ) -> None:
        # A first answer changes no kept view (none was built without it); a newer one may.
        if previous is not None and self.answers is not None:
            await self.answers.changed({changes.carrier_tag(carrier, number)})

    async def track(self, raw_reference: str, *, claims: frozenset[str] = frozenset()) -> TrackView:
        """
        The agent view of any reference: registered first, then carrier numbers.

        When the registry cannot be read, a carrier number is still answered
        by its carrier, flagged ``registry_unavailable``; any other reference
        may be registered, so it is never answered "not found".

        Raises:
            InvalidReference: the input cannot be a reference.
            ReferenceNotFound: not registered and no carrier's format.
            RegistryUnavailable: the registry could not be read and the reference is
                no carrier's number (it may be a registered order or shipment).
        """
        reference = references.normalize(raw_reference)
        with self.redis_budget():
            return await self._track(reference, claims, typed=raw_reference.strip())

    async def did_you_mean(self, raw_reference: str) -> list[str] | None:
        """
        Registered references one typo away from one that was not found, best first (at most 5).

        One round trip to Redis, of as many single-key commands as the reference has variants
        (:func:`tracksvc.domain.typos.variants`, at most ``typos.MAX_VARIANTS``): the cost of a
        404 does not grow with the registry. Never for the portal (enumeration).

        Returns:
            The suggestions (maybe none), or None when the registry could not be asked: a 404
            says so rather than "no near match".

        Raises:
            InvalidReference: the input cannot be a reference.
        """
        reference = references.normalize(raw_reference)
        if self.registry is None:
            return None
        keys = typos.variants(reference)
        with self.redis_budget():
            try:
                owners = await self.registry.owners(keys)
            except RegistryUnavailable as exc:
                log.warning("near_matches_unavailable", error=str(exc))
                return None
        return typos.suggestions(reference, keys, owners)

    async def _track(self, reference: str, claims: frozenset[str], *, typed: str) -> TrackView:
        registry_note: str | None = None
        resolution: Resolution | None = None
        if self.registry is not None:
            try:
                resolution = await self.registry.resolve(reference)
            except RegistryUnavailable as exc:
                log.warning("registry_unavailable", error=str(exc))
                registry_note = "registry unavailable: order numbers cannot be resolved right now"
        if resolution is not None:
            return await self.resolved_view(reference, resolution, claims=claims)
        candidates = references.candidates(reference)
        if not candidates and registry_note:
            raise RegistryUnavailable(
                f"\u201c{typed}\u201d may be a registered order or shipment, but the registry (Redis) "
                "cannot be read right now; try again shortly"
            )
        if not candidates:
            raise ReferenceNotFound(typos.not_found_message(typed, reference, self.order_formats))
        lookup = await self.tracker.lookup_candidates(candidates)
        now = self.clock()
        shipments = [shipment_view(lookup, now=now, limits=self.limits)]
        return self.order_view(
            reference, "carrier_number", None, shipments, now,
            registry_unavailable=registry_note is not None, claims=claims,
        )

    async def resolved_view(
        self, reference: str, resolution: Resolution, *, claims: frozenset[str] = frozenset()
    ) -> TrackView:
        """The view of a registered order (or a lone registered shipment)."""
        with self.redis_budget():
            return await self._resolved_view(reference, resolution, claims)

    async def _resolved_view(
        self, reference: str, resolution: Resolution, claims: frozenset[str]
    ) -> TrackView:
        records = resolution.shipments
        with acting_as(REGISTERED):  # registered shipments may use the budget's reserved share
            lookups = await asyncio.gather(
                *(self.tracker.lookup(r.carrier, r.tracking_number) for r in records)
            )
        now = self.clock()
        order = resolution.order
        shipments = []
        for record, lookup in zip(records, lookups, strict=True):
            promised = promise_deadline(
                record.promised_delivery_date or (order.promised_delivery_date if order else None),
                self.zone,
            )
            view = shipment_view(lookup, now=now, limits=self.limits, record=record, promised=promised)
            shipments.append(view)
            await self.learn(record, lookup)
        return self.order_view(
            reference,
            resolution.matched or matched_field(reference, resolution),
            resolution.order_number,
            shipments,
            now,
            order=order,
            replaced_from=resolution.replaced_from,
            claims=claims,
        )

    async def learn(self, record: ShipmentRecord, lookup: Lookup) -> None:
        """
        A carrier scan or a carrier void takes the label off the unscanned list (lookup, refresh, push);
        any other carrier answer (``as_of``) about a listed label is when it was last checked.
        """
        if self.registry is None or record.first_scan_at is not None:
            return
        scanned = lookup.result.last_physical_scan_at if lookup.result is not None else None
        void = lookup.result is not None and lookup.result.status is TrackingStatus.cancelled
        if scanned is None and not void and lookup.as_of is None:
            return  # nobody has answered: nothing learned
        try:
            async with redis_step("mark scanned"):
                if scanned is not None or void:
                    await self.registry.mark_scanned(record, (scanned or self.clock()).timestamp())
                elif lookup.as_of is not None:  # written once per carrier answer, not per lookup
                    await self.registry.note_checked(record, lookup.as_of)
        except (RegistryUnavailable, RedisError, OSError) as exc:  # the next lookup learns it
            log.warning("registry_unavailable", error=str(exc))

    def order_view(
        self,
        reference: str,
        matched: str,
        order_number: str | None,
        shipments: list[ShipmentView],
        now: datetime,
        *,
        registry_unavailable: bool = False,
        order: OrderRecord | None = None,
        replaced_from: str | None = None,
        claims: frozenset[str] = frozenset(),
    ) -> TrackView:
        """
        Aggregate shipments into the order's status, summary and advice.

        ``claims`` are what the customer tells the agent (``not_received``);
        a delivered order the customer says never arrived gets its own advice.
        The flags are the shipments' and the order's own (:mod:`tracksvc.domain.flags`).
        """
        status = aggregate([s.status for s in shipments])
        flags = order_flags((s.flags for s in shipments), OrderFacts(
            status=status,
            now=now,
            has_shipments=bool(shipments),
            promised=promise_deadline(order.promised_delivery_date if order else None, self.zone),
            ship_by=order.promised_ship_by if order else None,
            replaced=replaced_from is not None,
            registry_unavailable=registry_unavailable,
            claims=claims,
        ))
        facts = self._advice_facts(shipments, status, now)
        facts.update(
            order_number=order_number or "unknown",
            replaced_from=replaced_from or "unknown",
            ship_by=f"{order.promised_ship_by:%Y-%m-%d}" if order and order.promised_ship_by else "unknown",
        )
        advice = advice_for(status, flags, facts)
        summary = summarize(shipments, now)
        if replaced_from is not None:
            summary = f"Order {replaced_from} was re-placed as {order_number}. {summary}"
        return TrackView(
            reference=reference,
            matched=matched,
            order_number=order_number,
            replaced_from=replaced_from,
            status=status,
            summary=summary,
            flags=flags,
            agent_advice=advice.agent,
            customer_message=advice.customer,
            shipments=shipments,
        )

    def _advice_facts(
        self, shipments: list[ShipmentView], status: TrackingStatus, now: datetime
    ) -> dict[str, object]:
        """The facts the advice templates are filled with, from the shipment that decided."""
        decisive = next((s for s in shipments if s.status is status), shipments[0] if shipments else None)
        facts: dict[str, object] = {"grace_hours": self.settings.tender_grace_hours}
        if decisive is None:
            return facts
        last = decisive.last_event
        promised = decisive.promised_delivery_date
        facts.update(
            carrier=CARRIER_NAMES[decisive.carrier],
            tracking_number=decisive.tracking_number,
            age=humanize_age(decisive.label_created_at, now),
            label_age_hours=(
                (now - decisive.label_created_at).total_seconds() / 3600
                if decisive.label_created_at else None
            ),
            last_scan=humanize_age(decisive.status_since or (last.occurred_at if last else None), now),
            when=humanize_age(decisive.delivered_at, now),
            detail=decisive.status_detail or (last.description if last else "no details"),
            problem=(
                failures.sentence(decisive.carrier_problem)
                if decisive.carrier_problem is not None
                else "No answer from the carrier."
            ),
            origin=decisive.origin or "(unknown warehouse)",
            promised=f"{promised:%Y-%m-%d}" if promised else "unknown",
        )
        return facts
