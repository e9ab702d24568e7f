"""
Where a cached lookup's time goes: cProfile of the service while a load runs.

Run from the repository root::

    python -m bench.profile_cached                 # 6 s of cached GET /v1/track/{n}, 32 connections
    python -m bench.profile_cached --top 40 --seconds 10

A private ``redis-server`` and the carrier sandbox run on loopback; the
service runs in a child process with cProfile on while the load runs (wrk
when installed, the bench's own keep-alive client otherwise), after a
warm-up that caches the number. It prints requests/s (under the profiler,
so lower than without) and the top functions by own time and by cumulative
time, with the per-request cost of the route handler and of the whole
middleware chain. Not a benchmark with a goal: a tool to see the hot path
before optimizing it (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/profile_cached.py``
    sys.path.insert(0, str(ROOT))

from bench.economy import load  # noqa: E402
from tracksvc.dev.redis_server import RedisServer, free_port  # noqa: E402

KEY = "profile-agent-key"
NUMBER = "1ZTRKSVC0100000033"  # the sandbox's UPS parcel in transit


def serve_profiled(port: int, redis_url: str, sandbox_url: str, seconds: float, out: str) -> None:
    """Child process: the service, profiled for ``seconds`` from SIGUSR1 on; stats to ``out``."""
    from aiohttp import web

    from tracksvc.app import create_app
    from tracksvc.core.logs import configure_logging
    from tracksvc.core.settings import Settings

    values: dict[str, object] = {
        "redis_url": redis_url, "api_keys": f"agent:{KEY}", "log_level": "warning", "log_json": True,
        "refresher_enabled": False,
    }
    for carrier in ("ups", "fedex", "usps"):
        values.update({f"{carrier}_base_url": sandbox_url, f"{carrier}_client_id": f"{carrier}-id",
                       f"{carrier}_client_secret": f"{carrier}-secret"})
    settings = Settings(**values)  # type: ignore[arg-type]
    configure_logging(settings)
    profile = cProfile.Profile()

    async def run() -> None:
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        go = asyncio.Event()  # the parent has warmed the cache and starts the load
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, go.set)
        await go.wait()
        profile.enable()
        await asyncio.sleep(seconds)
        profile.disable()
        await runner.cleanup()

    asyncio.run(run())
    profile.dump_stats(out)


def _get(port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/track/{NUMBER}",
                                     headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _drive(port: int, connections: int, seconds: float) -> float:
    """Requests/s of cached lookups over ``seconds``."""
    if shutil.which("wrk"):
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "-H", f"Authorization: Bearer {KEY}",
             f"http://127.0.0.1:{port}/v1/track/{NUMBER}"],
            check=True, capture_output=True, text=True,
        ).stdout
        line = next(line for line in out.splitlines() if line.startswith("Requests/sec:"))
        return float(line.split()[1])
    result = asyncio.run(load(port, f"/v1/track/{NUMBER}", {"Authorization": f"Bearer {KEY}"},
                              connections, seconds, warmup_s=0))
    return result.rps


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: profile the service under cached lookups and print where the time goes."""
    parser = argparse.ArgumentParser(prog="bench.profile_cached", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="profiled seconds of load (6)")
    parser.add_argument("--connections", type=int, default=32, help="connections of the load (32)")
    parser.add_argument("--top", type=int, default=20, help="functions listed per ordering (20)")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        port, redis_url, sandbox_url, seconds, out = args.serve
        serve_profiled(int(port), redis_url, sandbox_url, float(seconds), out)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        stats_path = os.path.join(folder, "service.prof")
        redis = RedisServer()
        redis.start()
        sandbox_port, port = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        sandbox = subprocess.Popen([sys.executable, "-m", "tracksvc", "sandbox", "--port", str(sandbox_port)],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        service = subprocess.Popen(
            [sys.executable, "-m", "bench.profile_cached", "--serve", str(port), redis.url,
             f"http://127.0.0.1:{sandbox_port}", str(args.seconds), stats_path],
            cwd=ROOT, env=env,
        )
        try:
            started = time.monotonic()
            while True:
                try:
                    _get(port)  # the first asks the carrier; the next ones are cached
                    break
                except OSError:
                    if time.monotonic() - started > 30:
                        raise
                    time.sleep(0.1)
            for _ in range(5):
                _get(port)
            service.send_signal(signal.SIGUSR1)
            rps = _drive(port, args.connections, args.seconds)
            service.wait(timeout=args.seconds + 30)
        finally:
            for process in (service, sandbox):
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=10)
            redis.close()
        stats = pstats.Stats(stats_path)
        text = io.StringIO()
        stats.stream = text  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        handled = {name: (calls, cum) for (_, _, name), (_, calls, _, cum, _) in stats.stats.items()  # type: ignore[attr-defined]
                   if name in ("track_reference", "_handle_request")}
    print(f"cached GET /v1/track/{NUMBER}, {args.connections} connections, {args.seconds:g} s under "
          f"cProfile: {rps:,.0f} req/s")
    for name, label in (("_handle_request", "whole request (aiohttp + middlewares + route)"),
                        ("track_reference", "route handler (GET /v1/track)")):
        if name in handled:
            calls, cum = handled[name]
            print(f"  {label}: {cum / calls * 1e6:,.0f} us per request ({calls:,} requests)")
    print(text.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
