"""
Redis memory per registered shipment: what to size Redis for (docs/operations.md).

Run from the repository root::

    python -m bench.registry_memory                     # or: python bench/registry_memory.py
    python -m bench.registry_memory --shipments 100000

A private ``redis-server`` (tracksvc.dev.redis_server, AOF on), the carrier
sandbox and the service on loopback (bench.registry_common.stack). Steps,
each measured as the growth of ``INFO memory`` ``used_memory`` (what
``maxmemory`` counts) and of the key count:

Memory is ``used_memory`` less the clients' and the AOF's buffers (they
follow the connections, not the data).

1. register ``--shipments`` shipments through the registry's bulk path
   (``import_lines``, what ``tracksvc import`` and ``POST
   /v1/shipments/import`` run): one order each, a shipment id, an order
   number, one alias, an origin, a destination postal code and a promised
   date, carriers in turn (UPS, FedEx, USPS), labels printed over the last
   ten days and never scanned (the heaviest case: every label is on the
   warehouse list and its indexes);
2. a check time for every one of them (``Registry.note_checked``, what a
   lookup or the refresher writes after a carrier answer);
3. one cached carrier answer: every sandbox catalogue number looked up
   over HTTP, then ``MEMORY USAGE`` of its cache entry (median and largest);
   a registered shipment still polled keeps one such entry.

Printed per shipment and scaled x10 per 100,000 to per 1,000,000, with the
AOF size after a rewrite (the disk it takes). Redis's own per-key overhead
(jemalloc size classes, dict entries) is included, as it is in production.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/registry_memory.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from bench.registry_common import AGENT_KEY, Stopwatch, stack  # noqa: E402
from carriers.sandbox.scenarios import CATALOGUE, fedex_number, ups_number, usps_number  # noqa: E402
from tracksvc.core.redis import redis_client  # noqa: E402
from tracksvc.domain.records import ShipmentRecord  # noqa: E402
from tracksvc.economy.cache import track_key  # noqa: E402
from tracksvc.registry.importer import ImportFormat, import_lines  # noqa: E402
from tracksvc.registry.store import Registry  # noqa: E402

ORIGINS = [f"DC{i:02d}" for i in range(10)]
NUMBERS = ((ups_number, "ups"), (fedex_number, "fedex"), (usps_number, "usps"))
PER_MILLION = 1_000_000


def row(i: int, now: datetime) -> bytes:
    """One NDJSON import row: a label-only shipment, its own order."""
    make, carrier = NUMBERS[i % 3]
    return orjson.dumps({
        "shipment_id": f"SHP-{i:08d}",
        "order_number": f"W{i:08d}",
        "carrier": carrier,
        "tracking_number": make(5_000_000 + i),
        "label_created_at": (now - timedelta(minutes=(i * 7) % (10 * 24 * 60))).isoformat(),
        "origin": ORIGINS[i % len(ORIGINS)],
        "destination_postal_code": f"{10000 + i % 89999:05d}",
        "promised_delivery_date": (now + timedelta(days=3)).date().isoformat(),
        "aliases": [f"RMA-{i:08d}"],
    })


async def memory(client: aioredis.Redis) -> tuple[int, int]:
    """
    (bytes the data takes, number of keys): ``used_memory`` less the clients' buffers
    and the AOF buffer, which depend on how many connections are open, not on the data.
    """
    info: dict[str, Any] = await client.info("memory")
    data = int(info["used_memory"]) - int(info["mem_clients_normal"]) - int(info["mem_aof_buffer"])
    return data, int(await client.dbsize())


async def index_bytes(client: aioredis.Redis) -> int:
    """``MEMORY USAGE`` of every sorted set (the label indexes and the refresh schedule), summed."""
    total = 0
    async for key in client.scan_iter(match="tracksvc:*", _type="zset"):
        total += int(await client.memory_usage(key, samples=0) or 0)
    return total


async def aof_bytes(client: aioredis.Redis) -> int:
    """The AOF's size once rewritten (what the data takes on disk)."""
    await client.bgrewriteaof()
    while True:
        await asyncio.sleep(0.2)
        info: dict[str, Any] = await client.info("persistence")
        if not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"]):
            return int(info["aof_current_size"])


