"""
The registry commands of the ``tracksvc`` CLI: ``import FILE`` and ``stalled``.

Both talk to the registry in Redis directly (``TRACKSVC_REDIS_URL``), not to
a running service, so a warehouse can load a file or print its list on a
machine that only reaches Redis.

Exit codes: 0 done; 1 some rows were rejected (import); 2 bad arguments or
an unreadable file (a CSV header that cannot be read); 3 Redis could not be
reached (an import cut short says how many rows were committed and the line
to resume from).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import IO, Any

import orjson
from tqdm import tqdm

from tracksvc.api.routes.track import NOT_YET_CHECKED, STALLED_CSV_COLUMNS, stalled_csv_rows, stalled_row
from tracksvc.core.errors import ImportInterrupted, RegistryUnavailable, ValidationFailed
from tracksvc.core.redis import redis_client
from tracksvc.core.settings import Settings
from tracksvc.domain.safe_csv import write_csv
from tracksvc.registry.importer import ImportFormat, ImportReport, import_lines
from tracksvc.registry.store import Registry

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: File name endings and the format they mean.
FORMAT_BY_SUFFIX = {
    ".csv": ImportFormat.csv,
    ".ndjson": ImportFormat.ndjson,
    ".jsonl": ImportFormat.ndjson,
    ".json": ImportFormat.ndjson,
}

EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

#: Most rows one ``tracksvc stalled`` page prints.
MAX_STALLED_LIMIT = 100_000


def add_registry_commands(sub: Any) -> None:
    """Add ``import`` and ``stalled`` to the ``tracksvc`` subcommands."""
    imp = sub.add_parser(
        "import", help="load shipments from an NDJSON or CSV file into the registry",
        description="Load shipments into the registry at TRACKSVC_REDIS_URL. Exit 1 if a row was "
        "rejected, 2 on a bad file or argument, 3 if Redis cannot be reached.",
    )
    imp.add_argument("file", type=Path, help="NDJSON (.ndjson, .jsonl) or CSV (.csv) file")
    imp.add_argument("--format", choices=[f.value for f in ImportFormat], default=None,
                     help="the file's format (default: from its extension)")
    imp.add_argument("--json", action="store_true", help="print the report as JSON")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    imp.set_defaults(func=run_import)

    stalled = sub.add_parser(
        "stalled", help="labels printed and never scanned by the carrier, oldest first",
        description="The warehouse list from the registry at TRACKSVC_REDIS_URL.",
    )
    stalled.add_argument("--origin", default=None, help="one warehouse or store id")
    stalled.add_argument("--older-than-hours", type=float, default=None,
                         help="printed at least this long ago (default TRACKSVC_TENDER_GRACE_HOURS)")
    stalled.add_argument("--limit", type=int, default=100, help=f"rows to print (1-{MAX_STALLED_LIMIT})")
    stalled.add_argument("--cursor", default=None, help="continue after the previous page")
    stalled.add_argument("--csv", action="store_true", help="CSV with a header row instead of a table")
    stalled.set_defaults(func=run_stalled)


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"tracksvc: {message}\n")
    return code


# -- import ------------------------------------------------------------------


def file_format(path: Path, wanted: str | None) -> ImportFormat | None:
    """The format asked for, else the one the file name says (None: cannot tell)."""
    if wanted:
        return ImportFormat(wanted)
    return FORMAT_BY_SUFFIX.get(path.suffix.lower())


def count_lines(handle: IO[bytes]) -> int:
    """Lines in a binary file (the progress bar's total); rewinds it."""
    total = 0
    last = b"\n"
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        total += chunk.count(b"\n")
        last = chunk[-1:]
    handle.seek(0)
    return total + (last != b"\n")


async def _lines(handle: Iterable[bytes]) -> AsyncIterator[bytes]:
    for line in handle:
        yield line.rstrip(b"\r\n")


async def import_file(
    handle: IO[bytes], fmt: ImportFormat, redis_url: str, *, show_progress: bool, cluster: bool = False
) -> ImportReport:
    """Import one open file into the registry, with a progress bar on stderr."""
    total = count_lines(handle)
    client = redis_client(redis_url, cluster=cluster)
    bar = tqdm(total=total, unit=" lines", file=sys.stderr, disable=not show_progress, mininterval=0.5)
    try:
        return await import_lines(
            _lines(handle), fmt, Registry(client), progress=lambda done: bar.update(done - bar.n)
        )
    finally:
        bar.close()
        await client.aclose()


def report_text(report: ImportReport, name: str) -> str:
    """The import report in words, one line per refused row."""
    lines = [f"{name}: {report.accepted} rows imported, {report.rejected} rejected"]
    for error in report.errors:
        for item in error.errors:
            lines.append(f"  line {error.line}: {item['field']}: {item['message']}")
    if report.rejected > len(report.errors):
        lines.append(f"  ... {report.rejected - len(report.errors)} more rejected rows not listed")
    if report.truncated:
        lines.append("  the row limit was reached: the rest of the file was not read")
    return "\n".join(lines) + "\n"


def run_import(args: argparse.Namespace) -> int:
    """``tracksvc import FILE``."""
    fmt = file_format(args.file, args.format)
    if fmt is None:
        return _fail(f"cannot tell the format of {args.file.name}: use --format ndjson|csv", EXIT_USAGE)
    settings = Settings()
    url = settings.redis_url or DEFAULT_REDIS_URL
    started = time.perf_counter()
    try:
        with args.file.open("rb") as handle:
            report = asyncio.run(import_file(
                handle, fmt, url, show_progress=not args.no_progress, cluster=settings.redis_cluster
            ))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror or exc}", EXIT_USAGE)
    except ValidationFailed as exc:
        return _fail(f"{args.file.name}: {exc.message}", EXIT_USAGE)
    except ImportInterrupted as exc:
        return _fail(
            f"{args.file.name}: {exc.message} (TRACKSVC_REDIS_URL)\n"
            f"committed_rows={exc.committed_rows} resume_from_line={exc.resume_line}",
            EXIT_UNREACHABLE,
        )
    except RegistryUnavailable as exc:
        return _fail(f"{exc} (TRACKSVC_REDIS_URL)", EXIT_UNREACHABLE)
    elapsed_s = time.perf_counter() - started
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_dict()).decode() + "\n")
    else:
        sys.stdout.write(report_text(report, args.file.name))
        sys.stdout.write(f"  {elapsed_s:.1f} s\n")
    return EXIT_REJECTED if report.rejected else 0


