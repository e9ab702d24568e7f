"""
What one lookup costs, against what the framework costs: cached, warm and cold.

Run from the repository root::

    python -m bench.lookups                 # or: python bench/lookups.py
    python -m bench.lookups --runs 5 --seconds 5

Everything runs on loopback in separate processes (a private ``redis-server``,
the carrier sandbox at 50 ms latency, the real service with budgets off and
the refresher off, and a bare aiohttp JSON endpoint as the baseline); both
sides are driven by the same client in the same run:

1. Cached ``GET /v1/track/{n}`` over 50 cached numbers, 64 connections, with
   wrk when it is installed (the bench's own keep-alive client otherwise),
   against the bare endpoint: requests/s ratio (goal >= 0.5) and p99 ratio
   (goal <= 2.5).
2. 200 warm lookups of distinct numbers (cached), 32 in flight, one aiohttp
   client, against 200 requests to the bare endpoint the same way: rate ratio
   (goal >= 0.5).
3. 200 cold lookups of distinct UPS numbers (one carrier call each) at 50 ms
   sandbox latency, 32 in flight: wall time against the floor
   ``n x latency / concurrency`` (goal <= 1.5x).

Each figure is the median of ``--runs`` runs (this machine is shared and
noisy). Exit status: 0 when every goal was met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/lookups.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.economy import AGENT_KEY, _spawn, load  # noqa: E402
from carriers.sandbox.scenarios import ups_number  # noqa: E402
from tracksvc.dev.redis_server import RedisServer, free_port  # noqa: E402

SANDBOX_LATENCY_MS = 50.0
HEADERS = {"Authorization": f"Bearer {AGENT_KEY}"}
#: Budgets off, so the cold row measures lookups, not our own quota.
NO_BUDGETS = {f"{c}_quota_{p}": 0 for c in ("ups", "fedex", "usps") for p in ("per_second", "per_hour")}


@dataclass(frozen=True)
class Rate:
    """Requests per second and p99 latency of one load run."""

    rps: float
    p99_ms: float


_WRK_LUA = """
local numbers = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/v1/track/" .. numbers[(i %% #numbers) + 1], {["Authorization"] = "%s"})
end
"""


def _wrk_ms(text: str, label: str) -> float:
    match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", text)
    if match is None:
        raise RuntimeError(f"wrk printed no {label!r}:\n{text}")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(port: int, numbers: Sequence[str], headers: dict[str, str], connections: int,
        seconds: float) -> Rate:
    """``wrk`` over ``numbers`` (rotated by a Lua script): requests/s and p99."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        quoted = ", ".join(f'"{n}"' for n in numbers)
        script.write(_WRK_LUA % (quoted, headers.get("Authorization", "")))
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", script.name,
             f"http://127.0.0.1:{port}"],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw non-2xx answers:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Rate(rps, _wrk_ms(out, "99%"))


async def cached_rate(port: int, numbers: Sequence[str], headers: dict[str, str], connections: int,
                      seconds: float) -> Rate:
    """Closed-loop load over ``numbers``: wrk when installed, the bench's own client otherwise."""
    if shutil.which("wrk"):
        return await asyncio.to_thread(wrk, port, numbers, headers, connections, seconds)
    result = await load(port, f"/v1/track/{numbers[0]}", headers, connections, seconds)
    return Rate(result.rps, result.p99_ms)


async def burst(session: aiohttp.ClientSession, base: str, numbers: Sequence[str],
                in_flight: int) -> float:
    """Seconds to GET every number with at most ``in_flight`` requests at a time (all must be 200)."""
    gate = asyncio.Semaphore(in_flight)

    async def one(number: str) -> None:
        async with gate, session.get(f"{base}/v1/track/{number}", headers=HEADERS) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{number}: HTTP {response.status}")

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in numbers))
    return time.perf_counter() - started


async def add_scenarios(session: aiohttp.ClientSession, sandbox: str, numbers: Sequence[str]) -> None:
    """Teach the sandbox ``numbers`` as UPS parcels in transit."""
    for number in numbers:
        scenario = {"carrier": "ups", "number": number, "expect": "in_transit",
                    "steps": [["label", 48], ["pickup", 24], ["arrival", 6]]}
        async with session.post(f"{sandbox}/_sandbox/scenarios", json=scenario) as response:
            if response.status != 201:
                raise RuntimeError(await response.text())


