"""
The ``tracksvc`` command: serve, sandbox, demo, track, import, stalled, refresher.

Settings come from the environment (``TRACKSVC_*``); flags override the few
that matter on a command line. Exit codes are shared by every command
(:mod:`tracksvc.cli.say`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

import orjson
from aiohttp import web
from pydantic import ValidationError

from tracksvc.app import create_app
from tracksvc.cli.inprocess import run_standalone
from tracksvc.cli.listen import CannotListen, listen
from tracksvc.cli.registry_commands import add_registry_commands
from tracksvc.cli.say import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TROUBLE,
    fail,
    redis_unreachable,
)
from tracksvc.cli.track import add_track_command
from tracksvc.cli.workers import run_workers
from tracksvc.core.errors import RegistryUnavailable
from tracksvc.core.logs import configure_logging
from tracksvc.core.settings import Settings
from tracksvc.dev.demo import run_demo
from tracksvc.dev.sandbox import run_sandbox

#: The top-level help, in plain words (the module docstring is for readers of the code).
DESCRIPTION = textwrap.fill(
    "tracksvc answers 'where is this order, really?': it maps order, shipping and return "
    "numbers to UPS, FedEx and USPS tracking numbers and gives one status. Settings come "
    "from TRACKSVC_* environment variables (README, Configuration); the flags of each command "
    "override the few that matter on a command line. 'tracksvc COMMAND --help' tells more.",
    width=79,
)

#: Where the carrier sandbox listens by default (``tracksvc sandbox``).
SANDBOX_PORT = 8090
#: Where the demo's service listens by default.
DEMO_PORT = 8080


class _Parser(argparse.ArgumentParser):
    """argparse, with its complaints as whole sentences that point at ``--help`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        text = message[:1].upper() + message[1:]
        self.exit(EXIT_TROUBLE, f"{self.prog}: {text.rstrip('.')}. See {self.prog} --help.\n")


def _serve(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    configure_logging(settings)
    if args.workers > 1:
        if settings.port == 0:  # each worker would bind a port of its own
            return fail("--workers needs a fixed --port (0 would give each worker its own).")
        return run_workers(settings, args.workers)
    try:
        sock = listen(settings.host, settings.port)
    except CannotListen as exc:
        return fail(str(exc))
    web.run_app(create_app(settings), sock=sock, print=None)
    return EXIT_OK


def _worker_count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return count


def _sandbox(args: argparse.Namespace) -> int:
    try:
        sock = listen(args.host, args.port)
    except CannotListen as exc:
        return fail(str(exc))
    run_sandbox(sock, latency_ms=args.latency_ms)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    try:
        service = listen("127.0.0.1", args.port)
    except CannotListen as exc:
        return fail(str(exc))
    try:
        sandbox = listen("127.0.0.1", args.sandbox_port, flag="--sandbox-port")
    except CannotListen as exc:
        service.close()
        return fail(str(exc))
    return asyncio.run(run_demo(service, sandbox))


def _refresher(args: argparse.Namespace) -> int:
    settings = Settings()
    configure_logging(settings, cache_loggers=not args.once)  # one cycle: nothing cached outlives it
    report = asyncio.run(run_standalone(settings, once=args.once))
    if report is not None:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tracksvc`` command."""
    parser = _Parser(
        prog="tracksvc", description=DESCRIPTION, epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="run the HTTP service",
        description="Run the HTTP service until Ctrl-C or SIGTERM (exit 0). A port that is "
        "taken is one sentence and exit 2.",
    )
    serve.add_argument(
        "--host", default=None,
        help="address to listen on (default: TRACKSVC_HOST, else 127.0.0.1)",
    )
    serve.add_argument(
        "--port", type=int, default=None,
        help="port to listen on, 0 for any free one (default: TRACKSVC_PORT, else 8080)",
    )
    serve.add_argument(
        "--workers", type=_worker_count, default=1,
        help="service processes sharing the port (SO_REUSEPORT), stopped together on SIGTERM "
        "(default: %(default)s, in this process)",
    )
    serve.set_defaults(func=_serve)

    sandbox = sub.add_parser(
        "sandbox", help="run the carrier sandbox (UPS, FedEx and USPS emulation)",
        description="Serve the UPS, FedEx and USPS emulation the demo and the tests use, until "
        "Ctrl-C. Point TRACKSVC_UPS_BASE_URL (and FEDEX, USPS) at it, with any client id and secret.",
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    sandbox.add_argument(
        "--port", type=int, default=SANDBOX_PORT,
        help="port to listen on, 0 for any free one (default: %(default)s)",
    )
    sandbox.add_argument(
        "--latency-ms", type=float, default=0.0,
        help="milliseconds added to every carrier answer (default: %(default)g)",
    )
    sandbox.set_defaults(func=_sandbox)

    demo = sub.add_parser(
        "demo", help="Redis, carrier sandbox, service and seeded orders in one command",
        description="Start a private redis-server (unless TRACKSVC_REDIS_URL is set), the carrier "
        "sandbox and the service on 127.0.0.1, seed the demo orders, and print the URLs, API keys "
        "and the export lines that point the tracksvc command at them. Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--port", type=int, default=DEMO_PORT,
        help="port of the service, 0 for any free one (default: %(default)s)",
    )
    demo.add_argument(
        "--sandbox-port", type=int, default=0,
        help="port of the carrier sandbox (default: %(default)s, any free one)",
    )
    demo.set_defaults(func=_demo)

    add_track_command(sub)

    refresher = sub.add_parser(
        "refresher", help="run the background refresher (and webhook sender) alone, without HTTP",
        description="Ask the carriers about registered shipments before anyone looks them up, and "
        "send webhooks, without the HTTP service, until Ctrl-C or SIGTERM.",
    )
    refresher.add_argument(
        "--once", action="store_true",
        help="run one cycle, print its report as JSON and exit (default: off, run until stopped)",
    )
    refresher.set_defaults(func=_refresher)

    add_registry_commands(sub)  # import FILE, stalled
    return parser


#: Commands that configure logging themselves, with the settings they run with.
_CONFIGURE_OWN_LOGGING = frozenset({"serve", "refresher", "demo", "track"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tracksvc`` console script."""
    args = build_parser().parse_args(argv)
    try:
        if args.command not in _CONFIGURE_OWN_LOGGING:
            # One-shot commands log to stderr through the same redaction; nothing cached outlives them.
            configure_logging(Settings(), cache_loggers=False)
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ValidationError as exc:
        return fail(settings_problem(exc))
    except RegistryUnavailable:
        return fail(redis_unreachable(Settings(), f"so tracksvc {args.command} could not run"))


def settings_problem(exc: ValidationError) -> str:
    """A refused ``TRACKSVC_*`` value as one sentence, naming the variable (never its value)."""
    problems = [
        f"TRACKSVC_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
        if error["loc"] else error["msg"]
        for error in exc.errors()
    ]
    return "A setting is not valid (" + "; ".join(problems) + "): fix it in the environment."


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
