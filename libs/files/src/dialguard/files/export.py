"""Formula-injection-safe exports, streamed: CSV chunks for StreamingResponse, XLSX via write-only openpyxl."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

_DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A cell starting with = + - @ (or tab/CR) gets a leading ' so spreadsheets do not run it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_DANGEROUS) else text


async def csv_stream(
    header: Sequence[str],
    rows: AsyncIterable[Sequence[Any]] | Iterable[Sequence[Any]],
    *,
    chunk_rows: int = 1000,
) -> AsyncIterator[bytes]:
    """Header then rows, neutralised, yielded in chunks of about chunk_rows lines."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    pending = 1

    def flush() -> bytes:
        data = buf.getvalue().encode("utf-8")
        buf.seek(0)
        buf.truncate()
        return data

    if isinstance(rows, AsyncIterable):
        async for row in rows:
            writer.writerow([safe_cell(v) for v in row])
            pending += 1
            if pending >= chunk_rows:
                yield flush()
                pending = 0
    else:
        for row in rows:
            writer.writerow([safe_cell(v) for v in row])
            pending += 1
            if pending >= chunk_rows:
                yield flush()
                pending = 0
    yield flush()


def xlsx_file(header: Sequence[str], rows: Iterable[Sequence[Any]], path: str) -> None:
    """Write-only workbook: memory stays flat however many rows."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append([safe_cell(h) for h in header])
    for row in rows:
        sheet.append([safe_cell(v) for v in row])
    book.save(path)
