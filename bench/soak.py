"""
Soak benchmark: does the service stay healthy and flat under hours-like load?

Run from the repository root (it takes ``--seconds``, 10 minutes by default,
and is left out of ``python -m bench`` unless named)::

    python -m bench.soak                  # 600 s, 500 connections
    python -m bench.soak --seconds 90     # a short check

Everything runs on loopback and stops by itself: a private ``redis-server``
(tracksvc.dev.redis_server), the carrier sandbox (``python -m tracksvc sandbox``)
and the service (``python -m tracksvc serve``, configured through
``TRACKSVC_*`` like a deployment, refresher and webhook sender running) as
separate processes, so the service's resident memory is its own
(``VmRSS`` from ``/proc/<pid>/status``). This process registers the orders
and shipments through the import API, looks each carrier number and
registered reference up once (warm-up), then holds ``--connections``
keep-alive client connections (aiohttp, one each) sending, together,
``--rate`` lookups per second (0: each as soon as answered, i.e. at
saturation) of a fixed, seeded mix:

- 60 % cached carrier numbers (sandbox scenarios, asked once, then cached),
- 30 % registered order numbers and shipment ids (registry, then cache),
- 10 % unknown references, each one different, that answer 404.

Reported: requests, answers by status, client errors, RSS after the first
minute (``--baseline-at-s``) and at the end and their ratio, p50 and p99
latency, and requests per second. Goals: no 5xx and no client error, RSS at
the end at most 1.25x RSS after the first minute. Exit status: 0 when both
goals are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/soak.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.economy import _spawn  # noqa: E402
from carriers.sandbox.scenarios import fedex_number, ups_number  # noqa: E402
from tracksvc.dev.redis_server import RedisServer, free_port  # noqa: E402

AGENT_KEY = "soak-agent-key"
INGEST_KEY = "soak-ingest-key"
#: Goal: RSS at the end over RSS after the first minute.
RSS_RATIO_GOAL = 1.25
#: The mix of lookups: (kind, share).
MIX = (("cached", 0.6), ("registered", 0.3), ("unknown", 0.1))
#: The status each kind of lookup should answer.
EXPECTED = {"cached": 200, "registered": 200, "unknown": 404}


# -- the processes under test ---------------------------------------------------------


def service_env(port: int, redis_url: str, sandbox_url: str) -> dict[str, str]:
    """The service's settings, as a deployment sets them: environment variables."""
    env = {
        "TRACKSVC_HOST": "127.0.0.1",
        "TRACKSVC_PORT": str(port),
        "TRACKSVC_REDIS_URL": redis_url,
        "TRACKSVC_API_KEYS": f"agent:{AGENT_KEY},ingest:{INGEST_KEY}",
        "TRACKSVC_LOG_LEVEL": "warning",
        "TRACKSVC_LOG_JSON": "true",
    }
    for carrier in ("UPS", "FEDEX", "USPS"):
        env[f"TRACKSVC_{carrier}_BASE_URL"] = sandbox_url
        env[f"TRACKSVC_{carrier}_CLIENT_ID"] = f"soak-{carrier.lower()}-id"
        env[f"TRACKSVC_{carrier}_CLIENT_SECRET"] = f"soak-{carrier.lower()}-secret"
    return env


def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


# -- the data: sandbox scenarios, registered shipments ----------------------------------


@dataclass(frozen=True)
class Pools:
    """What the load asks for."""

    carrier_numbers: list[str]
    registered: list[str]


