"""
The registry commands of the ``tracksvc`` CLI: ``import FILE`` and ``stalled``.

Both talk to the registry in Redis directly (``TRACKSVC_REDIS_URL``), not to
a running service, so a warehouse can load a file or print its list on a
machine that only reaches Redis.

Exit codes (:mod:`tracksvc.cli.say`): 0 done; 1 some rows were rejected
(import); 2 could not do it: bad arguments, an unreadable file (a CSV header
that cannot be read), or Redis could not be reached (an import cut short says
how many rows were committed and the line to resume from).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from redis.exceptions import RedisError
from tqdm import tqdm

from tracksvc.api.routes.track import NOT_YET_CHECKED, STALLED_CSV_COLUMNS, stalled_csv_rows, stalled_row
from tracksvc.app import DEFAULT_REDIS_URL
from tracksvc.cli.say import EXIT_NO, EXIT_OK, fail, redis_unreachable, say
from tracksvc.core.errors import ImportInterrupted, RegistryUnavailable, ValidationFailed
from tracksvc.core.redis import redis_client
from tracksvc.core.settings import Settings
from tracksvc.domain.safe_csv import write_csv
from tracksvc.registry.importer import ImportFormat, ImportReport, import_lines
from tracksvc.registry.store import Registry, unscanned_key

#: File name endings and the format they mean.
FORMAT_BY_SUFFIX = {
    ".csv": ImportFormat.csv,
    ".ndjson": ImportFormat.ndjson,
    ".jsonl": ImportFormat.ndjson,
    ".json": ImportFormat.ndjson,
}

#: Most rows one ``tracksvc stalled`` page prints, and how many it prints unless told.
MAX_STALLED_LIMIT = 100_000
LIMIT_DEFAULT = 100


def add_registry_commands(sub: Any) -> None:
    """Add ``import`` and ``stalled`` to the ``tracksvc`` subcommands."""
    imp = sub.add_parser(
        "import", help="load shipments from an NDJSON or CSV file into the registry",
        description="Load shipments into the registry at TRACKSVC_REDIS_URL. Exit 0 when every "
        "row was imported, 1 when a row was rejected (each one listed), 2 on a bad file or "
        "argument or when Redis cannot be reached.",
    )
    imp.add_argument(
        "file", type=Path,
        help="NDJSON (.ndjson, .jsonl, .json) or CSV (.csv) file (required, no default)",
    )
    imp.add_argument("--format", choices=[f.value for f in ImportFormat], default=None,
                     help="the file's format (default: from its extension)")
    imp.add_argument("--json", action="store_true",
                     help="print the report as JSON (default: off, a report in words)")
    imp.add_argument("--no-progress", action="store_true",
                     help="no progress bar on stderr (default: off, a bar when stderr is a terminal)")
    imp.set_defaults(func=run_import)

    stalled = sub.add_parser(
        "stalled", help="labels printed and never scanned by the carrier, oldest first",
        description="The warehouse list from the registry at TRACKSVC_REDIS_URL: labels printed "
        "and never scanned by the carrier, oldest first, with when a carrier was last asked. "
        "Exit 0 when the list was printed (even empty), 2 on a bad argument or when Redis "
        "cannot be reached.",
    )
    stalled.add_argument("--origin", default=None,
                         help="only labels from this warehouse or store id, matched exactly "
                         "(default: every origin)")
    stalled.add_argument("--older-than-hours", type=float, default=None,
                         help="only labels printed at least this many hours ago "
                         "(default: TRACKSVC_TENDER_GRACE_HOURS, else 48)")
    stalled.add_argument("--limit", type=int, default=LIMIT_DEFAULT,
                         help=f"rows per page, 1 to {MAX_STALLED_LIMIT} (default: %(default)s)")
    stalled.add_argument("--cursor", default=None,
                         help="continue after the previous page, as printed on stderr "
                         "(default: the first page)")
    stalled.add_argument("--csv", action="store_true",
                         help="CSV with a header row (default: off, an aligned table)")
    stalled.set_defaults(func=run_stalled)


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
    lines = [f"{name}: {report.accepted} rows imported, {report.rejected} rejected."]
    for error in report.errors:
        for item in error.errors:
            lines.append(f"  line {error.line}: {item['field']}: {item['message']}")
    if report.rejected > len(report.errors):
        lines.append(f"  {report.rejected - len(report.errors)} more rejected rows are not listed.")
    if report.truncated:
        lines.append("  The row limit was reached: the rest of the file was not read.")
    return "\n".join(lines) + "\n"


def run_import(args: argparse.Namespace) -> int:
    """``tracksvc import FILE``."""
    fmt = file_format(args.file, args.format)
    if fmt is None:
        return fail(
            f"Cannot tell the format of {args.file.name} from its name: "
            "add --format ndjson or --format csv."
        )
    settings = Settings()
    url = settings.redis_url or DEFAULT_REDIS_URL
    started = time.perf_counter()
    try:
        with args.file.open("rb") as handle:
            report = asyncio.run(import_file(
                handle, fmt, url, show_progress=not args.no_progress, cluster=settings.redis_cluster
            ))
    except OSError as exc:
        return fail(f"Cannot read {args.file}: {exc.strerror or exc}.")
    except ValidationFailed as exc:
        return fail(f"{args.file.name} was not imported: {_sentence(exc.message)}")
    except ImportInterrupted as exc:
        if exc.committed_rows == 0 and exc.rejected_rows == 0:
            return fail(redis_unreachable(settings, f"so {args.file.name} was not imported"))
        return fail(
            f"{args.file.name}: {_sentence(exc.message)}\n"
            f"committed_rows={exc.committed_rows} resume_from_line={exc.resume_line}"
        )
    except RegistryUnavailable:
        return fail(redis_unreachable(settings, f"so {args.file.name} was not imported"))
    elapsed_s = time.perf_counter() - started
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_dict()).decode() + "\n")
    else:
        sys.stdout.write(report_text(report, args.file.name))
        sys.stdout.write(f"  It took {elapsed_s:.1f} s.\n")
    return EXIT_NO if report.rejected else EXIT_OK


# -- stalled -----------------------------------------------------------------


@dataclass(frozen=True)
class StalledPage:
    """One page of the warehouse list, as the HTTP route's rows."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    #: Unscanned labels of the asked origin at any age (None: no origin asked, or rows found).
    origin_unscanned: int | None = None


