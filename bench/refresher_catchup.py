"""
How long the refresher takes to check a first import of 100,000 labels once, and what it costs.

Run from the repository root (opt-in: ``python -m bench refresher_catchup``)::

    python -m bench.refresher_catchup                       # 100,000 shipments, budgets x8, 2 replicas
    python -m bench.refresher_catchup --shipments 20000 --scale 10 --replicas 1

What runs, each in its own process on loopback: a private ``redis-server``,
the carrier sandbox (``python -m tracksvc sandbox``) and ``--replicas``
refreshers (``python -m tracksvc refresher``, the same code a replica runs).
The shipments are registered first through the import's bulk path
(``import_lines``): label-only outbound labels, the three carriers in turn,
printed 1 hour to 10 days ago, every one with a number of its own (the
sandbox answers "not found" for numbers outside its catalogue: one carrier
call each all the same, and the warehouse list records the check).

**Budgets.** The service's defaults for UPS (50/s, 100,000/h) and FedEx
(140/s, 4,000/h: FedEx's 1,400 per 10 s and about 100,000 a day), and USPS
at 5/s and 18,000/h: USPS's default hourly quota (about 60/h) is meant to be
raised on request, and a retailer importing 100,000 labels runs a raised one
(at 60/h the USPS third would take 46 days whatever the refresher does; the
report prints that figure too). The refresher spends the reserved share
(0.5) of the tighter limit: UPS 13.9 shipments/s, FedEx 16.7/s (0.56 calls
of 30), USPS 2.5/s.

**Scaling.** A real-time run would take hours (USPS: 3.7 h), so every
budget, the refresher period and the revisit interval are scaled by
``--scale`` (budgets x k, times / k): the pace is the same, only faster.
Real time = measured time x k, valid while the refreshers keep the scaled
pace (the report says how close they came: "pace kept"); where the machine
could not keep up, the real-time figure is an upper bound. A carrier not
finished within ``--max-seconds`` is extrapolated from its measured rate.

Reported per carrier: shipments, checked, carrier calls (sandbox), calls per
shipment, measured time to check all (scaled) and its real-time equivalent.
Exit status 0 when every shipment was checked (or extrapolated) within 1.2x
what the budget allows, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/refresher_catchup.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.economy import _spawn, stop_process  # noqa: E402
from carriers.sandbox.scenarios import fedex_number, ups_number, usps_number  # noqa: E402
from tracksvc.core.models import Carrier  # noqa: E402
from tracksvc.core.redis_keys import UNCHECKED  # noqa: E402
from tracksvc.dev.redis_server import RedisServer, free_port  # noqa: E402
from tracksvc.registry.importer import ImportFormat, import_lines  # noqa: E402
from tracksvc.registry.store import Registry  # noqa: E402

CARRIERS = (Carrier.ups, Carrier.fedex, Carrier.usps)
PREFIX = {Carrier.ups: "U", Carrier.fedex: "F", Carrier.usps: "P"}
NUMBER = {Carrier.ups: ups_number, Carrier.fedex: fedex_number, Carrier.usps: usps_number}
#: (per second, per hour) per carrier, real-time; see the module docstring.
BUDGETS = {Carrier.ups: (50.0, 100_000.0), Carrier.fedex: (140.0, 4_000.0), Carrier.usps: (5.0, 18_000.0)}
USPS_DEFAULT_PER_HOUR = 60.0
RESERVED_SHARE = 0.5
NUMBERS_PER_CALL = {Carrier.ups: 1, Carrier.fedex: 30, Carrier.usps: 1}
PERIOD_S = 60.0
REVISIT_S = 900.0


def pace(carrier: Carrier, per_hour: float | None = None) -> float:
    """Real-time shipments per second the refresher may check for ``carrier``."""
    per_second, hourly = BUDGETS[carrier]
    hourly = hourly if per_hour is None else per_hour
    return RESERVED_SHARE * min(per_second, hourly / 3600) * NUMBERS_PER_CALL[carrier]


def row(i: int, now: datetime) -> bytes:
    """One NDJSON import row: carriers in turn, labels 1 h to 10 days old."""
    carrier = CARRIERS[i % 3]
    label_at = now - timedelta(hours=1 + (i * 7919) % 239)
    return json.dumps({
        "shipment_id": f"{PREFIX[carrier]}-{i:07d}", "order_number": f"W{i:08d}",
        "carrier": carrier.value, "tracking_number": NUMBER[carrier](3_000_000 + i),
        "label_created_at": label_at.isoformat(), "origin": f"DC{i % 4}",
    }).encode()


async def register(redis_url: str, shipments: int) -> float:
    """Import the rows through the registry's bulk path; seconds taken."""
    client = aioredis.Redis.from_url(redis_url)
    now = datetime.now(UTC)

    async def lines() -> AsyncIterator[bytes]:
        for i in range(shipments):
            yield row(i, now)

    started = time.perf_counter()
    report = await import_lines(lines(), ImportFormat.ndjson, Registry(client))
    await client.aclose()
    assert report.accepted == shipments, report.as_dict()
    return time.perf_counter() - started


async def unchecked_per_carrier(client: aioredis.Redis) -> dict[Carrier, int]:
    """Labels no carrier has answered about yet, per carrier (by shipment id prefix)."""
    left = dict.fromkeys(CARRIERS, 0)
    by_prefix = {f"{p}-": c for c, p in PREFIX.items()}
    async for member, _ in client.zscan_iter(UNCHECKED, count=5000):
        left[by_prefix[member.decode()[:2]]] += 1
    return left


