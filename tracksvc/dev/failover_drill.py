"""
The Redis Cluster failover drill: SIGKILL one master under lookups and writes.

Against a running service (``service_url``, ``TRACKSVC_REDIS_CLUSTER=true``
on ``cluster``, ideally ``TRACKSVC_REDIS_WRITE_REPLICAS=1``) it

1. registers ``orders`` orders of one shipment each;
2. starts the load: lookups of carrier numbers, lookups of registered order
   numbers, new shipments written one after the other, ``/readyz`` probes;
3. SIGKILLs one master and waits until registered lookups answer 200 again
   with no help (a replica is promoted; the client re-reads the slot map);
4. starts the killed node again (it rejoins as a replica), waits until every
   master has a replica in step, and keeps writing a little longer;
5. stops the load and reads back every shipment whose write was acknowledged.

:class:`DrillReport` holds every answer with its time, what the checks need,
and the figures: time to recovery (kill to the first 200 of a registered
lookup after the last failed one) and time to the replica's promotion.
Used by ``tests/tracksvc/test_failover.py`` and ``python -m bench.failover``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

from carriers.sandbox.scenarios import by_name, ups_number
from tracksvc.core.redis import RedisClient
from tracksvc.dev.redis_cluster import ClusterNode, RedisClusterProcesses
from tracksvc.registry.store import shipment_key

#: Carrier numbers the sandbox knows (lookups that need no registry).
CARRIER_SCENARIOS = ("ups-in-transit", "fedex-delivered", "usps-in-transit")
#: Serials of the registered shipments' UPS numbers (well away from the catalogue's).
SERIAL_BASE = 7_000_000
#: How long registered lookups must answer only 200 before the drill calls them recovered.
STEADY_S = 1.5


@dataclass
class Answer:
    """One answer of the load: when it came (monotonic s), what was asked, its status."""

    at: float
    kind: str  # carrier | registered | write | readyz
    status: int
    what: str = ""


@dataclass
class DrillReport:
    """Everything the drill saw, and its figures."""

    answers: list[Answer] = field(default_factory=list)
    killed_port: int = 0
    killed_at: float = 0.0
    promoted_at: float | None = None
    recovered_at: float | None = None
    restarted_at: float | None = None
    acknowledged: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)

    def of(self, kind: str, *, after: float | None = None, before: float | None = None) -> list[Answer]:
        """The answers of one kind, optionally within a time window."""
        return [
            a for a in self.answers
            if a.kind == kind and (after is None or a.at >= after) and (before is None or a.at < before)
        ]

    def statuses(self, kind: str) -> Counter[int]:
        """How many answers of each status one kind got."""
        return Counter(a.status for a in self.of(kind))

    @property
    def recovery_s(self) -> float | None:
        """Kill to the first 200 of a registered lookup after its last failure (None: not recovered)."""
        return None if self.recovered_at is None else self.recovered_at - self.killed_at

    @property
    def promotion_s(self) -> float | None:
        """Kill to the moment a replica answered as master of the killed one's slots."""
        return None if self.promoted_at is None else self.promoted_at - self.killed_at

    def summary(self) -> str:
        """The figures on one line."""
        parts = [
            f"recovery {self.recovery_s:.2f} s" if self.recovery_s is not None else "NOT RECOVERED",
            f"promotion {self.promotion_s:.2f} s" if self.promotion_s is not None else "no promotion seen",
            f"registered {dict(self.statuses('registered'))}",
            f"carrier {dict(self.statuses('carrier'))}",
            f"writes {dict(self.statuses('write'))}",
            f"readyz {dict(self.statuses('readyz'))}",
            f"acknowledged {len(self.acknowledged)}, lost {len(self.lost)}",
        ]
        return "; ".join(parts)


def _shipment(serial: int, shipment_id: str, order_number: str) -> dict[str, object]:
    return {
        "shipment_id": shipment_id,
        "carrier": "ups",
        "tracking_number": ups_number(SERIAL_BASE + serial),
        "label_created_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "order_number": order_number,
    }