async def prepare(session: aiohttp.ClientSession, sandbox: str, service: str, numbers: int,
                  orders: int) -> Pools:
    """Sandbox scenarios for the carrier numbers; orders of two shipments each, imported."""
    steps = [["label", 48], ["pickup", 24], ["arrival", 6]]
    plain = [ups_number(500_000 + i) if i % 2 else fedex_number(500_000 + i) for i in range(numbers)]
    shipped = [ups_number(600_000 + i) if i % 2 else fedex_number(600_000 + i) for i in range(2 * orders)]
    for i, number in enumerate(plain + shipped):
        scenario = {"carrier": "ups" if number.startswith("1Z") else "fedex", "number": number,
                    "expect": "in_transit", "steps": steps, "name": f"soak-{i}"}
        async with session.post(f"{sandbox}/_sandbox/scenarios", json=scenario) as response:
            if response.status != 201:
                raise RuntimeError(f"sandbox refused a scenario: {await response.text()}")
    label_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 48 * 3600))
    rows = []
    for i, number in enumerate(shipped):
        rows.append(json.dumps({
            "shipment_id": f"SOAK-S{i:06d}", "order_number": f"SOAK-O{i // 2:06d}",
            "carrier": "ups" if number.startswith("1Z") else "fedex", "tracking_number": number,
            "label_created_at": label_at, "destination_postal_code": "75201",
        }))
    async with session.post(
        f"{service}/v1/shipments/import", data="\n".join(rows).encode(),
        headers={"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/x-ndjson"},
    ) as response:
        report = await response.json()
        if response.status != 200 or report.get("rejected"):
            raise RuntimeError(f"the import failed: HTTP {response.status} {report}")
    registered = [f"SOAK-O{i:06d}" for i in range(orders)] + [f"SOAK-S{i:06d}" for i in range(2 * orders)]
    return Pools(plain, registered)


async def warm(session: aiohttp.ClientSession, service: str, references: list[str],
               concurrency: int = 50) -> Counter[int]:
    """Look every reference up once (so the soak starts with a warm cache); answers by status."""
    statuses: Counter[int] = Counter()
    queue = list(reversed(references))
    headers = {"Authorization": f"Bearer {AGENT_KEY}"}

    async def one_by_one() -> None:
        while queue:
            reference = queue.pop()
            async with session.get(f"{service}/v1/track/{reference}", headers=headers) as response:
                await response.read()
                statuses[response.status] += 1

    await asyncio.gather(*(one_by_one() for _ in range(concurrency)))
    return statuses


# -- the load -----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the load saw."""

    measuring: bool = True
    statuses: Counter[int] = field(default_factory=Counter)
    by_kind: dict[str, Counter[int]] = field(default_factory=dict)
    client_errors: Counter[str] = field(default_factory=Counter)
    latencies_s: array[float] = field(default_factory=lambda: array("d"))
    kind_latencies_s: dict[str, array[float]] = field(default_factory=dict)
    #: (seconds into the run, latency) of answers slower than a second.
    slow: list[tuple[float, float]] = field(default_factory=list)
    #: The first answer of each unexpected (kind, status), to say why.
    samples: dict[tuple[str, int], str] = field(default_factory=dict)

    def record(self, kind: str, status: int, latency_s: float, at_s: float) -> None:
        if latency_s > 1.0:
            self.slow.append((at_s, latency_s))
        self.statuses[status] += 1
        self.by_kind.setdefault(kind, Counter())[status] += 1
        self.latencies_s.append(latency_s)
        self.kind_latencies_s.setdefault(kind, array("d")).append(latency_s)


@dataclass(frozen=True)
class Load:
    """How the connections send: each its own keep-alive connection, paced or closed loop."""

    service: str
    pools: Pools
    connections: int
    seconds: float
    #: Requests per second over all connections; 0: each sends again as soon as answered.
    rate: float
    timeout_s: float
    #: Set once every connection is open; the measured run starts then.
    go: asyncio.Event = field(default_factory=asyncio.Event)
    connected: list[int] = field(default_factory=lambda: [0])
    window: list[float] = field(default_factory=lambda: [0.0, 0.0])

    @property
    def stop_at(self) -> float:
        return self.window[1]

    @property
    def interval_s(self) -> float:
        return self.connections / self.rate if self.rate else 0.0


