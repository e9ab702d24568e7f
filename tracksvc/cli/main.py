"""
The ``tracksvc`` command: serve, sandbox, demo, track, import, stalled, refresher.

Settings come from the environment (``TRACKSVC_*``); flags override the few
that matter on a command line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import orjson
from aiohttp import web

from tracksvc.app import create_app
from tracksvc.cli.inprocess import run_standalone, track_once
from tracksvc.cli.registry_commands import add_registry_commands
from tracksvc.cli.workers import run_workers
from tracksvc.core.logs import configure_logging
from tracksvc.core.settings import Settings
from tracksvc.dev.demo import run_demo
from tracksvc.dev.sandbox import run_sandbox


def _serve(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings)
    if args.workers > 1:
        if settings.port == 0:  # each worker would bind a port of its own
            sys.stderr.write("tracksvc: --workers needs a fixed --port (0 would give each worker its own).\n")
            return 2
        return run_workers(settings, args.workers)
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)
    return 0


def _worker_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return count


def _sandbox(args: argparse.Namespace) -> int:
    run_sandbox(host=args.host, port=args.port, latency_ms=args.latency_ms)
    return 0


def _demo(args: argparse.Namespace) -> int:
    return asyncio.run(run_demo(port=args.port, sandbox_port=args.sandbox_port))


def _track(args: argparse.Namespace) -> int:
    settings = Settings()
    view = asyncio.run(track_once(settings, args.reference))
    sys.stdout.write(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if "error" not in view else 1


def _refresher(args: argparse.Namespace) -> int:
    settings = Settings()
    configure_logging(settings)
    report = asyncio.run(run_standalone(settings, once=args.once))
    if report is not None:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tracksvc`` command."""
    parser = argparse.ArgumentParser(prog="tracksvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--workers", type=_worker_count, default=1,
        help="service processes sharing the port (SO_REUSEPORT), stopped together on SIGTERM "
        "(default: %(default)s, in this process)",
    )
    serve.set_defaults(func=_serve)

    sandbox = sub.add_parser("sandbox", help="run the carrier sandbox (UPS, FedEx, USPS emulation)")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8090)
    sandbox.add_argument("--latency-ms", type=float, default=0.0)
    sandbox.set_defaults(func=_sandbox)

    demo = sub.add_parser("demo", help="Redis + sandbox + service + seeded orders, one command")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--sandbox-port", type=int, default=0)
    demo.set_defaults(func=_demo)

    track = sub.add_parser("track", help="look one reference up and print the agent view")
    track.add_argument("reference")
    track.set_defaults(func=_track)

    refresher = sub.add_parser(
        "refresher", help="run the background refresher (and webhook sender) alone, without HTTP"
    )
    refresher.add_argument("--once", action="store_true", help="one cycle, print its report, exit")
    refresher.set_defaults(func=_refresher)

    add_registry_commands(sub)  # import FILE, stalled
    return parser


#: Commands that configure logging themselves, with the settings they run with.
_CONFIGURE_OWN_LOGGING = frozenset({"serve", "refresher", "demo"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tracksvc`` console script."""
    args = build_parser().parse_args(argv)
    if args.command not in _CONFIGURE_OWN_LOGGING:
        # One-shot commands log to stderr through the same redaction; nothing cached outlives them.
        configure_logging(Settings(), cache_loggers=False)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
