"""``tracksvc sandbox``: the carrier emulator served on its own (a dev tool, like the demo)."""

from __future__ import annotations

import socket

from aiohttp import web

from carriers.sandbox.app import create_sandbox_app
from carriers.sandbox.state import SandboxState


def run_sandbox(sock: socket.socket, *, latency_ms: float) -> None:
    """
    Serve the UPS, FedEx and USPS emulation until interrupted.

    Args:
        sock: where to listen, already bound (a taken port was refused before this).
        latency_ms: delay added to every carrier answer.
    """
    host, port = sock.getsockname()[:2]
    state = SandboxState(latency_s=latency_ms / 1000)
    print(
        f"The carrier sandbox (UPS, FedEx, USPS) listens on http://{host}:{port}; Ctrl-C stops it.",
        flush=True,
    )
    web.run_app(create_sandbox_app(state), sock=sock, print=None)