class _Load:
    """The concurrent load; every answer goes into the report."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, report: DrillReport,
        agent: dict[str, str], ingest: dict[str, str], orders: list[str],
    ) -> None:
        self.session, self.url, self.report = session, url, report
        self.agent, self.ingest, self.orders = agent, ingest, orders
        self.stopping = False
        self.serials = itertools.count(100_000)
        catalogue = by_name()
        self.carrier_numbers = [catalogue[name].number for name in CARRIER_SCENARIOS]

    async def _record(self, kind: str, what: str, request: Callable[[], Awaitable[int]]) -> int:
        try:
            status = await request()
        except (aiohttp.ClientError, TimeoutError):
            status = 0  # no answer at all
        self.report.answers.append(Answer(time.monotonic(), kind, status, what))
        return status

    async def _get(self, path: str, headers: dict[str, str] | None = None) -> int:
        async with self.session.get(self.url + path, headers=headers) as response:
            await response.read()
            return response.status

    def _lookup(self, reference: str) -> Callable[[], Awaitable[int]]:
        return lambda: self._get(f"/v1/track/{reference}", self.agent)

    async def carrier(self) -> None:
        for number in itertools.cycle(self.carrier_numbers):
            if self.stopping:
                return
            await self._record("carrier", number, self._lookup(number))

    async def registered(self, offset: int) -> None:
        for i in itertools.count(offset):
            if self.stopping:
                return
            number = self.orders[i % len(self.orders)]
            await self._record("registered", number, self._lookup(number))

    async def writes(self) -> None:
        while not self.stopping:
            serial = next(self.serials)
            sid = f"drill-{serial}"
            body = _shipment(serial, sid, f"DRILL-W-{serial}")

            async def put(body: dict[str, object] = body, sid: str = sid) -> int:
                async with self.session.put(
                    f"{self.url}/v1/shipments/{sid}", json=body, headers=self.ingest
                ) as response:
                    await response.read()
                    return response.status

            status = await self._record("write", sid, put)
            if 200 <= status < 300:
                self.report.acknowledged.append(sid)
            await asyncio.sleep(0.02)

    async def readyz(self) -> None:
        while not self.stopping:
            await self._record("readyz", "", lambda: self._get("/readyz"))
            await asyncio.sleep(0.1)


async def _wait_promoted(
    cluster: RedisClusterProcesses, replicas: list[ClusterNode], report: DrillReport
) -> None:
    """Note when one of the killed master's replicas answers as master."""
    while report.promoted_at is None:
        for node in replicas:
            if await asyncio.to_thread(cluster.role, node) == "master":
                report.promoted_at = time.monotonic()
                return
        await asyncio.sleep(0.05)


async def _wait_recovered(report: DrillReport, timeout_s: float) -> None:
    """Wait until registered lookups failed after the kill and then answered only 200 for a while."""
    deadline = report.killed_at + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        after = report.of("registered", after=report.killed_at)
        failed = [a for a in after if a.status != 200]
        if not failed:
            continue
        last_failure = failed[-1].at
        good = [a for a in after if a.at > last_failure]
        if good and time.monotonic() - good[0].at >= STEADY_S and all(a.status == 200 for a in good):
            report.recovered_at = good[0].at
            return


async def run_drill(
    service_url: str,
    cluster: RedisClusterProcesses,
    redis: RedisClient,
    *,
    agent: dict[str, str],
    ingest: dict[str, str],
    orders: int = 30,
    warmup_s: float = 1.5,
    recovery_timeout_s: float = 30.0,
    tail_s: float = 1.5,
    on_registered: Callable[[], Awaitable[None]] | None = None,
) -> DrillReport:
    """
    Run the drill against the service at ``service_url`` on ``cluster``.

    Args:
        redis: a cluster client, to read back the acknowledged shipments.
        agent, ingest: header dicts with API keys of those roles.
        orders: registered orders the lookups go round.
        on_registered: awaited after the orders are registered (a test's own checks).

    Raises:
        AssertionError: an order could not be registered before the kill.
    """
    report = DrillReport()
    numbers = [f"DRILL-{i}" for i in range(orders)]
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for i, number in enumerate(numbers):
            body = _shipment(i, f"drill-seed-{i}", number)
            url = f"{service_url}/v1/shipments/drill-seed-{i}"
            async with session.put(url, json=body, headers=ingest) as r:
                assert r.status in (200, 201), f"registering {number}: {r.status} {await r.text()}"
        if on_registered is not None:
            await on_registered()
        load = _Load(session, service_url, report, agent, ingest, numbers)
        tasks = [
            asyncio.create_task(load.carrier()),
            asyncio.create_task(load.carrier()),
            *(asyncio.create_task(load.registered(k * 7)) for k in range(3)),
            asyncio.create_task(load.writes()),
            asyncio.create_task(load.readyz()),
        ]
        try:
            await asyncio.sleep(warmup_s)
            victim = cluster.masters()[0]
            replicas = cluster.replicas_of(victim)
            report.killed_port = victim.port
            report.killed_at = time.monotonic()
            cluster.kill(victim)
            promoted = asyncio.create_task(_wait_promoted(cluster, replicas, report))
            await _wait_recovered(report, recovery_timeout_s)
            promoted.cancel()
            await asyncio.gather(promoted, return_exceptions=True)
            report.restarted_at = time.monotonic()
            await asyncio.to_thread(cluster.restart_node, victim)
            await asyncio.to_thread(cluster.wait_replicated)
            await asyncio.sleep(tail_s)
        finally:
            load.stopping = True
            await asyncio.gather(*tasks, return_exceptions=True)
    for sid in report.acknowledged:
        if not await redis.exists(shipment_key(sid)):
            report.lost.append(sid)
    return report
