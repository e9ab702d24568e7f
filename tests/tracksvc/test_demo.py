"""
``tracksvc demo`` as a person runs it, its output piped: a real process, a real lookup, the
banner's export lines driving ``tracksvc track``, Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import aiohttp
import orjson

from tracksvc.dev.demo import READY_LINE
from tracksvc.dev.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> dict[int, str]:
    """Direct children of ``pid`` and their command names, from /proc."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found[int(entry.name)] = name
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def aligned(block: list[str]) -> bool:
    """Whether the columns of a banner table (cells apart by 2+ spaces) start at the same offsets."""
    starts = [[m.start() for m in re.finditer(r"(?:(?<=^)|(?<=\s{2}))\S", line)] for line in block]
    return len({len(s) for s in starts}) == 1 and all(s == starts[0] for s in starts)


def table_after(text: str, heading: str) -> list[str]:
    """The lines of the banner table under ``heading``, up to the blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading)) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return lines[start:end]


async def test_demo_serves_the_stories_and_stops_cleanly_on_ctrl_c() -> None:
    """
    The banner gives a working agent key and page URLs, aligned tables and the export lines
    that make ``tracksvc track`` answer from the demo; its piped output holds no ANSI colour;
    Ctrl-C exits 0 and takes redis with it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKSVC_")}
    env["PYTHONPATH"] = str(ROOT)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracksvc", "demo", "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    banner: list[str] = []
    try:
        async with asyncio.timeout(60):
            while READY_LINE not in banner:
                line = await proc.stdout.readline()
                assert line, "the demo exited before it was ready:\n" + "\n".join(banner)
                banner.append(line.decode().rstrip())
        text = "\n".join(banner)
        agent = re.search(r"^\s+agent\s+(\S+)$", text, re.MULTILINE)
        assert agent is not None, text
        base = f"http://127.0.0.1:{port}"
        assert f"{base}/ui/sidebar#key={agent.group(1)}" in text
        assert re.search(rf"{re.escape(base)}/ui/warehouse#key=demo-warehouse-\S+", text)
        assert re.search(r"^\s+W2001002\s+not_tendered\b", text, re.MULTILINE)
        assert "\x1b[" not in text  # stdout and stderr (the log lines) go to a pipe here
        assert "[warning" in text  # and the demo's log lines were among them
        for heading in ("Paste these", "One order per status", "Unregistered sandbox"):
            block = table_after(text, heading)
            assert len(block) >= 3, text
            assert aligned(block), "\n".join(block)
        env_of_cli = dict(env)  # what pasting the banner's export lines in a new shell gives
        for line in text.splitlines():
            if line.strip().startswith("export "):
                for word in shlex.split(line)[1:]:
                    name, _, value = word.partition("=")
                    env_of_cli[name] = value
        assert {"TRACKSVC_REDIS_URL", "TRACKSVC_UPS_BASE_URL", "TRACKSVC_USPS_CLIENT_ID"} <= set(env_of_cli)
        track = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tracksvc", "track", "W2001002", cwd=ROOT, env=env_of_cli,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(track.communicate(), 60)
        assert track.returncode == 0, err.decode()
        assert err == b""
        assert orjson.loads(out)["status"] == "not_tendered"
        redis_children = [pid for pid, name in _children(proc.pid).items() if name == "redis-server"]
        assert len(redis_children) == 1

        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {agent.group(1)}"}
            async with session.get(f"{base}/v1/track/W2001002", headers=headers) as response:
                assert response.status == 200
                body = await response.json()
        assert body["status"] == "not_tendered"
        assert body["order_number"] == "W2001002"
        assert body["shipments"][0]["carrier"] == "ups"

        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            rest, _ = await proc.communicate()
        assert proc.returncode == 0, rest.decode()
        assert not _alive(redis_children[0])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
