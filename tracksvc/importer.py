"""
Bulk import of shipment records from NDJSON or CSV, streamed.

Rows are validated one by one; good rows are written in pipelined batches,
bad rows are reported with their line number and the fields that failed,
and never stop the import. CSV has a header row naming the record fields;
``aliases`` is a ``|``-separated list; empty cells are absent values.
Quoted CSV fields may not contain line breaks (each line is one row).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError

from tracksvc.records import ShipmentRecord
from tracksvc.registry import Registry

#: Rows written per pipeline.
BATCH_ROWS = 1000
#: Row errors reported in full; the count goes on past this.
MAX_REPORTED_ERRORS = 1000
#: Rows one import may carry.
MAX_ROWS = 1_000_000
#: Longest line accepted (a record is well under 2 KiB); longer ones are refused rows.
MAX_LINE_BYTES = 64 * 1024


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


def _csv_row(header: list[str], cells: list[str]) -> dict[str, Any]:
    if len(cells) != len(header):
        raise ValueError(f"expected {len(header)} cells, found {len(cells)}")
    row: dict[str, Any] = {}
    for name, cell in zip(header, cells, strict=True):
        cell = cell.strip()
        if cell == "":
            continue
        row[name] = [a for a in cell.split("|") if a.strip()] if name == "aliases" else cell
    return row


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
    """
    report = ImportReport()
    batch: list[ShipmentRecord] = []
    header: list[str] | None = None
    line_no = 0

    def refuse(errors: list[dict[str, str]]) -> None:
        report.rejected += 1
        if len(report.errors) < MAX_REPORTED_ERRORS:
            report.errors.append(RowError(line_no, errors))

    async for raw in lines:
        line_no += 1
        if not raw.strip():
            continue
        if fmt is ImportFormat.csv and header is None:
            header = [h.strip() for h in next(csv.reader([raw.decode("utf-8-sig")]))]
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
            batch.append(ShipmentRecord.model_validate(row))
        except ValidationError as exc:
            refuse(_field_errors(exc))
            continue
        except (ValueError, UnicodeDecodeError, csv.Error, orjson.JSONDecodeError) as exc:
            refuse([{"field": "(row)", "message": str(exc)}])
            continue
        if len(batch) >= BATCH_ROWS:
            report.accepted += await _flush(registry, batch)
            batch = []
            if progress:
                progress(line_no)
    if batch:
        report.accepted += await _flush(registry, batch)
    if progress:
        progress(line_no)
    return report


async def _flush(registry: Registry, batch: list[ShipmentRecord]) -> int:
    # Keep what tracksvc learned about re-imported shipments (first scan, old order).
    previous = await registry.get_shipments([r.shipment_id for r in batch])
    merged = [
        r.model_copy(update={"first_scan_at": p.first_scan_at})
        if p is not None and p.first_scan_at and not r.first_scan_at
        else r
        for r, p in zip(batch, previous, strict=True)
    ]
    before = {r.shipment_id: p for r, p in zip(batch, previous, strict=True)}
    await registry.put_shipments(merged, previous=before)
    return len(batch)
