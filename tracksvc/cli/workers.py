"""
``tracksvc serve --workers N``: N service processes on one port, and their supervisor.

Each worker is its own process (``python -m tracksvc.cli.workers HOST PORT``), with its
own event loop and its own ``create_app(settings)`` (settings from the inherited
``TRACKSVC_*`` environment); all of them listen on the same port with ``SO_REUSEPORT``,
so the kernel spreads new connections over them. They share nothing but Redis, which is
where the single flight, the budgets and the caches already live.

The supervisor (the parent) forwards SIGTERM and SIGINT to every worker, waits for each
to stop (then kills the ones that do not), and exits non-zero when a worker died on its
own, after stopping the others (exit 2, like every command that could not do its job).
Workers run in their own process group, so a Ctrl-C at the terminal reaches them once,
through the supervisor.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import structlog
from aiohttp import web

from tracksvc.app import create_app
from tracksvc.cli.listen import CannotListen, listen
from tracksvc.cli.say import EXIT_OK, EXIT_TROUBLE, fail
from tracksvc.core.logs import configure_logging
from tracksvc.core.settings import Settings

log = structlog.get_logger("workers")

#: Signals the supervisor passes on to every worker.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: How often the supervisor looks at its workers while nothing happens.
_POLL_S = 0.2


def run_worker(host: str, port: int) -> int:
    """
    Serve the app in this process on ``host:port``, sharing the port (``SO_REUSEPORT``).

    Args:
        host: address to listen on.
        port: port to listen on, the same for every worker.

    Returns:
        0 when stopped by a signal; 2 when the port could not be bound (said on stderr).
    """
    settings = Settings(host=host, port=port)
    try:
        sock = listen(host, port, reuse_port=True)
    except CannotListen as exc:
        return fail(str(exc))
    configure_logging(settings)
    web.run_app(create_app(settings), sock=sock, print=None)
    return EXIT_OK


def _start(host: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tracksvc.cli.workers", host, str(port)],
        process_group=0,  # only the supervisor signals it
    )


def _signal_all(workers: Sequence[subprocess.Popen[bytes]], signum: int, signalled: set[int]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signum)
            signalled.add(worker.pid)


def _stop_all(workers: Sequence[subprocess.Popen[bytes]], signalled: set[int], timeout_s: float) -> bool:
    """SIGTERM workers not yet signalled, wait ``timeout_s``, kill the rest; True if all exited 0."""
    _signal_all([w for w in workers if w.pid not in signalled], signal.SIGTERM, signalled)
    deadline = time.monotonic() + timeout_s
    clean = True
    for worker in workers:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker_killed", pid=worker.pid, timeout_s=timeout_s)
            worker.kill()
            worker.wait()
            clean = False
    return clean and all(worker.returncode == 0 for worker in workers)


def run_workers(settings: Settings, count: int, *, stop_timeout_s: float = 10.0) -> int:
    """
    Run ``count`` worker processes on ``settings.host:settings.port`` until a signal or a death.

    Args:
        settings: where to listen (the workers read the rest from the environment).
        count: number of worker processes, at least 1.
        stop_timeout_s: how long stopping workers get before they are killed.

    Returns:
        0 when stopped by SIGTERM/SIGINT and every worker exited cleanly; 2 when the port
        cannot be bound (said on stderr, no worker started), a worker died or one had to be killed.
    """
    try:  # a taken port is one sentence here, not one traceback per worker
        listen(settings.host, settings.port, reuse_port=True).close()
    except CannotListen as exc:
        return fail(str(exc))
    received: list[int] = []
    workers: list[subprocess.Popen[bytes]] = []
    signalled: set[int] = set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        _signal_all(workers, signum, signalled)

    previous = {signum: signal.signal(signum, on_signal) for signum in FORWARDED_SIGNALS}
    try:
        for _ in range(count):
            if received:
                break
            workers.append(_start(settings.host, settings.port))
        log.info("workers_started", count=len(workers), port=settings.port)
        died: subprocess.Popen[bytes] | None = None
        while not received and died is None:
            died = next((worker for worker in workers if worker.poll() is not None), None)
            if died is None:
                time.sleep(_POLL_S)
        if died is not None:
            log.error("worker_died", pid=died.pid, returncode=died.returncode)
        clean = _stop_all(workers, signalled, stop_timeout_s)
        log.info("workers_stopped", clean=clean, signal=received[0] if received else None)
        return EXIT_OK if clean and died is None else EXIT_TROUBLE
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":  # a worker, started by the supervisor
    raise SystemExit(run_worker(sys.argv[1], int(sys.argv[2])))