async def stalled_page(
    redis_url: str, *, older_than_h: float, origin: str | None, limit: int, cursor: str | None,
    cluster: bool = False,
) -> StalledPage:
    """One page of the warehouse list; for an origin with nothing listed, its unscanned labels at any age."""
    client = redis_client(redis_url, cluster=cluster)
    try:
        now = time.time()
        labels, next_cursor = await Registry(client).stalled(
            before_ts=now - older_than_h * 3600, origin=origin, limit=limit, cursor=cursor
        )
        unscanned = None
        if origin and not labels and cursor is None:
            try:  # the origin's index is gone when none of its labels waits: an unknown origin
                unscanned = int(await client.zcard(unscanned_key(origin)))
            except (RedisError, OSError) as exc:
                raise RegistryUnavailable(f"the registry (Redis) is not reachable: {exc}") from exc
    finally:
        await client.aclose()
    return StalledPage([stalled_row(label, now) for label in labels], next_cursor, unscanned)


def nothing_listed(origin: str | None, older_than_h: float, origin_unscanned: int | None) -> str:
    """The sentence an empty warehouse list prints instead of a table."""
    age = f"printed more than {older_than_h:g} hours ago"
    if not origin:
        return f"No label {age} is waiting for a carrier scan.\n"
    if origin_unscanned == 0:
        return (
            f"No label from origin {origin} is waiting for a carrier scan, whatever its age: "
            "no unscanned label names that origin, so check its spelling (origins match exactly).\n"
        )
    return f"No label from origin {origin} {age} is waiting for a carrier scan.\n"


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
        return fail("--older-than-hours must be from 0 to 87600.")
    if not 1 <= args.limit <= MAX_STALLED_LIMIT:
        return fail(f"--limit must be from 1 to {MAX_STALLED_LIMIT}.")
    try:
        page = asyncio.run(stalled_page(
            settings.redis_url or DEFAULT_REDIS_URL, older_than_h=older_than_h,
            origin=args.origin, limit=args.limit, cursor=args.cursor, cluster=settings.redis_cluster,
        ))
    except ValidationFailed as exc:
        return fail(_sentence(exc.message))
    except RegistryUnavailable:
        return fail(redis_unreachable(settings, "so the list could not be read"))
    if args.csv:
        write_csv(sys.stdout, STALLED_CSV_COLUMNS, stalled_csv_rows(page.rows))
    elif page.rows:
        sys.stdout.write(table(page.rows))
    else:
        sys.stdout.write(nothing_listed(args.origin, older_than_h, page.origin_unscanned))
    if page.next_cursor:
        same = [
            *(["--origin", args.origin] if args.origin else []),
            *(["--older-than-hours", f"{older_than_h:g}"] if args.older_than_hours is not None else []),
            *(["--limit", str(args.limit)] if args.limit != LIMIT_DEFAULT else []),
            *(["--csv"] if args.csv else []),
            "--cursor", page.next_cursor,
        ]
        say(f"More labels follow; the next page is: tracksvc stalled {shlex.join(same)}")
    return EXIT_OK


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
