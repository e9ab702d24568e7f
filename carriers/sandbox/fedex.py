"""fedex emulation for the sandbox (to be written)."""

from __future__ import annotations

from aiohttp import web

from carriers.sandbox.state import SandboxState


def install(app: web.Application, state: SandboxState) -> None:
    """Register the fedex token and tracking routes."""