# -- stalled -----------------------------------------------------------------


async def stalled_page(
    redis_url: str, *, older_than_h: float, origin: str | None, limit: int, cursor: str | None,
    cluster: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the warehouse list, as the HTTP route's rows."""
    client = redis_client(redis_url, cluster=cluster)
    try:
        now = time.time()
        labels, next_cursor = await Registry(client).stalled(
            before_ts=now - older_than_h * 3600, origin=origin, limit=limit, cursor=cursor
        )
    finally:
        await client.aclose()
    return [stalled_row(label, now) for label in labels], next_cursor


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table with a header line."""
    headers = (
        "shipment", "order", "carrier", "tracking number", "origin", "label printed (UTC)", "hours",
        "carrier checked (UTC)",
    )
    cells = [
        (
            r["shipment_id"], r["order_number"] or "-", r["carrier"], r["tracking_number"],
            r["origin"] or "-", r["label_created_at"][:16].replace("T", " "), f"{r['hours_since_label']:.1f}",
            (r["carrier_checked_at"] or NOT_YET_CHECKED)[:16].replace("T", " "),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), *(line(c) for c in cells)]) + "\n"


def run_stalled(args: argparse.Namespace) -> int:
    """``tracksvc stalled``."""
    settings = Settings()
    older_than_h = settings.tender_grace_hours if args.older_than_hours is None else args.older_than_hours
    if not 0 <= older_than_h <= 24 * 3650:
        return _fail("--older-than-hours must be from 0 to 87600", EXIT_USAGE)
    if not 1 <= args.limit <= MAX_STALLED_LIMIT:
        return _fail(f"--limit must be from 1 to {MAX_STALLED_LIMIT}", EXIT_USAGE)
    try:
        rows, next_cursor = asyncio.run(stalled_page(
            settings.redis_url or DEFAULT_REDIS_URL, older_than_h=older_than_h,
            origin=args.origin, limit=args.limit, cursor=args.cursor, cluster=settings.redis_cluster,
        ))
    except ValidationFailed as exc:
        return _fail(exc.message, EXIT_USAGE)
    except RegistryUnavailable as exc:
        return _fail(f"{exc} (TRACKSVC_REDIS_URL)", EXIT_UNREACHABLE)
    if args.csv:
        write_csv(sys.stdout, STALLED_CSV_COLUMNS, stalled_csv_rows(rows))
    elif rows:
        sys.stdout.write(table(rows))
    else:
        where = f" at {args.origin}" if args.origin else ""
        sys.stdout.write(
            f"No labels{where} printed more than {older_than_h:g} h ago wait for a carrier scan.\n"
        )
    if next_cursor:
        sys.stderr.write(f"more labels: tracksvc stalled --cursor {next_cursor}\n")
    return 0
