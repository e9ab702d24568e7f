"""
Shared fixtures: a real redis-server process, the carrier sandbox on
loopback, and settings pointing at both.

``TRACKSVC_TEST_REDIS=cluster`` makes the Redis fixtures (``redis_server``,
``redis_client``, ``cli_env``, ``make_settings`` and so the services) use a
real Redis Cluster of six nodes on loopback instead of one server, with
``TRACKSVC_REDIS_CLUSTER=true``; ``.ci/test`` runs the Redis-backed modules
both ways. ``own_redis`` stays one server of the test's own.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster
import structlog
from aiohttp import web

from carriers.sandbox.app import create_sandbox_app, state_key
from carriers.sandbox.state import SandboxState
from tests.cluster_recording import RecordingConnection, SlotRecorder
from tracksvc.core.redis import RedisClient
from tracksvc.core.settings import Settings
from tracksvc.dev.redis_cluster import RedisClusterProcesses
from tracksvc.dev.redis_server import RedisServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLES = SHARED / "carrier-samples"
NUMBER_DATA = SHARED / "tracking-number-data"


def load_sample(carrier: str, name: str) -> Any:
    """A payload from ../shared/carrier-samples/<carrier>/<name>."""
    return json.loads((SAMPLES / carrier / name).read_text())


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


#: Which Redis the shared fixtures provide: ``server`` (one process) or ``cluster``.
TEST_REDIS = os.environ.get("TRACKSVC_TEST_REDIS", "server")
if TEST_REDIS not in ("server", "cluster"):
    raise RuntimeError(f"TRACKSVC_TEST_REDIS must be server or cluster, not {TEST_REDIS!r}")
ON_CLUSTER = TEST_REDIS == "cluster"

#: What ``redis_server`` yields: one server, or the cluster (``url`` names a startup node).
TestRedis = RedisServer | RedisClusterProcesses


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out what this Redis cannot run: ``single_redis`` on the cluster, ``cluster_only`` off it."""
    unfit = "single_redis" if ON_CLUSTER else "cluster_only"
    kept = [item for item in items if item.get_closest_marker(unfit) is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def _running(server: TestRedis) -> None:
    """Start the shared server again when a test stopped it (the cluster is never stopped)."""
    if isinstance(server, RedisServer) and server.process is None:
        server.start()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[TestRedis]:
    """One real redis-server (AOF on), or one real Redis Cluster, for the whole run."""
    server: TestRedis = RedisClusterProcesses() if ON_CLUSTER else RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _one_slot_per_command(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    On the cluster, every command any cluster client of the test sends is recorded; the
    test fails when one command, MULTI block or script names keys of two slots.
    """
    if not ON_CLUSTER or "redis_server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("redis_server")
    recorder = SlotRecorder(server.nodes[0].port)
    monkeypatch.setattr(redis.asyncio.cluster, "Connection", RecordingConnection)
    RecordingConnection.recorder = recorder
    try:
        yield
    finally:
        RecordingConnection.recorder = None
    problems = recorder.violations()
    assert not problems, "cross-slot Redis commands: " + "; ".join(problems[:10])


class WholeClusterClient(aioredis.RedisCluster):
    """The tests' cluster client: KEYS and DBSIZE look at every master, as on one server."""

    async def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:  # type: ignore[override]
        return await super().keys(pattern, target_nodes=aioredis.RedisCluster.PRIMARIES, **kwargs)

    async def dbsize(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return await super().dbsize(target_nodes=aioredis.RedisCluster.PRIMARIES, **kwargs)


def async_test_client(url: str) -> RedisClient:
    """A plain asyncio client of the test Redis (a cluster client on the cluster)."""
    if ON_CLUSTER:
        return WholeClusterClient.from_url(url)
    return aioredis.Redis.from_url(url)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone, so it may be stopped or frozen without hurting others."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)  # never leave it frozen
        server.close()


@pytest.fixture
def cli_env(redis_server: TestRedis, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """For CLI tests: TRACKSVC_* cleared, TRACKSVC_REDIS_URL the test Redis (flushed); a plain client."""
    _running(redis_server)
    for name in [k for k in os.environ if k.startswith("TRACKSVC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRACKSVC_REDIS_URL", redis_server.url)
    if ON_CLUSTER:
        monkeypatch.setenv("TRACKSVC_REDIS_CLUSTER", "true")
    client: Any = (redis.RedisCluster if ON_CLUSTER else redis.Redis).from_url(redis_server.url)
    client.flushall()  # on a cluster: every master
    yield client
    client.close()


@pytest.fixture
async def redis_client(redis_server: TestRedis) -> AsyncIterator[RedisClient]:
    """A client on a flushed database (on a cluster: every master flushed)."""
    _running(redis_server)
    client = async_test_client(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


class Sandbox:
    """A running sandbox: its base URL and its state."""

    def __init__(self, url: str, state: SandboxState) -> None:
        self.url = url
        self.state = state


async def serve_on_loopback(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on a free port of 127.0.0.1 (real HTTP): its runner, to clean up, and base URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """The carrier sandbox served on 127.0.0.1 (real HTTP)."""
    app = create_sandbox_app()
    runner, url = await serve_on_loopback(app)
    yield Sandbox(url, app[state_key])
    await runner.cleanup()


@pytest.fixture
def make_settings(redis_server: TestRedis) -> Callable[..., Settings]:
    """Settings for tests; carriers point at ``base_url`` (the sandbox) when given."""

    def factory(base_url: str | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": redis_server.url,
            "redis_cluster": ON_CLUSTER,
            "api_keys": "agent:agent-key,portal:portal-key,warehouse:warehouse-key,"
            "ingest:ingest-key,admin:admin-key",
            "carrier_timeout_s": 3.0,
            "carrier_retry_attempts": 3,
            # Tests drive refresher cycles themselves (or turn it on); a background one
            # would add carrier calls to every test that registers shipments.
            "refresher_enabled": False,
        }
        if ON_CLUSTER:
            # Six nodes share this machine's cores with the tests: one command can outlast the
            # 1 s default on a loaded CI box. The budget itself is tested on one server
            # (test_redis_faults freezes it); here it must not turn slowness into flags.
            values["redis_request_budget_s"] = 5.0
        for carrier in ("ups", "fedex", "usps"):
            values[f"{carrier}_client_id"] = f"{carrier}-test-id"
            values[f"{carrier}_client_secret"] = f"{carrier}-test-secret"
            if base_url:
                values[f"{carrier}_base_url"] = base_url
        if overrides.get("redis_url", redis_server.url) != redis_server.url:
            values["redis_cluster"] = False  # a server of the test's own (own_redis) is one server
        values.update(overrides)
        return Settings(**values)

    return factory


AGENT = {"Authorization": "Bearer agent-key"}
PORTAL = {"Authorization": "Bearer portal-key"}
WAREHOUSE = {"Authorization": "Bearer warehouse-key"}
INGEST = {"Authorization": "Bearer ingest-key"}
ADMIN = {"Authorization": "Bearer admin-key"}


@pytest.fixture
async def service(
    sandbox: Sandbox,
    redis_client: RedisClient,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
) -> Any:
    """The real service (create_app) on loopback, carriers pointing at the sandbox."""
    from tracksvc.app import create_app

    return await aiohttp_client(create_app(make_settings(sandbox.url)))


@pytest.fixture
def service_with(
    sandbox: Sandbox,
    redis_client: RedisClient,
    make_settings: Callable[..., Settings],
    aiohttp_client: Any,
) -> Callable[..., Any]:
    """Build the service with settings overrides: ``await service_with(cache_ttl_active_s=0)``."""
    from tracksvc.app import create_app

    async def build(**overrides: Any) -> Any:
        return await aiohttp_client(create_app(make_settings(sandbox.url, **overrides)))

    return build
