"""
Carrier economy benchmark: how few carrier calls, how fast from the cache.

Run from the repository root::

    python -m bench.economy            # or: python bench/economy.py
    python -m bench.economy --seconds 3 --connections 64

Everything runs on loopback, in separate processes so the figures are fair
on a small machine: a private ``redis-server`` (tracksvc.dev.redis_server), the
carrier sandbox (``python -m tracksvc sandbox``), two replicas of the real
service (``create_app``, sharing that Redis), a bare aiohttp JSON endpoint
(the baseline), and this process as the load generator (a minimal
keep-alive HTTP/1.1 client on raw asyncio sockets, so that the generator is
cheaper than the servers it measures).

Measured, in one run:

1. 500 concurrent cold lookups of 5 UPS numbers, spread over both replicas
   -> carrier calls (goal: exactly 5).
2. 300 concurrent cold lookups of distinct FedEx numbers on one replica
   -> carrier calls (goal: at most 10).
3. Cached lookups at N connections (default 64) against one replica, and
   the bare endpoint at the same N: throughput and p99 latency
   (goal: at least 0.5x the bare throughput, p99 at most 10 ms).

The service runs with ``TRACKSVC_LOG_LEVEL=warning`` (no per-request log
line) and the background refresher off, so only lookups are measured. Two
more rows put the cached figure in context: ``/healthz`` of the same service
(aiohttp plus tracksvc's middlewares, no lookup) and the cached lookup paced
at half its closed-loop throughput (latency below saturation). With N
connections always busy (closed loop), mean latency is N / throughput, so a
p99 of 10 ms at 64 connections needs at least 6,400 requests per second.

Exit status: 0 when every goal was met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/economy.py``
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from tracksvc.dev.redis_server import RedisServer, free_port  # noqa: E402

AGENT_KEY = "bench-agent-key"
SANDBOX_LATENCY_MS = 100.0


# -- the processes under test ---------------------------------------------------


def serve_service(port: int, redis_url: str, sandbox_url: str, overrides: dict[str, Any]) -> None:
    """Child process: the real service (create_app) on loopback."""
    from tracksvc.app import create_app
    from tracksvc.core.logs import configure_logging
    from tracksvc.core.settings import Settings

    values: dict[str, Any] = {
        "redis_url": redis_url,
        "api_keys": f"agent:{AGENT_KEY}",
        "log_level": "warning",
        "log_json": True,
        "refresher_enabled": False,
        **overrides,
    }
    for carrier in ("ups", "fedex", "usps"):
        values[f"{carrier}_base_url"] = sandbox_url
        values[f"{carrier}_client_id"] = f"{carrier}-bench-id"
        values[f"{carrier}_client_secret"] = f"{carrier}-bench-secret"
    settings = Settings(**values)
    configure_logging(settings)
    web.run_app(create_app(settings), host="127.0.0.1", port=port, print=None, access_log=None)


def serve_bare(port: int) -> None:
    """Child process: the baseline, one aiohttp JSON endpoint."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "reference": request.match_info["reference"]})

    app = web.Application()
    app.router.add_get("/v1/track/{reference}", hello)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout_s:g} s")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` if it still runs; kill it when it has not exited 10 s later."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _spawn(args: Sequence[str], port: int, stack: ExitStack,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python args`` (extra ``env``), stopped when ``stack`` closes; wait until ``port`` listens."""
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    stack.callback(stop_process, process)
    _wait_for_port(port, process)
    return process


# -- a cheap HTTP/1.1 keep-alive load generator ---------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the same GET again and again until told to stop."""

    def __init__(self, request: bytes, run: _Run, offset_s: float) -> None:
        self.request = request
        self.run = run
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()
        self.next_at = self.loop.time() + offset_s

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._next()

    def _next(self) -> None:
        if not self.run.interval_s:  # closed loop: the next request as soon as the answer is in
            self._send()
            return
        # Paced (open loop): one request per interval, whatever the answers' latency.
        delay_s = max(0.0, self.next_at - self.loop.time())
        self.next_at += self.run.interval_s
        self.loop.call_later(delay_s, self._send)

    def _send(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        self.buffer = self.buffer[end + 4 + length :]
        self.run.record(time.perf_counter() - self.sent_at, head[9:12] == "200")
        if self.run.running:
            self._next()
        elif self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Run:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.running = True
        self.measuring = False
        self.latencies_s: list[float] = []
        self.errors = 0

    def record(self, latency_s: float, ok: bool) -> None:
        if not self.measuring:
            return
        self.latencies_s.append(latency_s)
        if not ok:
            self.errors += 1


@dataclass(frozen=True)
class LoadResult:
    """Throughput and latency of one load run."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


async def load(port: int, path: str, headers: dict[str, str], connections: int,
               seconds: float, warmup_s: float = 1.0, rate: float = 0.0) -> LoadResult:
    """
    GET ``path`` over ``connections`` keep-alive connections; measure after a warm-up.

    With ``rate`` 0 each connection sends its next request as soon as its
    answer is in (closed loop: throughput); otherwise the connections together
    send ``rate`` requests per second (open loop: latency below saturation).
    """
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    interval_s = connections / rate if rate else 0.0
    run = _Run(interval_s)
    loop = asyncio.get_running_loop()
    protocols: list[_Connection] = []
    for i in range(connections):
        offset_s = interval_s * i / connections
        _, protocol = await loop.create_connection(
            functools.partial(_Connection, request, run, offset_s), "127.0.0.1", port
        )
        protocols.append(protocol)
    await asyncio.sleep(warmup_s)
    run.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    run.measuring = False
    elapsed = time.perf_counter() - started
    run.running = False
    await asyncio.wait([p.closed for p in protocols], timeout=5)
    ordered = sorted(run.latencies_s)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    return LoadResult(len(ordered), run.errors, elapsed, pct(0.50), pct(0.99))


# -- the scenarios ---------------------------------------------------------------------


async def _stats(session: aiohttp.ClientSession, sandbox: str) -> dict[str, int]:
    async with session.get(f"{sandbox}/_sandbox/stats") as response:
        body = await response.json()
    calls: dict[str, int] = body["calls"]
    return calls


async def cold_same_numbers(session: aiohttp.ClientSession, sandbox: str, services: list[str],
                            numbers: list[str], total: int) -> tuple[int, int]:
    """``total`` concurrent lookups over ``numbers``, spread over the replicas -> (calls, non-200s)."""
    before = (await _stats(session, sandbox)).get("ups:track", 0)

    async def one(i: int) -> int:
        url = f"{services[i % len(services)]}/v1/track/{numbers[i % len(numbers)]}"
        async with session.get(url, headers={"Authorization": f"Bearer {AGENT_KEY}"}) as response:
            await response.read()
            return response.status

    statuses = await asyncio.gather(*(one(i) for i in range(total)))
    after = (await _stats(session, sandbox)).get("ups:track", 0)
    return after - before, sum(1 for s in statuses if s != 200)


async def cold_fedex(session: aiohttp.ClientSession, sandbox: str, service: str,
                     count: int) -> tuple[int, int, int]:
    """``count`` concurrent lookups of distinct FedEx numbers -> (calls, numbers asked, non-200s)."""
    from carriers.sandbox.scenarios import fedex_number

    numbers = [fedex_number(700_000 + i) for i in range(count)]
    for number in numbers:
        scenario = {"carrier": "fedex", "number": number, "expect": "in_transit",
                    "steps": [["label", 48], ["pickup", 24], ["arrival", 6]]}
        async with session.post(f"{sandbox}/_sandbox/scenarios", json=scenario) as response:
            assert response.status == 201, await response.text()
    async with session.get(f"{sandbox}/_sandbox/stats") as response:
        before = await response.json()

    async def one(number: str) -> int:
        url = f"{service}/v1/track/{number}"
        async with session.get(url, headers={"Authorization": f"Bearer {AGENT_KEY}"}) as response:
            await response.read()
            return response.status

    statuses = await asyncio.gather(*(one(n) for n in numbers))
    async with session.get(f"{sandbox}/_sandbox/stats") as response:
        after = await response.json()
    calls = after["calls"].get("fedex:track", 0) - before["calls"].get("fedex:track", 0)
    asked = after["numbers_asked"].get("fedex", 0) - before["numbers_asked"].get("fedex", 0)
    return calls, asked, sum(1 for s in statuses if s != 200)


async def main_async(args: argparse.Namespace) -> int:
    from carriers.sandbox.scenarios import CATALOGUE

    ups_numbers = [s.number for s in CATALOGUE if s.carrier.value == "ups" and s.fault is None][:5]
    with ExitStack() as stack:
        redis = RedisServer()
        redis.start()
        stack.callback(redis.close)
        sandbox_port, bare_port = free_port(), free_port()
        service_ports = [free_port(), free_port()]
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        _spawn(["-m", "tracksvc", "sandbox", "--port", str(sandbox_port),
                "--latency-ms", str(args.sandbox_latency_ms)], sandbox_port, stack)
        overrides = json.dumps({"batch_window_s": args.batch_window_ms / 1000})
        for port in service_ports:
            _spawn(["-m", "bench.economy", "--serve", "service", "--port", str(port),
                    "--redis-url", redis.url, "--sandbox-url", sandbox, "--overrides", overrides],
                   port, stack)
        _spawn(["-m", "bench.economy", "--serve", "bare", "--port", str(bare_port)], bare_port, stack)
        services = [f"http://127.0.0.1:{p}" for p in service_ports]

        connector = aiohttp.TCPConnector(limit=1000)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            same_calls, same_errors = await cold_same_numbers(session, sandbox, services, ups_numbers, 500)
            fedex_calls, fedex_asked, fedex_errors = await cold_fedex(session, sandbox, services[0], 300)
            # Warm the cache for the throughput runs (one answer, looked up again and again).
            hot = ups_numbers[0]
            async with session.get(f"{services[0]}/v1/track/{hot}",
                                   headers={"Authorization": f"Bearer {AGENT_KEY}"}) as response:
                body = await response.json()
                assert body["shipments"][0]["freshness"] in ("cached", "live"), body

        headers = {"Authorization": f"Bearer {AGENT_KEY}"}
        n, secs = args.connections, args.seconds
        bare = await load(bare_port, f"/v1/track/{hot}", {}, n, secs)
        healthz = await load(service_ports[0], "/healthz", {}, n, secs)
        cached = await load(service_ports[0], f"/v1/track/{hot}", headers, n, secs)
        paced_rate = max(10.0, round(cached.rps / 2, -1))
        paced = await load(service_ports[0], f"/v1/track/{hot}", headers, n, secs, rate=paced_rate)

    ratio = cached.rps / bare.rps if bare.rps else float("nan")
    rows = [
        ("500 cold lookups, 5 UPS numbers, 2 replicas", f"{same_calls} carrier calls", "exactly 5",
         "ok" if same_calls == 5 and not same_errors else "MISSED"),
        ("300 cold lookups, distinct FedEx numbers", f"{fedex_calls} calls ({fedex_asked} numbers)",
         "<= 10", "ok" if fedex_calls <= 10 and not fedex_errors else "MISSED"),
        (f"bare aiohttp JSON, {n} conns", _figures(bare), "baseline", ""),
        (f"service /healthz, {n} conns", _figures(healthz), "(framework + middlewares)",
         f"{healthz.rps / bare.rps:.2f}x"),
        (f"cached lookup, {n} conns", _figures(cached), ">= 0.5x, p99 <= 10 ms",
         "ok" if ratio >= 0.5 and cached.p99_ms <= 10 and not cached.errors else "MISSED"),
        ("cached / bare throughput", f"{ratio:.2f}x", ">= 0.5x", "ok" if ratio >= 0.5 else "MISSED"),
        (f"cached lookup paced at {paced_rate:,.0f} req/s, {n} conns", _figures(paced),
         "(latency below saturation)", ""),
    ]
    print(f"tracksvc carrier economy (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"sandbox latency {args.sandbox_latency_ms:g} ms, batch window {args.batch_window_ms:g} ms, "
          f"{secs:g} s per load run)")
    width = max(len(r[0]) for r in rows)
    for name, figure, goal, verdict in rows:
        print(f"  {name:<{width}}  {figure:<40} goal {goal:<26} {verdict}")
    errors = same_errors + fedex_errors + sum(r.errors for r in (bare, healthz, cached, paced))
    print(f"  non-200 answers: {errors}")
    missed = sum(1 for row in rows if row[3] == "MISSED")
    return 1 if missed or errors else 0


def _figures(result: LoadResult) -> str:
    return f"{result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the benchmark, or (``--serve``) be one of its server processes."""
    parser = argparse.ArgumentParser(prog="bench.economy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per load run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sandbox-latency-ms", type=float, default=SANDBOX_LATENCY_MS)
    parser.add_argument("--batch-window-ms", type=float, default=15.0)
    parser.add_argument("--serve", choices=["service", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--sandbox-url", help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "service":
        serve_service(args.port, args.redis_url, args.sandbox_url, json.loads(args.overrides))
        return 0
    if args.serve == "bare":
        serve_bare(args.port)
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