async def worker(load: Load, index: int, rng: random.Random, tally: Tally, unknown_ids: list[int]) -> None:
    """
    One client connection until ``load.stop_at``: a lookup of the mix, its answer read, the next.

    The connection is opened (``GET /healthz``) before the run starts, so the run holds them
    all. Paced: one lookup every ``load.interval_s`` (the connections staggered), whatever
    the latency; when an answer comes later than the next slot, the next lookup follows at once.
    """
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    headers = {"Authorization": f"Bearer {AGENT_KEY}"}
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=max(60.0, 2 * load.interval_s))
    timeout = aiohttp.ClientTimeout(total=load.timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        try:
            async with session.get(f"{load.service}/healthz") as response:
                await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            tally.client_errors[f"connect: {type(exc).__name__}"] += 1
        load.connected[0] += 1
        if load.connected[0] == load.connections:
            load.window[:] = [time.monotonic(), time.monotonic() + load.seconds]
            load.go.set()
        await load.go.wait()
        next_at = load.window[0] + load.interval_s * index / load.connections
        while True:
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            if time.monotonic() >= load.stop_at:
                return
            next_at = max(next_at + load.interval_s, time.monotonic()) if load.interval_s else 0.0
            kind = rng.choices(kinds, weights)[0]
            if kind == "cached":
                reference = rng.choice(load.pools.carrier_numbers)
            elif kind == "registered":
                reference = rng.choice(load.pools.registered)
            else:
                unknown_ids[0] += 1
                reference = f"NOSUCH-{unknown_ids[0]:09d}"
            started = time.perf_counter()
            try:
                async with session.get(f"{load.service}/v1/track/{reference}", headers=headers) as response:
                    body = await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError) as exc:
                tally.client_errors[type(exc).__name__] += 1
                continue
            tally.record(kind, status, time.perf_counter() - started, time.monotonic() - load.window[0])
            if status != EXPECTED[kind] and (kind, status) not in tally.samples:
                tally.samples[kind, status] = f"{reference}: {body[:200].decode(errors='replace')}"


