"""
CSV that is safe to open in a spreadsheet: every CSV tracksvc writes goes through here.

Following OWASP's advice on CSV injection, a cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return gets a single quote in
front, so spreadsheets read it as text, never as a formula
(``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``); every cell is quoted and
embedded double quotes are doubled, so a separator inside a value never
starts a new cell. Values are stored and looked up as they were sent: only
what is written out is neutralized.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import IO

#: First characters a spreadsheet reads as the start of a formula (OWASP's list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: object) -> str:
    """
    One cell's text, with a leading single quote if a spreadsheet would run it as a formula.

    Args:
        value: The cell's value; None is an empty cell.

    Returns:
        The text to write (``"=1+2"`` becomes ``"'=1+2"``).
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def write_csv(handle: IO[str], columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    """
    Write a header row and one row per mapping, every cell quoted and neutralized.

    Args:
        handle: Where the CSV goes (a text stream).
        columns: The column names, in order; each row is read by these keys.
        rows: The rows; a missing or None value is an empty cell.
    """
    writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow([neutralize(name) for name in columns])
    writer.writerows([neutralize(row.get(name)) for name in columns] for row in rows)
