"""
Redis Cluster failover: how long registered lookups fail after a master is SIGKILLed.

Run from the repository root::

    python -m bench.failover               # 3 drills, each on a fresh 6-node cluster
    python -m bench.failover --runs 5 --node-timeout-ms 2000

Each run starts a Redis Cluster on loopback (3 masters + 3 replicas, Debian's
``redis-server``, ``cluster-node-timeout`` as given), the carrier sandbox and
the service in this process (``TRACKSVC_REDIS_CLUSTER=true``,
``TRACKSVC_REDIS_WRITE_REPLICAS=1``, no in-memory answer caches), then the
drill of :mod:`tracksvc.dev.failover_drill`: lookups and writes, SIGKILL of
one master, recovery, the node restarted. Prints each run's figures and the
median time to recovery (kill to the first 200 of a registered lookup after
the last failed one). Exit status 1 when a run did not recover, answered a
registered lookup with anything but 200/503, or lost an acknowledged write.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/failover.py``
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from carriers.sandbox.app import create_sandbox_app  # noqa: E402
from tracksvc.app import create_app  # noqa: E402
from tracksvc.core.logs import configure_logging  # noqa: E402
from tracksvc.core.redis import redis_client  # noqa: E402
from tracksvc.core.settings import Settings  # noqa: E402
from tracksvc.dev.failover_drill import DrillReport, run_drill  # noqa: E402
from tracksvc.dev.redis_cluster import RedisClusterProcesses  # noqa: E402

AGENT = {"Authorization": "Bearer bench-agent"}
INGEST = {"Authorization": "Bearer bench-ingest"}


async def _serve(app: web.Application) -> tuple[str, web.AppRunner]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"http://127.0.0.1:{port}", runner


async def one_run(node_timeout_ms: int) -> DrillReport:
    """One drill on a fresh cluster, sandbox and service."""
    with RedisClusterProcesses(node_timeout_ms=node_timeout_ms) as cluster:
        sandbox_url, sandbox = await _serve(create_sandbox_app())
        values: dict[str, object] = {
            "redis_url": cluster.url, "redis_cluster": True, "redis_write_replicas": 1,
            "api_keys": "agent:bench-agent,ingest:bench-ingest", "refresher_enabled": False,
            "answer_cache_ttl_s": 0, "cache_local_ttl_s": 0, "log_level": "error",
        }
        for carrier in ("ups", "fedex", "usps"):
            values.update({f"{carrier}_base_url": sandbox_url, f"{carrier}_client_id": "bench-id",
                           f"{carrier}_client_secret": "bench-secret"})
        service_url, service = await _serve(create_app(Settings(**values)))  # type: ignore[arg-type]
        client = redis_client(cluster.url, cluster=True)
        try:
            return await run_drill(service_url, cluster, client, agent=AGENT, ingest=INGEST)
        finally:
            await client.aclose()
            await service.cleanup()
            await sandbox.cleanup()


def healthy(report: DrillReport) -> bool:
    """The drill's promises held."""
    return (
        report.recovery_s is not None
        and set(report.statuses("registered")) <= {200, 503}
        and set(report.statuses("carrier")) == {200}
        and not report.lost
    )


async def drills(argv: list[str] | None) -> int:
    """Run the drills; 0 when every one kept its promises."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--node-timeout-ms", type=int, default=1000)
    args = parser.parse_args(argv)
    configure_logging(Settings(log_level="error"))
    recoveries: list[float] = []
    ok = True
    for run in range(1, args.runs + 1):
        report = await one_run(args.node_timeout_ms)
        print(f"run {run}: {report.summary()}", flush=True)
        ok = ok and healthy(report)
        if report.recovery_s is not None:
            recoveries.append(report.recovery_s)
    if recoveries:
        print(
            f"failover recovery (cluster-node-timeout {args.node_timeout_ms} ms): "
            f"median {statistics.median(recoveries):.2f} s, max {max(recoveries):.2f} s "
            f"over {len(recoveries)} runs"
        )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.failover``."""
    return asyncio.run(drills(argv))


if __name__ == "__main__":
    raise SystemExit(main())
