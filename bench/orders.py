"""
Cold order lookup benchmark: an order of 3 shipments on 3 carriers against one carrier call.

Run from the repository root::

    python -m bench.orders                 # or: python bench/orders.py
    python -m bench.orders --latency-ms 200 --rounds 9

One process on loopback: a private ``redis-server``, the carrier sandbox with
every tracking call delayed by ``--latency-ms``, and the real service
(``create_app``). Registered: order W-B3 with a UPS, a FedEx and a USPS
shipment, and order W-B1 with one UPS shipment. Each round empties the
tracking cache (cold lookups: every carrier is asked), then times, over real
HTTP:

- ``GET /v1/track/W-B3`` (3 carriers, asked concurrently);
- ``GET /v1/track/W-B1`` (the same path with one carrier);
- one bare UPS tracking call to the sandbox (the baseline: one carrier call
  at the same latency, no service in between).

Printed: medians, and the ratios 3-carrier order / one carrier call (goal
<= 1.25) and 3-carrier order / 1-carrier order. OAuth tokens are fetched
before the first round, as a running service has them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/orders.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.registry_common import AGENT_KEY, INGEST_KEY, Stack, median_ms, p90_ms, stack  # noqa: E402
from carriers.sandbox.scenarios import by_name  # noqa: E402
from tracksvc.core.redis import redis_client  # noqa: E402

GOAL_RATIO = 1.25
SCENARIOS = by_name()
ORDER_3 = {"W-B3": ["ups-in-transit", "fedex-in-transit", "usps-in-transit"]}
ORDER_1 = {"W-B1": ["ups-delivered"]}


async def _register(session: aiohttp.ClientSession, base: str) -> None:
    headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    for order, names in {**ORDER_3, **ORDER_1}.items():
        for i, name in enumerate(names):
            scenario = SCENARIOS[name]
            body = {
                "order_number": order, "carrier": scenario.carrier.value,
                "tracking_number": scenario.number, "label_created_at": "2026-01-05T10:00:00Z",
            }
            async with session.put(f"{base}/v1/shipments/{order}-{i}", json=body, headers=headers) as r:
                assert r.status in (200, 201), await r.text()


async def _forget_answers(redis_url: str) -> None:
    """Empty the tracking cache so the next lookups ask the carriers."""
    client = redis_client(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match="tracksvc:track:*", count=1000)]
        for key in keys:
            await client.delete(key)
    finally:
        await client.aclose()


async def _timed_get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[float, Any]:
    started = time.perf_counter()
    async with session.get(url, headers=headers) as response:
        body = await response.json()
        assert response.status == 200, body
    return time.perf_counter() - started, body


async def _ups_token(session: aiohttp.ClientSession, sandbox: str) -> str:
    basic = base64.b64encode(b"bench-ups:bench-secret").decode()
    async with session.post(
        f"{sandbox}/security/v1/oauth/token", data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    ) as response:
        return str((await response.json())["access_token"])


async def measure(env: Stack, latency_s: float, rounds: int) -> dict[str, list[float]]:
    """Run the rounds; seconds per request, by what was asked."""
    agent = {"Authorization": f"Bearer {AGENT_KEY}"}
    samples: dict[str, list[float]] = {"order3": [], "order1": [], "carrier": []}
    async with aiohttp.ClientSession() as session:
        await _register(session, env.service_url)
        await _timed_get(session, f"{env.service_url}/v1/track/W-B3", agent)  # tokens, connections
        await _timed_get(session, f"{env.service_url}/v1/track/W-B1", agent)
        token = await _ups_token(session, env.sandbox_url)
        ups = {"Authorization": f"Bearer {token}", "transId": "bench", "transactionSrc": "bench"}
        direct = f"{env.sandbox_url}/api/track/v1/details/{SCENARIOS['ups-delivered'].number}"
        await _timed_get(session, direct, ups)
        env.sandbox.latency_s = latency_s
        calls_before = sum(v for k, v in env.sandbox.calls.items() if k.endswith(":track"))
        for _ in range(rounds):
            await _forget_answers(env.redis.url)
            elapsed, body = await _timed_get(session, f"{env.service_url}/v1/track/W-B3", agent)
            assert [s["freshness"] for s in body["shipments"]] == ["live"] * 3, body["shipments"]
            samples["order3"].append(elapsed)
            await _forget_answers(env.redis.url)
            elapsed, body = await _timed_get(session, f"{env.service_url}/v1/track/W-B1", agent)
            assert body["shipments"][0]["freshness"] == "live"
            samples["order1"].append(elapsed)
            samples["carrier"].append((await _timed_get(session, direct, ups))[0])
        calls = sum(v for k, v in env.sandbox.calls.items() if k.endswith(":track")) - calls_before
        assert calls == rounds * 5, f"expected {rounds * 5} carrier calls, saw {calls}"
    return samples


async def run(latency_ms: float, rounds: int) -> float:
    """Measure and print; returns the 3-carrier-order / one-call ratio."""
    # Cold lookups each round: the cache is emptied in Redis, so the per-replica
    # answer cache must be off too.
    async with stack(cache_local_ttl_s=0, answer_cache_ttl_s=0) as env:  # every round cold
        samples = await measure(env, latency_ms / 1000, rounds)
    order3, order1, carrier = (median_ms(samples[k]) for k in ("order3", "order1", "carrier"))
    ratio = order3 / carrier
    print(f"cold order lookup, sandbox latency {latency_ms:g} ms per carrier call, {rounds} rounds, loopback")
    for name, key in (
        ("order of 3 shipments on UPS+FedEx+USPS", "order3"),
        ("order of 1 UPS shipment", "order1"),
        ("one bare UPS call (baseline)", "carrier"),
    ):
        print(f"  {name:<40} median {median_ms(samples[key]):7.1f} ms   p90 {p90_ms(samples[key]):7.1f} ms")
    print(f"  ratio 3-carrier order / one carrier call  {ratio:.3f}   (goal <= {GOAL_RATIO})")
    print(f"  ratio 3-carrier order / 1-carrier order   {order3 / order1:.3f}")
    print(f"  {'PASS' if ratio <= GOAL_RATIO else 'MISS'}")
    return ratio


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bench.orders``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    ratio = asyncio.run(run(args.latency_ms, args.rounds))
    return 0 if ratio <= GOAL_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
