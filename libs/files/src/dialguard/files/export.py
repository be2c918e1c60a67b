"""Exports no spreadsheet can turn into formulas (CONTRACT §3), streamed so memory stays flat at any size."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, Final

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
"""OWASP's list: a cell starting with any of these can be evaluated by Excel, LibreOffice or Sheets."""
CHUNK_BYTES: Final = 64 * 1024
XLSX_MAX_CELL_CHARS: Final = 32_767
"""Excel refuses (or "repairs" away) a longer cell, so a longer value is cut rather than breaking the file."""
_EXACT_INT: Final = 2**53


def _plain_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def safe_cell(value: Any) -> str:
    """The value as text, with a leading ' when it starts like a formula so it is shown, never run."""
    text = _plain_text(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


async def csv_stream(
    header: Sequence[Any],
    rows: Iterable[Sequence[Any]] | AsyncIterable[Sequence[Any]],
    *,
    chunk_bytes: int = CHUNK_BYTES,
    bom: bool = False,
) -> AsyncIterator[bytes]:
    """UTF-8 CSV (header first, RFC 4180 CRLF) in chunks of about chunk_bytes; bom=True helps Excel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write("\ufeff")
    writer.writerow([safe_cell(h) for h in header])

    def take() -> bytes:
        data = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        return data

    if isinstance(rows, AsyncIterable):
        async for row in rows:
            writer.writerow([safe_cell(v) for v in row])
            if buffer.tell() >= chunk_bytes:
                yield take()
    else:
        for row in rows:
            writer.writerow([safe_cell(v) for v in row])
            if buffer.tell() >= chunk_bytes:
                yield take()
    if buffer.tell():
        yield take()


def _xlsx_value(value: Any) -> Any:
    """Numbers and naive dates stay typed; text is neutralised and cleaned of what XML cannot hold."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    if value is None or isinstance(value, bool | Decimal):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int):
        return value if -_EXACT_INT < value < _EXACT_INT else str(value)
    if isinstance(value, dt.datetime | dt.time):
        return value if value.tzinfo is None else value.isoformat()
    if isinstance(value, dt.date):
        return value
    text = ILLEGAL_CHARACTERS_RE.sub("", safe_cell(value))
    return text[:XLSX_MAX_CELL_CHARS]


class XlsxExport:
    """A write-only workbook filled row by row (rows go to a temp file), saved to path on close."""

    def __init__(self, path: str, header: Sequence[Any], *, sheet_title: str = "Export") -> None:
        from openpyxl import Workbook

        self.path = path
        self.rows_written = 0
        self._book = Workbook(write_only=True)
        self._sheet = self._book.create_sheet(title=sheet_title[:31])
        self._sheet.append([_xlsx_value(h) for h in header])
        self._closed = False

    def append(self, row: Sequence[Any]) -> None:
        self._sheet.append([_xlsx_value(v) for v in row])
        self.rows_written += 1

    def extend(self, rows: Iterable[Sequence[Any]]) -> None:
        """Append a batch: one call to hand to a worker thread per page of results."""
        for row in rows:
            self.append(row)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._book.save(self.path)

    def __enter__(self) -> XlsxExport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()


def xlsx_file(
    header: Sequence[Any], rows: Iterable[Sequence[Any]], path: str, *, sheet_title: str = "Export"
) -> int:
    """Write header and rows to an .xlsx at path (xlsx cannot be streamed byte-wise); returns the row count."""
    with XlsxExport(path, header, sheet_title=sheet_title) as export:
        export.extend(rows)
    return export.rows_written
