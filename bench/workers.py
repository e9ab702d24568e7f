"""
Requests/s of ``tracksvc serve`` with 1 and with 2 worker processes, in one run.

Run from the repository root::

    python -m bench.workers                # 5 s per load run, 64 connections, 3 runs each
    python -m bench.workers --seconds 10 --runs 5

A private ``redis-server`` and the carrier sandbox run on loopback; the
service runs as ``python -m tracksvc serve --workers N`` (its own processes),
and the load is cached ``GET /v1/track/{n}`` over 50 numbers (wrk when
installed, the bench's own keep-alive client otherwise; the client takes a
core of its own on a 2-core machine, so the second worker has less than a
whole core). Each figure is the median of ``--runs`` runs. Reports the ratio
2 workers / 1 worker; no goal (exit status 0 unless a run failed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/workers.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.economy import AGENT_KEY, _spawn  # noqa: E402
from bench.lookups import add_scenarios, burst, cached_rate  # noqa: E402
from carriers.sandbox.scenarios import ups_number  # noqa: E402
from tracksvc.dev.redis_server import RedisServer, free_port  # noqa: E402

KEY = AGENT_KEY  # the key bench.lookups.burst sends


def service_env(redis_url: str, sandbox_url: str) -> dict[str, str]:
    """The service's settings as a deployment sets them."""
    env = {
        "TRACKSVC_REDIS_URL": redis_url, "TRACKSVC_API_KEYS": f"agent:{KEY}", "TRACKSVC_LOG_LEVEL": "warning",
        "TRACKSVC_LOG_JSON": "true", "TRACKSVC_REFRESHER_ENABLED": "false",
    }
    for carrier in ("UPS", "FEDEX", "USPS"):
        env.update({f"TRACKSVC_{carrier}_BASE_URL": sandbox_url, f"TRACKSVC_{carrier}_CLIENT_ID": "bench-id",
                    f"TRACKSVC_{carrier}_CLIENT_SECRET": "bench-secret",
                    f"TRACKSVC_{carrier}_QUOTA_PER_SECOND": "0", f"TRACKSVC_{carrier}_QUOTA_PER_HOUR": "0"})
    return env


async def one_run(workers: int, args: argparse.Namespace, serial: int) -> float:
    """Requests/s of cached lookups against ``serve --workers N`` (every process fresh)."""
    with ExitStack() as stack:
        redis = RedisServer()
        redis.start()
        stack.callback(redis.close)
        sandbox_port, port = free_port(), free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        _spawn(["-m", "tracksvc", "sandbox", "--port", str(sandbox_port)], sandbox_port, stack)
        _spawn(["-m", "tracksvc", "serve", "--workers", str(workers), "--port", str(port)], port, stack,
               service_env(redis.url, sandbox))
        await asyncio.sleep(1.0 * workers)  # every worker listening (the first one opens the port)
        numbers = [ups_number(950_000 + serial * 100 + i) for i in range(50)]
        headers = {"Authorization": f"Bearer {KEY}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            await add_scenarios(session, sandbox, numbers)
            for _ in range(2 * workers):  # warm every worker's kept answers, over fresh connections
                await burst(session, f"http://127.0.0.1:{port}", numbers, 16)
        rate = await cached_rate(port, numbers, headers, args.connections, args.seconds)
    return rate.rps


async def main_async(args: argparse.Namespace) -> int:
    results = {n: [await one_run(n, args, i * 2 + n) for i in range(args.runs)] for n in (1, 2)}
    one, two = (statistics.median(results[n]) for n in (1, 2))
    print(f"tracksvc serve --workers N (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, cached "
          f"lookups, {args.connections} connections, {args.seconds:g} s, median of {args.runs} runs)")
    for n, median in ((1, one), (2, two)):
        runs = ", ".join(f"{r:,.0f}" for r in results[n])
        print(f"  {n} worker{'s' if n > 1 else ' '}  {median:>9,.0f} req/s   (runs {runs})")
    print(f"  2 workers / 1 worker  {two / one:.2f}x")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: measure 1 and 2 workers and print both."""
    parser = argparse.ArgumentParser(prog="bench.workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load run (5)")
    parser.add_argument("--connections", type=int, default=64, help="connections (64)")
    parser.add_argument("--runs", type=int, default=3, help="runs per worker count; the median is shown (3)")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
