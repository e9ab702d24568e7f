"""
``tracksvc serve --workers 2``: two real service processes on one port, one real Redis, the sandbox.

The processes are found through ``/proc`` (the service publishes no process ids).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Sandbox
from tests.tracksvc.processes import ROOT, carriers_at, clean_env, wait_for_port
from tracksvc.dev.redis_server import RedisServer, free_port

NUMBER = "1ZTRKSVC0100000033"


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _tcp_inodes(port: int, state: str) -> set[str]:
    """Socket inodes of TCP sockets in ``state`` (01 established, 0A listening) on local ``port``."""
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    return inodes


def _sockets_of(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:  # gone
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _running(process: subprocess.Popen[bytes] | int) -> bool:
    if isinstance(process, int):
        return Path(f"/proc/{process}").exists()
    return process.poll() is None


def _serve_two_workers(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tracksvc", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def _wait_exit(process: subprocess.Popen[bytes] | int, timeout_s: float) -> None:
    for _ in range(int(timeout_s * 10)):
        if not _running(process):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{process} still running after {timeout_s} s")


@pytest.fixture
async def served(
    redis_server: RedisServer, sandbox: Sandbox, cli_env: Any
) -> AsyncIterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m tracksvc serve --workers 2`` on a free port; killed if the test left it running."""
    port = free_port()
    env = clean_env(
        TRACKSVC_REDIS_URL=redis_server.url,
        TRACKSVC_API_KEYS="agent:k",
        TRACKSVC_REFRESHER_ENABLED="false",
        **carriers_at(sandbox.url),
    )
    process = _serve_two_workers(port, env)
    try:
        await wait_for_port(port, process)
        for _ in range(300):  # every worker listening, not only the first
            workers = _children(process.pid)
            listening = _tcp_inodes(port, "0A")
            if len(workers) == 2 and all(_sockets_of(pid) & listening for pid in workers):
                break
            assert process.poll() is None, "tracksvc serve exited early"
            await asyncio.sleep(0.1)
        yield process, port
    finally:
        for pid in _children(process.pid):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def test_two_workers_share_the_port_one_carrier_call_and_stop_on_sigterm(
    served: tuple[subprocess.Popen[bytes], int], sandbox: Sandbox
) -> None:
    """Two worker processes accept on one port, 40 lookups make one carrier call, SIGTERM stops all with 0."""
    process, port = served
    workers = _children(process.pid)
    assert len(workers) == 2

    # Both workers accept: 40 fresh connections held open, each answered, then counted per process.
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
    for reader, writer in streams:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: tracksvc\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    established = _tcp_inodes(port, "01")
    per_worker = [len(_sockets_of(pid) & established) for pid in workers]
    for _, writer in streams:
        writer.close()
    assert all(count > 0 for count in per_worker), per_worker
    assert sum(per_worker) == 40

    # 40 concurrent lookups of one number over fresh connections: one carrier call in all.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:

        async def lookup() -> int:
            async with session.get(
                f"http://127.0.0.1:{port}/v1/track/{NUMBER}", headers={"Authorization": "Bearer k"}
            ) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(lookup() for _ in range(40)))
    assert statuses == [200] * 40
    assert sandbox.state.calls["ups:track"] == 1

    process.send_signal(signal.SIGTERM)
    await _wait_exit(process, 10)
    assert process.returncode == 0
    for pid in workers:
        await _wait_exit(pid, 1)


async def test_a_dead_worker_stops_the_others_and_fails(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    """When a worker dies unexpectedly the supervisor stops the other one and exits non-zero."""
    process, _ = served
    first, second = _children(process.pid)
    os.kill(first, signal.SIGKILL)
    await _wait_exit(process, 15)
    assert process.returncode == 2
    await _wait_exit(second, 1)


def test_workers_need_a_fixed_port() -> None:
    """--workers with --port 0 is refused (exit 2, one sentence): each worker would bind its own port."""
    done = subprocess.run(
        [sys.executable, "-m", "tracksvc", "serve", "--workers", "2", "--port", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "--workers needs a fixed --port" in done.stderr