async def one_run(args: argparse.Namespace, serial: int) -> dict[str, float]:
    """One run of the three rows, every process fresh; the figures by name."""
    with ExitStack() as stack:
        redis = RedisServer()
        redis.start()
        stack.callback(redis.close)
        sandbox_port, bare_port, service_port = free_port(), free_port(), free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        service = f"http://127.0.0.1:{service_port}"
        bare = f"http://127.0.0.1:{bare_port}"
        _spawn(["-m", "tracksvc", "sandbox", "--port", str(sandbox_port),
                "--latency-ms", str(args.sandbox_latency_ms)], sandbox_port, stack)
        _spawn(["-m", "bench.economy", "--serve", "service", "--port", str(service_port),
                "--redis-url", redis.url, "--sandbox-url", sandbox, "--overrides", json.dumps(NO_BUDGETS)],
               service_port, stack)
        _spawn(["-m", "bench.economy", "--serve", "bare", "--port", str(bare_port)], bare_port, stack)

        base = 900_000 + serial * 1_000
        hot = [ups_number(base + i) for i in range(50)]
        warm = [ups_number(base + 100 + i) for i in range(args.lookups)]
        cold = [ups_number(base + 400 + i) for i in range(args.lookups)]
        connector = aiohttp.TCPConnector(limit=args.in_flight)
        async with aiohttp.ClientSession(connector=connector) as session:
            await add_scenarios(session, sandbox, [*hot, *warm, *cold])
            await burst(session, service, [*hot, *warm], args.in_flight)  # fill the cache
            await burst(session, service, [*hot, *warm], args.in_flight)  # and warm every path once
            cold_s = await burst(session, service, cold, args.in_flight)
            warm_s = await burst(session, service, warm, args.in_flight)
            bare_s = await burst(session, bare, warm, args.in_flight)
        bare_rate = await cached_rate(bare_port, hot, {}, args.connections, args.seconds)
        cached = await cached_rate(service_port, hot, HEADERS, args.connections, args.seconds)
    floor_s = args.lookups * args.sandbox_latency_ms / 1000 / args.in_flight
    return {
        "bare_rps": bare_rate.rps, "bare_p99_ms": bare_rate.p99_ms,
        "cached_rps": cached.rps, "cached_p99_ms": cached.p99_ms,
        "cached_ratio": cached.rps / bare_rate.rps, "p99_ratio": cached.p99_ms / bare_rate.p99_ms,
        "warm_rate": args.lookups / warm_s, "bare_burst_rate": args.lookups / bare_s,
        "warm_ratio": bare_s / warm_s,
        "cold_s": cold_s, "floor_s": floor_s, "cold_ratio": cold_s / floor_s,
    }


async def main_async(args: argparse.Namespace) -> int:
    runs = [await one_run(args, i) for i in range(args.runs)]
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    client = "wrk" if shutil.which("wrk") else "bench client"
    rows = [
        (f"bare aiohttp JSON, {args.connections} conns ({client})",
         f"{med['bare_rps']:,.0f} req/s, p99 {med['bare_p99_ms']:.1f} ms", "baseline", ""),
        (f"cached GET /v1/track, {args.connections} conns ({client})",
         f"{med['cached_rps']:,.0f} req/s, p99 {med['cached_p99_ms']:.1f} ms", "", ""),
        ("  cached / bare requests/s", f"{med['cached_ratio']:.2f}x", ">= 0.5x",
         "ok" if med["cached_ratio"] >= 0.5 else "MISSED"),
        ("  cached / bare p99", f"{med['p99_ratio']:.2f}x", "<= 2.5x",
         "ok" if med["p99_ratio"] <= 2.5 else "MISSED"),
        (f"{args.lookups} warm distinct lookups, {args.in_flight} in flight",
         f"{med['warm_rate']:,.0f}/s vs bare {med['bare_burst_rate']:,.0f}/s = {med['warm_ratio']:.2f}x",
         ">= 0.5x", "ok" if med["warm_ratio"] >= 0.5 else "MISSED"),
        (f"{args.lookups} cold distinct lookups, {args.in_flight} in flight",
         f"{med['cold_s']:.3f} s vs floor {med['floor_s']:.3f} s = {med['cold_ratio']:.2f}x",
         "<= 1.5x", "ok" if med["cold_ratio"] <= 1.5 else "MISSED"),
    ]
    print(f"tracksvc lookup cost (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, sandbox latency "
          f"{args.sandbox_latency_ms:g} ms, median of {args.runs} runs, {args.seconds:g} s per load run)")
    width = max(len(r[0]) for r in rows)
    for name, figure, goal, verdict in rows:
        print(f"  {name:<{width}}  {figure:<48} {('goal ' + goal) if goal else '':<14} {verdict}")
    for key in ("cached_ratio", "p99_ratio", "warm_ratio", "cold_ratio"):
        print(f"  runs {key}: " + ", ".join(f"{r[key]:.2f}" for r in runs))
    return 1 if any(row[3] == "MISSED" for row in rows) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(prog="bench.lookups", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs; each figure is their median (3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load run (5)")
    parser.add_argument("--connections", type=int, default=64, help="connections of the cached row (64)")
    parser.add_argument("--lookups", type=int, default=200, help="lookups of the warm and cold rows (200)")
    parser.add_argument("--in-flight", type=int, default=32, help="concurrency, warm and cold rows (32)")
    parser.add_argument("--sandbox-latency-ms", type=float, default=SANDBOX_LATENCY_MS)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