async def register(registry: Registry, shipments: int) -> float:
    """Import the rows through the registry's bulk path; seconds taken."""
    now = datetime.now(UTC)

    async def lines() -> AsyncIterator[bytes]:
        for i in range(shipments):
            yield row(i, now)

    with Stopwatch() as watch:
        report = await import_lines(lines(), ImportFormat.ndjson, registry)
    assert report.accepted == shipments, report.as_dict()
    return watch.elapsed_s


async def check_all(registry: Registry, shipments: int) -> None:
    """Record a carrier check time for every shipment, as lookups and the refresher do."""
    now = datetime.now(UTC)
    ids = [f"SHP-{i:08d}" for i in range(shipments)]
    for start in range(0, shipments, 500):
        records = await registry.get_shipments(ids[start:start + 500])
        found = [r for r in records if isinstance(r, ShipmentRecord)]
        await asyncio.gather(*(registry.note_checked(r, now) for r in found))


async def cached_answer_sizes(service_url: str, client: aioredis.Redis) -> list[int]:
    """``MEMORY USAGE`` of the cache entry of every sandbox catalogue number, once looked up."""
    headers = {"Authorization": f"Bearer {AGENT_KEY}"}
    async with aiohttp.ClientSession() as session:
        for scenario in CATALOGUE:
            async with session.get(f"{service_url}/v1/track/{scenario.number}", headers=headers) as response:
                await response.read()
    sizes = []
    for scenario in CATALOGUE:
        used = await client.memory_usage(track_key(scenario.carrier, scenario.number))
        if used:
            sizes.append(int(used))
    return sizes


def per_million(total_bytes: int, shipments: int) -> str:
    """Bytes per shipment and MiB per million shipments."""
    each = total_bytes / shipments
    return f"{each:7.0f} B/shipment  {each * PER_MILLION / 2**20:8,.0f} MiB per 1M"


async def run(shipments: int) -> None:
    """Load, measure, print."""
    unlimited = {f"{c}_quota_per_{unit}": 0 for c in ("ups", "fedex", "usps") for unit in ("second", "hour")}
    async with stack(**unlimited) as env:
        client = redis_client(env.redis.url)
        await client.config_set("appendfsync", "everysec")  # loading speed only; memory is the same
        registry = Registry(client)
        empty_bytes, empty_keys = await memory(client)
        seconds = await register(registry, shipments)
        loaded_bytes, loaded_keys = await memory(client)
        indexes = await index_bytes(client)
        loaded_aof = await aof_bytes(client)
        started = time.perf_counter()
        await check_all(registry, shipments)
        check_s = time.perf_counter() - started
        checked_bytes, checked_keys = await memory(client)
        checked_aof = await aof_bytes(client)
        sizes = await cached_answer_sizes(env.service_url, client)
        await client.aclose()
    registered = loaded_bytes - empty_bytes
    checked = checked_bytes - loaded_bytes
    print(f"{shipments:,} shipments registered through import_lines in {seconds:.1f} s; "
          f"check times written in {check_s:.1f} s; private redis-server, jemalloc")
    keys_each = (loaded_keys - empty_keys) / shipments
    print(f"  registry (records, references, order sets, label indexes, schedule):"
          f" {per_million(registered, shipments)}  ({keys_each:.1f} keys/shipment)")
    print(f"    of which the sorted sets (unscanned overall and per origin, unchecked, refresh due):"
          f" {per_million(indexes, shipments)}")
    print(f"  + carrier check times:{'':46} {per_million(checked, shipments)}"
          f"  ({(checked_keys - loaded_keys) / shipments:.1f} keys/shipment)")
    print(f"  registry with check times:{'':42} {per_million(registered + checked, shipments)}")
    if sizes:
        median = statistics.median(sizes)
        print(f"  one cached carrier answer (MEMORY USAGE, {len(sizes)} sandbox numbers):"
              f" median {median:.0f} B, largest {max(sizes)} B:"
              f" {median * PER_MILLION / 2**20:,.0f} MiB per 1M polled shipments")
    print(f"  AOF after rewrite: {per_million(loaded_aof, shipments)} (registry),"
          f" {per_million(checked_aof, shipments)} (with check times)")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bench.registry_memory``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shipments", type=int, default=100_000)
    args = parser.parse_args(argv)
    asyncio.run(run(args.shipments))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