def refresher_env(redis_url: str, sandbox_url: str, scale: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSVC_")}
    env.update(
        TRACKSVC_REDIS_URL=redis_url,
        TRACKSVC_LOG_LEVEL="warning",
        TRACKSVC_REFRESHER_PERIOD_S=str(PERIOD_S / scale),
        TRACKSVC_REFRESHER_REVISIT_S=str(REVISIT_S / scale),
        TRACKSVC_REFRESHER_BATCH_SIZE="10000",
        TRACKSVC_REFRESHER_CONCURRENCY="32",
        TRACKSVC_QUOTA_RESERVED_SHARE=str(RESERVED_SHARE),
    )
    for carrier in CARRIERS:
        per_second, per_hour = BUDGETS[carrier]
        name = carrier.value.upper()
        env[f"TRACKSVC_{name}_BASE_URL"] = sandbox_url
        env[f"TRACKSVC_{name}_CLIENT_ID"] = f"bench-{carrier.value}"
        env[f"TRACKSVC_{name}_CLIENT_SECRET"] = "bench-secret"
        env[f"TRACKSVC_{name}_QUOTA_PER_SECOND"] = str(per_second * scale)
        env[f"TRACKSVC_{name}_QUOTA_PER_HOUR"] = str(per_hour * scale)
    return env


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


async def run(shipments: int, scale: float, replicas: int, max_seconds: float, log: Path | None) -> int:
    with ExitStack() as stack:
        redis_server = stack.enter_context(RedisServer())
        sandbox_port = free_port()
        _spawn(["-m", "tracksvc", "sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port)],
               sandbox_port, stack)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        import_s = await register(redis_server.url, shipments)
        print(f"{shipments:,} shipments imported through import_lines in {import_s:.1f} s", flush=True)
        client = aioredis.Redis.from_url(redis_server.url)
        total = {c: len(range(i, shipments, 3)) for i, c in enumerate(CARRIERS)}
        env = refresher_env(redis_server.url, sandbox_url, scale)
        started = time.monotonic()
        processes = [_start_refresher(env, stack, log) for _ in range(replicas)]
        done_at: dict[Carrier, float] = {}
        left = dict(total)
        # The clock starts at the first check seen (the processes' start-up is not the refresher's).
        while await client.zcard(UNCHECKED) == shipments and time.monotonic() - started < 60:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        print(f"first check {time.monotonic() - started:.1f} s after the refreshers were started")
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while len(done_at) < len(CARRIERS) and time.monotonic() - started < max_seconds:
                await asyncio.sleep(2.0)
                assert all(p.poll() is None for p in processes), "a refresher exited"
                left = await unchecked_per_carrier(client)
                elapsed = time.monotonic() - started
                for carrier in CARRIERS:
                    if left[carrier] == 0 and carrier not in done_at:
                        done_at[carrier] = elapsed
                print(f"  {elapsed:6.0f} s  unchecked " +
                      ", ".join(f"{c.value} {left[c]:,}" for c in CARRIERS), flush=True)
            elapsed = time.monotonic() - started
            async with session.get(f"{sandbox_url}/_sandbox/stats") as response:
                stats = await response.json()
        await client.aclose()

    print(f"\n{replicas} refresher(s), budgets and times scaled x{scale:g} (real = measured x {scale:g})")
    print(f"{'carrier':8} {'shipments':>9} {'checked':>8} {'calls':>7} {'calls/shp':>9} "
          f"{'pace kept':>9} {'measured':>9} {'real time':>10} {'budget allows':>13}")
    failed = 0
    worst = 0.0
    for carrier in CARRIERS:
        checked = total[carrier] - left[carrier]
        calls = stats["calls"].get(f"{carrier.value}:track", 0)
        allowed_s = total[carrier] / pace(carrier)  # real time the budget allows
        if carrier in done_at:
            measured = done_at[carrier]
            rate = total[carrier] / measured
            note = ""
        else:  # extrapolated from the rate so far
            rate = checked / elapsed if checked else 0.0
            measured = total[carrier] / rate if rate else math.inf
            note = " (extrapolated)"
        kept = rate / (pace(carrier) * scale)
        real_s = measured * scale
        worst = max(worst, real_s)
        failed += real_s > 1.2 * allowed_s
        print(f"{carrier.value:8} {total[carrier]:>9,} {checked:>8,} {calls:>7,} "
              f"{calls / max(1, checked):>9.3f} {kept:>8.0%} {duration(measured):>9} "
              f"{duration(real_s):>10} {duration(allowed_s):>13}{note}")
    print(f"\nEvery shipment checked once: {duration(worst)} real time (the slowest carrier).")
    usps_default = total[Carrier.usps] / pace(Carrier.usps, USPS_DEFAULT_PER_HOUR)
    print(f"At USPS's default hourly quota (~{USPS_DEFAULT_PER_HOUR:g}/h) the USPS third alone "
          f"would take {duration(usps_default)} ({usps_default / 86400:.0f} days).")
    return 1 if failed else 0


def _start_refresher(env: dict[str, str], stack: ExitStack, log: Path | None) -> subprocess.Popen[bytes]:
    """``python -m tracksvc refresher`` with ``env``, stopped when ``stack`` closes."""
    out = stack.enter_context(log.open("ab")) if log is not None else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "tracksvc", "refresher"], cwd=ROOT,
                               env={**env, "PYTHONPATH": str(ROOT),
                                    "TRACKSVC_LOG_LEVEL": "info" if log else "warning"},
                               stdout=out, stderr=out)
    stack.callback(stop_process, process)
    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shipments", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=8.0, help="budgets x k, times / k")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--max-seconds", type=float, default=420.0)
    parser.add_argument("--log", type=Path, help="append the refreshers' logs (level info) here")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.shipments, args.scale, args.replicas, args.max_seconds, args.log))


if __name__ == "__main__":
    raise SystemExit(main())
