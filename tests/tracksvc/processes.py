"""
Running ``python -m tracksvc`` as a real process in tests: a clean environment, carriers
pointed at the sandbox, one command run to its end, or a server waited for until it listens.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**values: str) -> dict[str, str]:
    """The test's environment without any TRACKSVC_* variable, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSVC_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


def carriers_at(url: str, *, credentials: bool = True) -> dict[str, str]:
    """TRACKSVC_* variables pointing every carrier at ``url`` (with or without credentials)."""
    env: dict[str, str] = {}
    for carrier in ("UPS", "FEDEX", "USPS"):
        env[f"TRACKSVC_{carrier}_BASE_URL"] = url
        if credentials:
            env[f"TRACKSVC_{carrier}_CLIENT_ID"] = f"{carrier.lower()}-test-id"
            env[f"TRACKSVC_{carrier}_CLIENT_SECRET"] = f"{carrier.lower()}-test-secret"
    return env


async def run_tracksvc(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``python -m tracksvc ARGS`` with stdout and stderr piped: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracksvc", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until ``process`` listens on ``port`` on loopback (fails when it exits or never does)."""
    for _ in range(300):
        assert process.poll() is None, "tracksvc serve exited early"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError(f"port {port} never listened")
