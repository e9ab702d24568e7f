"""
Portal timing benchmark: can "wrong postal code" be told from "no such order" by its time?

Run from the repository root::

    python -m bench.portal_timing               # or: python bench/portal_timing.py
    python -m bench.portal_timing --pairs 2000 --floor-s 0   # the work alone, no floor

One process on loopback: a private ``redis-server``, the carrier sandbox, and
the real service (``create_app``) with the seed stories and the failure limit
raised out of the way. Requests alternate, in random order within each pair,
between a registered order with a wrong postal code and an order number that
does not exist, over one keep-alive connection. Printed: the median and p90 of
each, and the ratio of the medians (goal: within 1.00 +/- 0.05), next to the
verified path (right postal code, carrier answer cached) as the baseline.
Failures answer no sooner than ``TRACKSVC_PORTAL_FAILURE_FLOOR_S`` (default
0.05 s); ``--floor-s 0`` shows how close the two paths' work alone is.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/portal_timing.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from carriers.sandbox.app import create_sandbox_app  # noqa: E402
from tracksvc.app import create_app  # noqa: E402
from tracksvc.core.logs import configure_logging  # noqa: E402
from tracksvc.core.redis import redis_client  # noqa: E402
from tracksvc.core.settings import Settings  # noqa: E402
from tracksvc.dev.demo import start_site  # noqa: E402
from tracksvc.dev.redis_server import RedisServer  # noqa: E402
from tracksvc.dev.seed import seed  # noqa: E402
from tracksvc.registry.store import Registry  # noqa: E402

PORTAL_KEY = "bench-portal-key"


async def _time(session: aiohttp.ClientSession, url: str, want: int) -> float:
    started = time.perf_counter()
    async with session.get(url) as response:
        await response.read()
        assert response.status == want, (url, response.status)
    return time.perf_counter() - started


def _line(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9)]
    return f"  {name:<28} median {statistics.median(samples) * 1e6:8.0f} us   p90 {p90 * 1e6:8.0f} us"


#: The ratio of the two failure medians must lie within 1 +/- this.
GOAL_TOLERANCE = 0.05


async def run(pairs: int, floor_s: float) -> bool:
    """Measure ``pairs`` interleaved pairs, print the figures; whether the goal was met."""
    with RedisServer() as redis_server:
        runners: list[web.AppRunner] = []
        try:
            sandbox_runner, sandbox_port = await start_site(create_sandbox_app(), "127.0.0.1", 0)
            runners.append(sandbox_runner)
            values: dict[str, object] = {
                "redis_url": redis_server.url,
                "api_keys": f"portal:{PORTAL_KEY}",
                "portal_max_failures": 10**9,
                "portal_failure_floor_s": floor_s,
                "log_level": "warning",
                "refresher_enabled": False,
            }
            for carrier in ("ups", "fedex", "usps"):
                values[f"{carrier}_base_url"] = f"http://127.0.0.1:{sandbox_port}"
                values[f"{carrier}_client_id"] = f"bench-{carrier}"
                values[f"{carrier}_client_secret"] = "bench-secret"
            settings = Settings.model_validate(values)
            configure_logging(settings)
            service_runner, port = await start_site(create_app(settings), "127.0.0.1", 0)
            runners.append(service_runner)
            client = redis_client(redis_server.url)
            await seed(Registry(client))
            await client.aclose()

            base = f"http://127.0.0.1:{port}/v1/portal/orders"
            wrong = f"{base}/W2001002?postal_code=99999"
            missing = f"{base}/W7654321?postal_code=99999"
            verified = f"{base}/W2001002?postal_code=75201"
            headers = {"Authorization": f"Bearer {PORTAL_KEY}"}
            samples: dict[str, list[float]] = {"wrong": [], "missing": [], "verified": []}
            connector = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
                for _ in range(50):  # warm up: connections, token, cache
                    await _time(session, wrong, 404)
                    await _time(session, missing, 404)
                    await _time(session, verified, 200)
                rng = random.Random(5)
                for _ in range(pairs):
                    order = [("wrong", wrong), ("missing", missing)]
                    rng.shuffle(order)
                    for name, url in order:
                        samples[name].append(await _time(session, url, 404))
                for _ in range(max(100, pairs // 10)):
                    samples["verified"].append(await _time(session, verified, 200))
        finally:
            for runner in reversed(runners):
                await runner.cleanup()

    ratio = statistics.median(samples["wrong"]) / statistics.median(samples["missing"])
    baseline = statistics.median(samples["verified"])
    print(f"portal timing, {pairs} interleaved pairs on loopback, failure floor {floor_s:g} s")
    print(_line("wrong postal code (404)", samples["wrong"]))
    print(_line("no such order (404)", samples["missing"]))
    print(_line("verified, cached (200)", samples["verified"]))
    met = abs(ratio - 1) <= GOAL_TOLERANCE
    goal = f"{1 - GOAL_TOLERANCE:.2f}..{1 + GOAL_TOLERANCE:.2f}"
    print(f"  ratio wrong/no-such median   {ratio:.3f}   (goal {goal}: {'met' if met else 'MISSED'})")
    print(f"  failure medians / verified   {statistics.median(samples['wrong']) / baseline:.2f}, "
          f"{statistics.median(samples['missing']) / baseline:.2f}")
    return met


def main() -> None:
    """Parse the arguments and run; exit 1 when the goal was missed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument(
        "--floor-s", type=float, default=Settings().portal_failure_floor_s,
        help="TRACKSVC_PORTAL_FAILURE_FLOOR_S for the run (0 measures the work alone)",
    )
    args = parser.parse_args()
    raise SystemExit(0 if asyncio.run(run(args.pairs, args.floor_s)) else 1)


if __name__ == "__main__":
    main()
