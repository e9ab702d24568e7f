"""
``tracksvc demo``: everything in one command on a fresh machine.

Starts a private redis-server (unless ``TRACKSVC_REDIS_URL`` is set), the
carrier sandbox and the service on loopback, seeds the stories, asks the
carriers about every seeded label (so the warehouse list is true from its
first screen, not after the refresher's first cycles), prints numbers and
keys to try, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import signal
import socket
from dataclasses import dataclass

from aiohttp import web

from carriers.models import Carrier
from carriers.sandbox.app import create_sandbox_app
from carriers.sandbox.scenarios import CATALOGUE
from tracksvc.api.keys import refresher_key
from tracksvc.app import create_app
from tracksvc.core.logs import configure_logging
from tracksvc.core.redis import redis_client
from tracksvc.core.settings import Settings
from tracksvc.dev.redis_server import RedisServer
from tracksvc.dev.seed import Story, seed
from tracksvc.freshness.refresher import CycleReport, Refresher
from tracksvc.registry.store import Registry, on_warehouse_list


@dataclass(frozen=True)
class DemoKeys:
    """API keys minted for one demo run (never stored anywhere)."""

    agent: str
    portal: str
    warehouse: str
    ingest: str
    admin: str

    @classmethod
    def mint(cls) -> DemoKeys:
        """Fresh random keys for this run."""
        return cls(*(f"demo-{role}-{secrets.token_urlsafe(8)}" for role in cls.__annotations__))

    def env(self) -> str:
        """The TRACKSVC_API_KEYS value for these keys."""
        return ",".join(f"{role}:{getattr(self, role)}" for role in self.__annotations__)


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (0 picks a free port); return the runner and the port."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else port


def demo_settings(redis_url: str, sandbox_url: str, keys: DemoKeys, port: int) -> Settings:
    """Settings of the demo service: the sandbox for every carrier."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "port": port,
        "api_keys": keys.env(),
        "log_json": False,
        "log_level": os.environ.get("TRACKSVC_LOG_LEVEL", "warning"),
        # Demo webhook receivers run on this machine: let webhooks reach loopback and LANs.
        "webhook_allow_private_targets": True,
    }
    for carrier in ("ups", "fedex", "usps"):
        values[f"{carrier}_base_url"] = sandbox_url
        values[f"{carrier}_client_id"] = f"demo-{carrier}"
        values[f"{carrier}_client_secret"] = secrets.token_urlsafe(12)
    return Settings.model_validate(values)


