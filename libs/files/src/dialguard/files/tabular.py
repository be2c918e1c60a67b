"""Row readers for CSV/TXT/XLSX/XLS that stream (O(1) memory in rows) and keep original row numbers."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dialguard.files.errors import BadEncoding, BadSpreadsheet, EmptyFile
from dialguard.files.sniff import Kind

ENCODINGS = ("utf-8-sig", "cp1252")
DELIMITERS = ",;\t|"
_IDENTIFIER_LIKE = re.compile(r"^[\s+()\-.\d]{5,}$|@")
csv.field_size_limit(1 << 20)


class FormulaWithoutValue(ValueError):
    """An XLSX formula cell with no cached result: reported for its row, not a crash."""


@dataclass
class Table:
    """An opened table: where data starts, and a generator of (row number, cells)."""

    path: str
    kind: Kind
    skip_rows: int = 0
    header: list[str] | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    _first_data: int = field(default=0, repr=False)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Data rows after skip_rows and the header, numbered as in the original file (1-based)."""
        for number, cells in _raw_rows(self):
            if number <= self._first_data:
                continue
            if not any(c.strip() for c in cells):
                continue
            yield number, cells


def _text_rows(path: str, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        for cells in reader:
            yield reader.line_num, [c.strip() for c in cells]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()


def _xlsx_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise BadSpreadsheet(f"not a readable .xlsx workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, [_cell(v) for v in row]
    finally:
        book.close()


def _xls_rows(path: str) -> Iterator[tuple[int, list[str]]]:
    import xlrd

    try:
        book = xlrd.open_workbook(path, on_demand=True)
    except Exception as exc:
        raise BadSpreadsheet(f"not a readable .xls workbook: {exc}") from exc
    sheet = book.sheet_by_index(0)
    for r in range(sheet.nrows):
        cells = []
        for c in sheet.row(r):
            if c.ctype == xlrd.XL_CELL_DATE:
                cells.append(xlrd.xldate.xldate_as_datetime(c.value, book.datemode).isoformat())
            else:
                cells.append(_cell(c.value))
        yield r + 1, cells


def _raw_rows(table: Table) -> Iterator[tuple[int, list[str]]]:
    if table.kind == "xlsx":
        return _xlsx_rows(table.path)
    if table.kind == "xls":
        return _xls_rows(table.path)
    return _text_rows(table.path, table.encoding, table.delimiter)


def detect_encoding(path: str, sample_bytes: int = 1 << 20) -> str:
    """UTF-8 (with or without BOM) when the sample decodes, else cp1252; BadEncoding if neither does."""
    with open(path, "rb") as fh:
        sample = fh.read(sample_bytes)
    for encoding in ENCODINGS:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            decoder.decode(sample, final=False)
        except UnicodeDecodeError:
            continue
        return encoding
    raise BadEncoding("file is neither UTF-8 nor Windows-1252 text")


def detect_delimiter(sample: str) -> str:
    """csv.Sniffer among , ; tab |, falling back to the most frequent one in the first lines."""
    lines = [ln for ln in sample.splitlines()[:20] if ln.strip()]
    if not lines:
        return ","
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        counts = {d: sum(ln.count(d) for ln in lines) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def looks_like_header(first: list[str], following: list[list[str]]) -> bool:
    """A first row of labels above rows whose cells look like phones/emails is a header."""
    if not first or any(_IDENTIFIER_LIKE.search(c) for c in first if c):
        return False
    if not any(c for c in first):
        return False
    return any(any(_IDENTIFIER_LIKE.search(c) for c in row) for row in following) or not following


def open_table(path: str, kind: Kind, *, skip_rows: int = 0, has_header: bool | None = None) -> Table:
    """Detect encoding, delimiter and header; EmptyFile when nothing is left after skip_rows."""
    table = Table(path=path, kind=kind, skip_rows=skip_rows)
    if kind in ("csv", "txt"):
        table.encoding = detect_encoding(path)
        with open(path, encoding=table.encoding, newline="") as fh:
            sample = fh.read(64 * 1024)
        lines = sample.splitlines()[skip_rows:]
        table.delimiter = detect_delimiter("\n".join(lines))
    head: list[tuple[int, list[str]]] = []
    for number, cells in _raw_rows(table):
        if number <= skip_rows or not any(c.strip() for c in cells):
            continue
        head.append((number, cells))
        if len(head) >= 6:
            break
    if not head:
        raise EmptyFile("the file has no rows" + (f" after skipping {skip_rows}" if skip_rows else ""))
    first_number, first = head[0]
    header = looks_like_header(first, [c for _, c in head[1:]]) if has_header is None else has_header
    if header:
        table.header = first
        table._first_data = first_number
        if len(head) == 1:
            raise EmptyFile("the file has a header row but no data rows")
    else:
        table._first_data = first_number - 1
    return table


def preview(table: Table, n: int = 10) -> list[tuple[int, list[str]]]:
    """The first n data rows."""
    out = []
    for item in table.rows():
        out.append(item)
        if len(out) >= n:
            break
    return out


def count_rows(table: Table) -> int:
    """Data rows (one cheap pass) for progress totals."""
    return sum(1 for _ in table.rows())


def decode_text(data: bytes) -> str:
    """Small text payloads (form fields) in the same encodings as files."""
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BadEncoding("not UTF-8 or Windows-1252")


__all__ = ["Table", "count_rows", "detect_delimiter", "detect_encoding", "io", "open_table", "preview"]
