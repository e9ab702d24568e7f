"""
What the registry benchmarks share: a private Redis, the carrier sandbox and
the real service (``create_app``) on loopback, and small timing helpers.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``python bench/<name>.py``
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from carriers.sandbox.app import create_sandbox_app  # noqa: E402
from carriers.sandbox.state import SandboxState  # noqa: E402
from tracksvc.app import create_app  # noqa: E402
from tracksvc.core.logs import configure_logging  # noqa: E402
from tracksvc.core.settings import Settings  # noqa: E402
from tracksvc.dev.demo import start_site  # noqa: E402
from tracksvc.dev.redis_server import RedisServer  # noqa: E402

AGENT_KEY = "bench-agent-key"
INGEST_KEY = "bench-ingest-key"
WAREHOUSE_KEY = "bench-warehouse-key"


@dataclass
class Stack:
    """A running Redis + sandbox + service."""

    redis: RedisServer
    sandbox: SandboxState
    sandbox_url: str
    service_url: str
    settings: Settings


def service_settings(redis_url: str, sandbox_url: str, **overrides: object) -> Settings:
    """Service settings for a benchmark: sandbox carriers, quiet logs, no background refresher."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "api_keys": f"agent:{AGENT_KEY},ingest:{INGEST_KEY},warehouse:{WAREHOUSE_KEY}",
        "log_level": "warning",
        "refresher_enabled": False,
    }
    for carrier in ("ups", "fedex", "usps"):
        values[f"{carrier}_base_url"] = sandbox_url
        values[f"{carrier}_client_id"] = f"bench-{carrier}"
        values[f"{carrier}_client_secret"] = "bench-secret"
    values.update(overrides)
    return Settings.model_validate(values)


@asynccontextmanager
async def stack(**overrides: object) -> AsyncIterator[Stack]:
    """Start a private redis-server, the sandbox and the service; stop them after."""
    with RedisServer() as redis_server:
        state = SandboxState()
        sandbox_runner, sandbox_port = await start_site(create_sandbox_app(state), "127.0.0.1", 0)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        settings = service_settings(redis_server.url, sandbox_url, **overrides)
        configure_logging(settings)
        runner: web.AppRunner | None = None
        try:
            runner, port = await start_site(create_app(settings), "127.0.0.1", 0)
            yield Stack(redis_server, state, sandbox_url, f"http://127.0.0.1:{port}", settings)
        finally:
            if runner is not None:
                await runner.cleanup()
            await sandbox_runner.cleanup()


def median_ms(samples: list[float]) -> float:
    """The median of samples in seconds, in milliseconds."""
    return statistics.median(samples) * 1000


def p90_ms(samples: list[float]) -> float:
    """The 90th percentile of samples in seconds, in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))] * 1000


class Stopwatch:
    """``with Stopwatch() as watch: ...; watch.elapsed_s``."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.elapsed_s = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed_s = time.perf_counter() - self.started