async def serve_on(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve ``app`` on a socket already bound and listening; return its runner."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def run_demo(service_socket: socket.socket, sandbox_socket: socket.socket) -> int:
    """
    Run the demo until Ctrl-C (SIGINT) or SIGTERM.

    Args:
        service_socket: where the service listens (bound by the caller, so a taken port
            is refused before anything starts).
        sandbox_socket: where the carrier sandbox listens.
    """
    host, port = service_socket.getsockname()[:2]
    sandbox_port = sandbox_socket.getsockname()[1]
    redis_server: RedisServer | None = None
    redis_url = os.environ.get("TRACKSVC_REDIS_URL")
    if not redis_url:
        redis_server = RedisServer()
        redis_server.start()
        redis_url = redis_server.url
    runners: list[web.AppRunner] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        runners.append(await serve_on(create_sandbox_app(), sandbox_socket))
        sandbox_url = f"http://{host}:{sandbox_port}"
        keys = DemoKeys.mint()
        settings = demo_settings(redis_url, sandbox_url, keys, port)
        configure_logging(settings)
        app = create_app(settings)
        runners.append(await serve_on(app, service_socket))
        stories = await seed_demo(redis_url)
        await check_seeded_labels(app[refresher_key], stories)
        print_banner(f"http://{host}:{port}", sandbox_url, redis_url, keys, stories, cli_exports(settings))
        await stop.wait()
        print("\nStopping the service, the carrier sandbox and redis.", flush=True)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        if redis_server is not None:
            redis_server.close()
    return 0


def cli_exports(settings: Settings) -> list[str]:
    """
    The ``export`` lines that point the ``tracksvc`` CLI at the demo's Redis and carrier sandbox.

    The carrier credentials are the demo's own, good only against its sandbox.
    """
    lines = [f"export TRACKSVC_REDIS_URL={shlex.quote(settings.redis_url or '')}"]
    for carrier in Carrier:
        config = settings.carrier(carrier)
        env = f"TRACKSVC_{carrier.value.upper()}"
        lines.append(
            f"export {env}_BASE_URL={shlex.quote(config.base_url)} "
            f"{env}_CLIENT_ID={shlex.quote(config.client_id.get_secret_value())} "
            f"{env}_CLIENT_SECRET={shlex.quote(config.client_secret.get_secret_value())}"
        )
    return lines


async def seed_demo(redis_url: str) -> list[Story]:
    """Write the seed stories and the one-order-per-status set to the demo's registry."""
    client = redis_client(redis_url)
    try:
        return await seed(Registry(client))
    finally:
        await client.aclose()


async def check_seeded_labels(refresher: Refresher, stories: list[Story]) -> CycleReport:
    """
    Ask the carriers about every seeded label the warehouse list would show, now.

    What a refresher cycle does for them, at once: a label the carrier has
    scanned or voided leaves the list, the others carry the time they were checked.
    """
    ids = [s.shipment_id for story in stories for s in story.shipments if on_warehouse_list(s)]
    return await refresher.refresh_now(ids)


#: The last line of the banner: what a script waits for before using the demo.
READY_LINE = "Ready. Ctrl-C stops the service, the sandbox and redis."


def columns(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    """Rows as lines whose columns line up, each as wide as its widest cell (the last one is not padded)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent + "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def print_banner(
    service_url: str,
    sandbox_url: str,
    redis_url: str,
    keys: DemoKeys,
    stories: list[Story],
    exports: list[str],
) -> None:
    """Tell the person at the terminal what to open, paste and try."""
    lines = [
        "",
        f"tracksvc demo is running on {service_url}",
        f"  carrier sandbox: {sandbox_url}    redis: {redis_url}",
        "",
        "Open in a browser (the key rides in the URL fragment, which is never sent to the server):",
        f"  helpdesk sidebar: {service_url}/ui/sidebar#key={keys.agent}",
        f"  warehouse list:   {service_url}/ui/warehouse#key={keys.warehouse}",
        "",
        "API keys for this run (send as 'Authorization: Bearer <key>'):",
        *columns([(role, getattr(keys, role)) for role in keys.__annotations__]),
        "",
        "Paste these in the sidebar (the stories tracksvc exists for):",
    ]
    told: list[tuple[str, ...]] = []
    for story in stories:
        if story.key.startswith("status-"):
            continue
        extra = [f for f in story.expect_flags if f != story.expect_status.value]
        expect = story.expect_status.value + (" + " + ", ".join(extra) if extra else "")
        told.append((story.reference, expect, story.title))
    lines += columns(told)
    lines += ["", "One order per status:"]
    lines += columns([
        (story.reference, story.expect_status.value, story.title)
        for story in stories if story.key.startswith("status-")
    ])
    lines += ["", f"Unregistered sandbox tracking numbers ({len(CATALOGUE)}) work too, e.g.:"]
    lines += columns([(s.number, s.expect.value, s.description) for s in CATALOGUE[:3]])
    portal = next((s for s in stories if s.key == "ups-17-days"), None)
    lines += [
        "",
        "Point the tracksvc command at this demo's Redis and carrier sandbox (paste in another shell):",
        *(f"  {line}" for line in exports),
        "  .venv/bin/tracksvc track W2001002",
        "",
        "Try:",
        f"  curl -s -H 'Authorization: Bearer {keys.agent}' {service_url}/v1/track/W2001002",
    ]
    if portal is not None and portal.orders and portal.orders[0].destination_postal_code:
        lines.append(
            f"  curl -s -H 'Authorization: Bearer {keys.portal}' "
            f"'{service_url}/v1/portal/orders/{portal.reference}"
            f"?postal_code={portal.orders[0].destination_postal_code}'"
        )
    lines += ["", READY_LINE, ""]
    print("\n".join(lines), flush=True)
