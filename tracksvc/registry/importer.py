"""
Bulk import of shipment records from NDJSON or CSV, streamed.

Rows are validated one by one; good rows are written in pipelined batches,
bad rows are reported with their line number and the fields that failed,
and never stop the import. Rows apply in order: a later row of the same
shipment replaces an earlier one (its aliases and order win). A row whose
identifier has the lookup key of another shipment's is refused
(``identifier_conflict``). CSV has a header row naming the record fields; a
header that cannot be read (not UTF-8, a bare carriage return, unknown,
repeated or missing columns) refuses the whole file. ``aliases`` is a
``|``-separated list; empty cells are absent values. Quoted CSV fields may
not contain line breaks (each line is one row).

When Redis fails part-way, :class:`~tracksvc.errors.ImportInterrupted` says
how many rows were committed and the line to send again from.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from tracksvc.core.errors import ImportInterrupted, RegistryUnavailable, ValidationFailed
from tracksvc.domain.records import ShipmentRecord
from tracksvc.registry.store import Conflict, Registry

log = structlog.get_logger("importer")

#: Rows written per pipeline.
BATCH_ROWS = 1000
#: Row errors reported in full; the count goes on past this.
MAX_REPORTED_ERRORS = 1000
#: Rows one import may carry.
MAX_ROWS = 1_000_000
#: Longest line accepted (a record is well under 2 KiB); longer ones are refused rows.
MAX_LINE_BYTES = 64 * 1024
#: CSV columns a header must name (a file without one could import no row).
REQUIRED_CSV_COLUMNS = ("shipment_id", "order_number", "carrier", "tracking_number", "label_created_at")


class ImportFormat(StrEnum):
    """What the body is."""

    ndjson = "ndjson"
    csv = "csv"


@dataclass
class RowError:
    """Why one row was refused."""

    line: int
    errors: list[dict[str, str]]


@dataclass
class ImportReport:
    """What an import did."""

    accepted: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON answer of ``POST /v1/shipments/import``."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "errors": [{"line": e.line, "errors": e.errors} for e in self.errors],
            "errors_truncated": self.rejected > len(self.errors),
            "row_limit_reached": self.truncated,
        }


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "(row)", "message": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


def _header_error(line: int, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"line {line}: the CSV header {message}; nothing was imported",
        details=[{"line": line, "field": "(header)", "message": message}],
    )


def _csv_header(raw: bytes, line: int) -> list[str]:
    """
    The column names of a CSV header line.

    Raises:
        ValidationFailed: the header cannot be read, or names unknown, repeated or
            too few columns (the whole file is refused, naming the line).
    """
    if len(raw) > MAX_LINE_BYTES:
        raise _header_error(line, f"is longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _header_error(line, f"is not valid UTF-8 (byte {raw[exc.start]:#04x} at {exc.start})") from exc
    try:
        header = [h.strip() for h in next(csv.reader([text]), [])]
    except csv.Error as exc:
        raise _header_error(line, "holds a line break (a bare carriage return) inside a name") from exc
    known = ShipmentRecord.model_fields
    unknown = [h for h in header if h not in known]
    if unknown:
        raise _header_error(line, f"names unknown columns {unknown}; known: {', '.join(known)}")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise _header_error(line, f"names columns more than once: {repeated}")
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
    if missing:
        raise _header_error(line, f"lacks the required columns {missing}")
    return header


def _csv_row(header: list[str], cells: list[str]) -> dict[str, Any]:
    if len(cells) != len(header):
        raise ValueError(f"expected {len(header)} cells, found {len(cells)}")
    row: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        # Only spaces are trimmed: a tab or line break in an identifier is refused, not hidden.
        cell = cell.strip(" ")
        if cell == "":
            continue
        row[name] = [a.strip(" ") for a in cell.split("|") if a.strip(" ")] if name == "aliases" else cell
    return row


def _conflict_error(conflict: Conflict) -> dict[str, str]:
    return {"field": conflict.field, "message": conflict.message, "code": "identifier_conflict",
            "conflicts_with": conflict.other}


def _ndjson_row(line: bytes) -> dict[str, Any]:
    value = orjson.loads(line)
    if not isinstance(value, dict):
        raise ValueError("each line must be a JSON object")
    return value


async def import_lines(
    lines: AsyncIterator[bytes],
    fmt: ImportFormat,
    registry: Registry,
    *,
    progress: Callable[[int], None] | None = None,
    max_rows: int = MAX_ROWS,
) -> ImportReport:
    """
    Validate and store every row of ``lines``.

    Args:
        lines: the body, one row per line (bytes, with or without newline).
        fmt: NDJSON or CSV.
        registry: where good rows go.
        progress: called with the number of lines read so far, once per batch.
        max_rows: rows read at most; the rest is left unread (``row_limit_reached``).

    Raises:
        ValidationFailed: the CSV header cannot be read or names wrong columns
            (nothing was written).
        ImportInterrupted: Redis failed; it says how many rows were committed and
            the line to send again from.
    """
    report = ImportReport()
    batch: list[tuple[int, ShipmentRecord]] = []
    header: list[str] | None = None
    line_no = 0

    def refuse(errors: list[dict[str, str]], line: int | None = None) -> None:
        report.rejected += 1
        if len(report.errors) < MAX_REPORTED_ERRORS:
            report.errors.append(RowError(line_no if line is None else line, errors))

    async def flush() -> None:
        try:
            outcomes = await registry.put_shipments_checked([record for _, record in batch])
        except RegistryUnavailable as exc:
            raise _interrupted(report, batch[0][0], exc) from exc
        for (line, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Conflict):
                refuse([_conflict_error(outcome)], line)
            else:
                report.accepted += 1
        batch.clear()

    async for raw in lines:
        line_no += 1
        if not raw.strip():
            continue
        if fmt is ImportFormat.csv and header is None:
            header = _csv_header(raw, line_no)
            continue
        if report.accepted + len(batch) + report.rejected >= max_rows:
            report.truncated = True
            break
        if len(raw) > MAX_LINE_BYTES:
            refuse([{"field": "(row)", "message": f"the line is longer than {MAX_LINE_BYTES} bytes"}])
            continue
        try:
            if fmt is ImportFormat.csv:
                assert header is not None
                row = _csv_row(header, next(csv.reader([raw.decode("utf-8")])))
            else:
                row = _ndjson_row(raw)
            batch.append((line_no, ShipmentRecord.model_validate(row)))
        except ValidationError as exc:
            refuse(_field_errors(exc))
            continue
        except UnicodeDecodeError as exc:
            refuse([{"field": "(row)", "message": f"the line is not valid UTF-8 (byte {exc.start})"}])
            continue
        except (ValueError, csv.Error, orjson.JSONDecodeError) as exc:
            refuse([{"field": "(row)", "message": str(exc)}])
            continue
        if len(batch) >= BATCH_ROWS:
            await flush()
            if progress:
                progress(line_no)
    if batch:
        await flush()
    if progress:
        progress(line_no)
    report.errors.sort(key=lambda e: e.line)  # conflicts are found when a batch is written
    return report


def _interrupted(report: ImportReport, resume_line: int, exc: RegistryUnavailable) -> ImportInterrupted:
    log.warning("import_interrupted", committed_rows=report.accepted, resume_line=resume_line,
                error=str(exc))
    return ImportInterrupted(
        f"the registry (Redis) failed during the import: {report.accepted} rows before line "
        f"{resume_line} were committed ({report.rejected} refused so far); rows from line "
        f"{resume_line} on were not, or only partly, written. Send the rest again from line "
        f"{resume_line} (with the CSV header, if any): rows are idempotent",
        committed_rows=report.accepted, rejected_rows=report.rejected, resume_line=resume_line,
    )
