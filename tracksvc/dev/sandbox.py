"""``tracksvc sandbox``: the carrier emulator served on its own (a dev tool, like the demo)."""

from __future__ import annotations

from aiohttp import web

from carriers.sandbox.app import create_sandbox_app
from carriers.sandbox.state import SandboxState


def run_sandbox(*, host: str, port: int, latency_ms: float) -> None:
    """
    Serve the UPS, FedEx and USPS emulation until interrupted.

    Args:
        host: the address to listen on.
        port: the port to listen on.
        latency_ms: delay added to every carrier answer.
    """
    state = SandboxState(latency_s=latency_ms / 1000)
    print(f"carrier sandbox on http://{host}:{port} (UPS, FedEx, USPS)", flush=True)
    web.run_app(create_sandbox_app(state), host=host, port=port, print=None)