def cpu_s(pid: int) -> float:
    """CPU time a process has used so far (user and system), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_sockets(pid: int) -> int:
    """How many sockets a process holds open (its listening socket and connections)."""
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed meanwhile
            continue
    return count


async def sample_rss(pid: int, started: float, every_s: float, samples: list[tuple[float, int]],
                     stop_at: float) -> None:
    """RSS of ``pid`` every ``every_s`` seconds (and a line of progress every minute)."""
    last_line = 0.0
    while True:
        elapsed = time.monotonic() - started
        samples.append((elapsed, rss_kib(pid)))
        if elapsed - last_line >= 60 or not last_line:
            last_line = max(elapsed, 1e-9)
            print(f"  {elapsed:5.0f} s  RSS {samples[-1][1] / 1024:7.1f} MiB", flush=True)
        if time.monotonic() >= stop_at:
            return
        await asyncio.sleep(min(every_s, max(0.0, stop_at - time.monotonic())))


def rss_at(samples: list[tuple[float, int]], at_s: float) -> int:
    """The RSS sample taken closest to ``at_s`` seconds."""
    return min(samples, key=lambda s: abs(s[0] - at_s))[1]


def percentile_ms(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted seconds, in milliseconds."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


# -- the run --------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> int:
    if args.baseline_at_s >= args.seconds:
        raise SystemExit("--baseline-at-s must be shorter than --seconds")
    with ExitStack() as stack:
        redis = RedisServer()
        redis.start()
        stack.callback(redis.close)
        sandbox_port, service_port = free_port(), free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        service = f"http://127.0.0.1:{service_port}"
        _spawn(["-m", "tracksvc", "sandbox", "--port", str(sandbox_port),
                "--latency-ms", str(args.sandbox_latency_ms)], sandbox_port, stack)
        process = _spawn(["-m", "tracksvc", "serve"], service_port, stack,
                         service_env(service_port, redis.url, sandbox))

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            pools = await prepare(session, sandbox, service, args.numbers, args.orders)
            warm_started = time.monotonic()
            warmed = await warm(session, service, pools.carrier_numbers + pools.registered)
        print(f"warm-up: {sum(warmed.values()):,} lookups in {time.monotonic() - warm_started:.0f} s "
              f"({', '.join(f'{s}: {n:,}' for s, n in sorted(warmed.items()))})", flush=True)
        pace = f"paced at {args.rate:g} req/s" if args.rate else "closed loop"
        print(f"tracksvc soak (python {sys.version.split()[0]}, {os.cpu_count()} CPUs): "
              f"{args.seconds:g} s, {args.connections} connections {pace}, {len(pools.carrier_numbers)} "
              f"carrier numbers, {len(pools.registered)} registered references, sandbox latency "
              f"{args.sandbox_latency_ms:g} ms, service pid {process.pid}", flush=True)
        tally = Tally()
        samples: list[tuple[float, int]] = []
        load = Load(service, pools, args.connections, args.seconds, args.rate, args.request_timeout_s)
        unknown_ids = [0]
        workers = [
            asyncio.create_task(worker(load, i, random.Random(args.seed * 100_003 + i), tally, unknown_ids))
            for i in range(args.connections)
        ]
        await asyncio.wait_for(load.go.wait(), timeout=120)
        started, cpu_before = load.window[0], cpu_s(process.pid)
        sampler = asyncio.create_task(sample_rss(process.pid, started, 5.0, samples, load.stop_at))
        await asyncio.sleep(min(10.0, args.seconds / 2))
        sockets = open_sockets(process.pid)
        await asyncio.gather(*workers)
        elapsed = time.monotonic() - started
        service_cpu_s = cpu_s(process.pid) - cpu_before
        await sampler
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode} during the soak")

    ordered = sorted(tally.latencies_s)
    total = len(ordered)
    server_errors = sum(n for status, n in tally.statuses.items() if status >= 500)
    client_errors = sum(tally.client_errors.values())
    rss_baseline, rss_end = rss_at(samples, args.baseline_at_s), samples[-1][1]
    ratio = rss_end / rss_baseline
    statuses = ", ".join(f"{status}: {n:,}" for status, n in sorted(tally.statuses.items()))
    print(f"  requests            {total:,} ({total / elapsed:,.0f} req/s; the service held {sockets} "
          "sockets open)")
    print(f"  service CPU         {service_cpu_s:.0f} s in {elapsed:.0f} s "
          f"({service_cpu_s / elapsed:.0%} of one core)")
    print(f"  answers             {statuses}")
    for kind, counts in tally.by_kind.items():
        latencies = sorted(tally.kind_latencies_s[kind])
        figures = f"p50 {percentile_ms(latencies, 0.5):.1f} ms, p99 {percentile_ms(latencies, 0.99):.1f} ms"
        answers = ", ".join(f"{s}: {n:,}" for s, n in sorted(counts.items()))
        print(f"    {kind:<17} {answers}  ({figures})")
    for (kind, status), answer in sorted(tally.samples.items()):
        print(f"    first unexpected {status} ({kind}): {answer}")
    print(f"  client errors       {client_errors}"
          + (f" ({', '.join(f'{k}: {n}' for k, n in tally.client_errors.items())})" if client_errors else ""))
    p50, p99 = percentile_ms(ordered, 0.5), percentile_ms(ordered, 0.99)
    print(f"  latency             p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    if tally.slow:
        when = Counter(int(at_s // 10) * 10 for at_s, _ in tally.slow)
        print(f"    answers over 1 s  {len(tally.slow):,}, by 10-s window: "
              + ", ".join(f"{t} s: {n}" for t, n in sorted(when.items())))
    print(f"  RSS at {args.baseline_at_s:g} s        {rss_baseline / 1024:.1f} MiB")
    peak = max(s[1] for s in samples)
    print(f"  RSS at the end      {rss_end / 1024:.1f} MiB (peak {peak / 1024:.1f} MiB)")
    print(f"  RSS end / {args.baseline_at_s:g} s      {ratio:.2f}x   goal <= {RSS_RATIO_GOAL:g}x   "
          + ("ok" if ratio <= RSS_RATIO_GOAL else "MISSED"))
    print(f"  5xx answers         {server_errors}   goal 0   " + ("ok" if not server_errors else "MISSED"))
    return 0 if ratio <= RSS_RATIO_GOAL and not server_errors and not client_errors else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the soak."""
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="how long the load runs")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rate", type=float, default=250.0,
                        help="requests per second over all connections (0: closed loop, as fast as answered)")
    parser.add_argument("--baseline-at-s", type=float, default=60.0,
                        help="when the RSS the end is compared with is taken")
    parser.add_argument("--numbers", type=int, default=600, help="carrier numbers looked up (then cached)")
    parser.add_argument("--orders", type=int, default=300, help="registered orders, two shipments each")
    parser.add_argument("--sandbox-latency-ms", type=float, default=20.0)
    parser.add_argument("--request-timeout-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=13)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
