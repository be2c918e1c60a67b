"""Streaming row readers (O(1) memory in rows) numbering rows as in the file, so error reports point right."""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import io
import math
import re
import zipfile
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any, Final, overload

from dialguard.files.errors import BadEncoding, BadSpreadsheet, EmptyFile, FileError, MalformedFile
from dialguard.files.sniff import TEXT_KINDS, Kind
from dialguard.files.zipped import check_expansion

DELIMITERS: Final = ",;\t|"
SAMPLE_LINES: Final = 50
HEAD_ROWS: Final = 21
"""Rows read at open time: enough to judge the header and to serve a preview without a second pass."""
MAX_LINE_CHARS: Final = 1_000_000
"""A longer physical line is not a contact list; csv would otherwise build one enormous row from it."""
XLSX_MAX_UNCOMPRESSED: Final = 512 * 1024 * 1024
"""An .xlsx is a zip too: refuse one whose parts would inflate past this before openpyxl reads them."""
_DECODE_CHUNK: Final = 1024 * 1024

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^(\+|00)?[\d\s().\-/]+$")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?%?$")
_DATE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}\b")
_DIGIT = re.compile(r"\d")
_LABEL_SEPARATORS = re.compile(r"[\s\-./]+")
KNOWN_HEADERS: Final = frozenset(
    {
        "phone",
        "phones",
        "phone_number",
        "phonenumber",
        "number",
        "mobile",
        "mobile_number",
        "msisdn",
        "tel",
        "telephone",
        "cell",
        "email",
        "e_mail",
        "email_address",
        "mail",
        "contact",
        "contact_information",
        "identifier",
        "id",
        "person_id",
        "personid",
        "client_id",
        "clientid",
        "customer_id",
        "external_id",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "sender",
        "channel",
        "source",
        "reason",
        "note",
        "comment",
        "expires_in_days",
        "timezone",
        "city",
    }
)


@dataclass(frozen=True, slots=True)
class CellError:
    """A cell whose value cannot be trusted (formula without a saved result, #N/A): the row is reported."""

    column: int
    code: str
    message: str


class Row(tuple[int, list[str]]):
    """(row number, cells): unpacks like a pair, and carries the cell errors that make the row invalid."""

    errors: tuple[CellError, ...] = ()

    def __new__(cls, number: int, cells: list[str], errors: tuple[CellError, ...] = ()) -> Row:
        row = super().__new__(cls, (number, cells))
        if errors:
            row.errors = errors
        return row

    @property
    def number(self) -> int:
        return self[0]

    @property
    def cells(self) -> list[str]:
        return self[1]


# --- text -------------------------------------------------------------------------------------------


def _first_undecodable_line(path: str, encoding: str) -> int | None:
    """Decode the whole file in chunks: a sample would let a bad byte on line 90,000 crash an import."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 1
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(_DECODE_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                return lines + chunk[: max(exc.start, 0)].count(b"\n")
            if not chunk:
                return None
            lines += chunk.count(b"\n")


def detect_encoding(path: str) -> str:
    """A BOM decides; otherwise UTF-8, then Windows-1252 (what Excel writes for a "CSV" on Windows)."""
    with open(path, "rb") as fh:
        bom = fh.read(4)
    candidates: tuple[str, ...]
    if bom.startswith(codecs.BOM_UTF8):
        candidates = ("utf-8-sig",)
    elif bom.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "cp1252")
    failures: list[str] = []
    for encoding in candidates:
        line = _first_undecodable_line(path, encoding)
        if line is None:
            return encoding
        failures.append(f"{encoding} (line {line})")
    raise BadEncoding(
        "the file is not text in a supported encoding: invalid as " + ", ".join(failures),
        details=[{"field": "file", "tried": list(candidates)}],
    )


def _lines(fh: IO[str], first_line: int) -> Iterator[str]:
    """Physical lines with a length cap, so one giant line fails fast instead of becoming a huge row."""
    for number, line in enumerate(fh, start=first_line):
        if len(line) > MAX_LINE_CHARS:
            raise MalformedFile(f"line {number} is longer than {MAX_LINE_CHARS} characters")
        yield line


def _skip_lines(fh: IO[str], count: int) -> int:
    """Skip physical lines: skip_rows counts what a text editor shows, even a stray quote in a title."""
    skipped = 0
    while skipped < count:
        line = fh.readline(MAX_LINE_CHARS + 1)
        if not line:
            break
        skipped += 1
        if len(line) > MAX_LINE_CHARS:
            raise MalformedFile(f"line {skipped} is longer than {MAX_LINE_CHARS} characters")
    return skipped


def _text_sample(path: str, encoding: str, skip_rows: int) -> list[str]:
    with open(path, encoding=encoding, newline="") as fh:
        skipped = _skip_lines(fh, skip_rows)
        return list(islice(_lines(fh, skipped + 1), SAMPLE_LINES))


def _widths(lines: list[str], delimiter: str) -> Counter[int]:
    try:
        return Counter(len(cells) for cells in csv.reader(lines, delimiter=delimiter))
    except csv.Error:  # an unclosed quote in the sample: this delimiter tells nothing
        return Counter({0: len(lines)})


def _consistent_split(lines: list[str], delimiter: str) -> float:
    """Share of lines that split into the most common width (>1); 0 when the delimiter splits nothing."""
    width, count = _widths(lines, delimiter).most_common(1)[0]
    return count / len(lines) if width > 1 else 0.0


def detect_delimiter(sample: str | list[str]) -> str:
    """csv.Sniffer among , ; tab |, checked and, failing that, the delimiter giving the steadiest width."""
    lines = sample.splitlines() if isinstance(sample, str) else sample
    lines = [line for line in lines if line.strip()][:SAMPLE_LINES]
    if not lines:
        return ","
    try:
        sniffed: str | None = csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    if sniffed and sniffed in DELIMITERS and _consistent_split(lines, sniffed) >= 0.5:
        return sniffed
    scores = {d: _consistent_split(lines, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: scores[d])
    return best if scores[best] > 0 else ","


def _text_rows(path: str, encoding: str, delimiter: str, skip_rows: int) -> Generator[Row, None, None]:
    with open(path, encoding=encoding, newline="") as fh:
        skipped = _skip_lines(fh, skip_rows)
        reader = csv.reader(_lines(fh, skipped + 1), delimiter=delimiter)
        last = 0
        make, strip = tuple.__new__, str.strip  # the hot loop: a million rows should take seconds
        try:
            for cells in reader:
                start = skipped + last + 1
                last = reader.line_num
                stripped = list(map(strip, cells))
                if any(stripped):
                    yield make(Row, (start, stripped))
        except csv.Error as exc:
            raise MalformedFile(
                f"line {skipped + last + 1}: {exc} (an unclosed quote?)",
                details=[{"field": "file", "row": skipped + last + 1}],
            ) from exc
        except UnicodeDecodeError as exc:
            raise BadEncoding(f"line {skipped + last + 1} is not {encoding} text") from exc


def _count_text(path: str, encoding: str, delimiter: str, skip_rows: int) -> int:
    with open(path, encoding=encoding, newline="") as fh:
        skipped = _skip_lines(fh, skip_rows)
        try:
            rows = csv.reader(_lines(fh, skipped + 1), delimiter=delimiter)
            return sum(1 for cells in rows if any(map(str.strip, cells)))
        except csv.Error as exc:
            raise MalformedFile(f"{exc} (an unclosed quote?)") from exc


# --- cell values ------------------------------------------------------------------------------------


def _float_text(value: float) -> str:
    """Integral floats lose their ".0": a phone stored as a number in Excel must come out as its digits."""
    if not math.isfinite(value):
        return str(value)
    if value.is_integer():
        return str(int(value))
    return format(value, ".15g")


def _text(value: object) -> str:
    """A spreadsheet value as the text a user would type: ISO dates, TRUE/FALSE, no float artefacts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None and value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        sign = "-" if seconds < 0 else ""
        hours, rest = divmod(abs(seconds), 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return str(value).strip()


# --- xlsx -------------------------------------------------------------------------------------------


def _load_xlsx(path: str, *, data_only: bool) -> Any:
    import openpyxl

    try:
        with zipfile.ZipFile(path) as archive:
            check_expansion(archive.infolist(), max_uncompressed=XLSX_MAX_UNCOMPRESSED)
        # From memory, not the path: openpyxl refuses a path without an Excel extension, and uploads
        # are spooled under neutral names. The file is already size-checked (upload limit, expansion).
        data = io.BytesIO(Path(path).read_bytes())
        return openpyxl.load_workbook(data, read_only=True, data_only=data_only, keep_links=False)
    except FileError:
        raise
    except Exception as exc:  # a damaged workbook can fail anywhere inside openpyxl: still bad input
        raise BadSpreadsheet(f"not a readable .xlsx workbook: {exc}") from exc


def _first_sheet(book: Any) -> Any:
    if not book.worksheets:
        raise EmptyFile("the workbook has no worksheet")
    return book.worksheets[0]


def _sheet_cells(sheet: Any) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """(row number, cells) from openpyxl, its parse errors turned into BadSpreadsheet naming the row."""
    rows = sheet.iter_rows()
    number = 0
    while True:
        try:
            cells = next(rows)
        except StopIteration:
            return
        except Exception as exc:
            raise BadSpreadsheet(f"row {number + 1} of the sheet cannot be read: {exc}") from exc
        number += 1
        yield number, cells


class _CachedValues:
    """The saved results of formulas, from a data_only twin opened only when a formula shows up."""

    def __init__(self, path: str) -> None:
        self.book = _load_xlsx(path, data_only=True)
        sheet = _first_sheet(self.book)
        sheet.reset_dimensions()
        self.rows = _sheet_cells(sheet)
        self.number = 0
        self.cells: tuple[Any, ...] = ()

    def get(self, number: int, column: int) -> tuple[str, Any]:
        while self.number < number:
            self.number, self.cells = next(self.rows, (number, ()))
        if self.number != number or column > len(self.cells):
            return "n", None
        cell = self.cells[column - 1]
        return getattr(cell, "data_type", "n"), cell.value

    def close(self) -> None:
        self.book.close()


def _xlsx_rows(path: str, skip_rows: int) -> Generator[Row, None, None]:
    from openpyxl.utils import get_column_letter

    book = _load_xlsx(path, data_only=False)
    cached: _CachedValues | None = None
    try:
        sheet = _first_sheet(book)
        sheet.reset_dimensions()
        for number, cells in _sheet_cells(sheet):
            if number <= skip_rows or not cells:
                continue
            values: list[str] = []
            errors: list[CellError] = []
            for column, cell in enumerate(cells, start=1):
                kind, value = getattr(cell, "data_type", "n"), cell.value
                if kind == "f":
                    if cached is None:
                        cached = _CachedValues(path)
                    kind, value = cached.get(number, column)
                    if value is None:
                        where = f"{get_column_letter(column)}{number}"
                        errors.append(
                            CellError(
                                column,
                                "formula_without_value",
                                f"cell {where} has a formula with no saved result; "
                                "open and save the file in Excel, or paste values",
                            )
                        )
                        values.append("")
                        continue
                if kind == "e":
                    where = f"{get_column_letter(column)}{number}"
                    errors.append(
                        CellError(column, "cell_error", f"cell {where} holds the Excel error {value}")
                    )
                    values.append("")
                    continue
                values.append(_text(value))
            if errors or any(values):
                yield Row(number, values, tuple(errors))
    finally:
        if cached is not None:
            cached.close()
        book.close()


def _xlsx_declared_rows(path: str) -> int | None:
    book = _load_xlsx(path, data_only=True)
    try:
        max_row = _first_sheet(book).max_row
        return int(max_row) if max_row is not None else None
    finally:
        book.close()


# --- xls --------------------------------------------------------------------------------------------


class _Discard:
    """xlrd prints warnings to stdout by default; a server's stdout is its JSON log."""

    def write(self, _: str) -> int:
        return 0

    def flush(self) -> None:
        return None


def _open_xls(path: str) -> Any:
    import xlrd

    try:
        return xlrd.open_workbook(path, on_demand=True, logfile=_Discard())
    except Exception as exc:
        reason = "it is password-protected" if "encrypt" in str(exc).lower() else str(exc)
        raise BadSpreadsheet(f"not a readable .xls workbook: {reason}") from exc


def _xls_value(book: Any, ctype: int, value: Any) -> tuple[str, str | None]:
    """(text, error message or None) for one xlrd cell."""
    import xlrd

    if ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return "", None
    if ctype == xlrd.XL_CELL_BOOLEAN:
        return ("TRUE" if value else "FALSE"), None
    if ctype == xlrd.XL_CELL_ERROR:
        return "", f"holds the Excel error {xlrd.error_text_from_code.get(value, value)}"
    if ctype == xlrd.XL_CELL_DATE:
        try:
            y, m, d, hh, mm, ss = xlrd.xldate.xldate_as_tuple(value, book.datemode)
        except xlrd.xldate.XLDateError as exc:
            return "", f"holds an invalid date ({exc.__class__.__name__})"
        if (y, m, d) == (0, 0, 0):
            return dt.time(hh, mm, ss).isoformat(), None
        return _text(dt.datetime(y, m, d, hh, mm, ss)), None
    return _text(value), None


def _xls_rows(path: str, skip_rows: int) -> Generator[Row, None, None]:
    book = _open_xls(path)
    try:
        if book.nsheets == 0:
            raise EmptyFile("the workbook has no worksheet")
        try:
            sheet = book.sheet_by_index(0)
        except Exception as exc:
            raise BadSpreadsheet(f"the first sheet cannot be read: {exc}") from exc
        for rowx in range(skip_rows, sheet.nrows):
            values: list[str] = []
            errors: list[CellError] = []
            for colx, (ctype, value) in enumerate(
                zip(sheet.row_types(rowx), sheet.row_values(rowx), strict=True)
            ):
                text, error = _xls_value(book, ctype, value)
                if error is not None:
                    errors.append(CellError(colx + 1, "cell_error", f"column {colx + 1} {error}"))
                values.append(text)
            if errors or any(values):
                yield Row(rowx + 1, values, tuple(errors))
    finally:
        book.release_resources()


# --- tables -----------------------------------------------------------------------------------------


def _raw_rows(
    path: str, kind: Kind, encoding: str | None, delimiter: str | None, skip_rows: int
) -> Generator[Row, None, None]:
    """Non-blank rows after skip_rows, header included."""
    if kind == "xlsx":
        return _xlsx_rows(path, skip_rows)
    if kind == "xls":
        return _xls_rows(path, skip_rows)
    if kind in TEXT_KINDS and encoding is not None and delimiter is not None:
        return _text_rows(path, encoding, delimiter, skip_rows)
    raise ValueError(f"cannot read rows of a {kind!r} file; unzip it with open_first_member first")


def _is_contact_like(cell: str) -> bool:
    if _EMAIL.match(cell):
        return True
    return bool(_PHONE.match(cell)) and len(_DIGIT.findall(cell)) >= 6


def _is_data_like(cell: str) -> bool:
    return _is_contact_like(cell) or bool(_NUMBER.match(cell)) or bool(_DATE.match(cell))


def looks_like_header(first: list[str], following: Iterable[list[str]]) -> bool:
    """Labels (no phone, email, number or date) above rows holding phones/emails, or well-known names."""
    labels = [c for c in first if c]
    if not labels or any(_is_data_like(c) for c in labels):
        return False
    if any(_LABEL_SEPARATORS.sub("_", c.lower()) in KNOWN_HEADERS for c in labels):
        return True
    later = list(following)
    if any(_is_contact_like(c) for row in later for c in row if c):
        return True
    for index, label in enumerate(first):
        if not label or _DIGIT.search(label):
            continue
        values = [row[index] for row in later if index < len(row) and row[index]]
        if values and all(_DIGIT.search(v) for v in values):
            return True
    return False


class Table:
    """An opened table: how it was read (encoding, delimiter, header) and its data rows, re-readable."""

    def __init__(
        self,
        *,
        path: str,
        kind: Kind,
        skip_rows: int,
        encoding: str | None,
        delimiter: str | None,
        header: list[str] | None,
        header_row: int | None,
        head: list[Row],
        head_is_everything: bool,
    ) -> None:
        self.path = path
        self.kind = kind
        self.skip_rows = skip_rows
        self.encoding = encoding
        self.delimiter = delimiter
        self.header = header
        self.header_row = header_row
        self._head = head
        self._head_is_everything = head_is_everything

    def __repr__(self) -> str:
        return (
            f"Table(kind={self.kind!r}, encoding={self.encoding!r}, delimiter={self.delimiter!r}, "
            f"header={self.header!r}, skip_rows={self.skip_rows})"
        )

    @property
    def has_header(self) -> bool:
        return self.header is not None

    def rows(self) -> Generator[Row, None, None]:
        """Data rows (after skip_rows and the header, blank ones dropped), each a fresh streaming pass."""
        header_row = self.header_row or 0
        with contextlib.closing(
            _raw_rows(self.path, self.kind, self.encoding, self.delimiter, self.skip_rows)
        ) as raw:
            for row in raw:
                if row[0] > header_row:
                    yield row

    def preview(self, n: int = 10) -> list[Row]:
        """The first n data rows, from what open_table already read when that is enough."""
        if n <= len(self._head) or self._head_is_everything:
            return self._head[:n]
        with contextlib.closing(self.rows()) as rows:
            return list(islice(rows, n))

    def count_rows(self) -> int:
        """Data rows for a progress total: exact for text and .xls, the sheet's declared size for .xlsx."""
        if self._head_is_everything:
            return len(self._head)
        if self.kind in TEXT_KINDS and self.encoding is not None and self.delimiter is not None:
            total = _count_text(self.path, self.encoding, self.delimiter, self.skip_rows)
            return total - (1 if self.header_row is not None else 0)
        if self.kind == "xlsx":
            declared = _xlsx_declared_rows(self.path)
            estimate = declared - self._head[0][0] + 1 if declared is not None and self._head else 0
            if estimate >= len(self._head) > 0:
                return estimate
        with contextlib.closing(self.rows()) as rows:
            return sum(1 for _ in rows)


def open_table(path: str, kind: Kind, *, skip_rows: int = 0, has_header: bool | None = None) -> Table:
    """Detect encoding, delimiter and header (unless has_header says); EmptyFile when no data row is left."""
    if skip_rows < 0:
        raise ValueError("skip_rows must be >= 0")
    encoding = delimiter = None
    if kind in TEXT_KINDS:
        encoding = detect_encoding(path)
        delimiter = detect_delimiter(_text_sample(path, encoding, skip_rows))
    with contextlib.closing(_raw_rows(path, kind, encoding, delimiter, skip_rows)) as raw:
        head = list(islice(raw, HEAD_ROWS + 1))
    after = f" after skipping {skip_rows} rows" if skip_rows else ""
    if not head:
        raise EmptyFile(f"the file has no rows{after}")
    first = head[0]
    if has_header is None:
        has_header = looks_like_header(first.cells, [row.cells for row in head[1:]])
    header: list[str] | None = None
    header_row: int | None = None
    data = head
    if has_header:
        header, header_row, data = first.cells, first.number, head[1:]
        if not data:
            raise EmptyFile(f"the file has a header row but no data rows{after}")
    return Table(
        path=path,
        kind=kind,
        skip_rows=skip_rows,
        encoding=encoding,
        delimiter=delimiter,
        header=header,
        header_row=header_row,
        head=data[:HEAD_ROWS],
        head_is_everything=len(head) <= HEAD_ROWS,
    )


@overload
def preview(source: Table, n: int = 10, /) -> list[Row]: ...
@overload
def preview(
    source: str, kind: Kind, skip_rows: int = 0, n: int = 10, *, has_header: bool | None = None
) -> list[Row]: ...
def preview(source: Table | str, *args: Any, **kwargs: Any) -> list[Row]:
    """The first n data rows of an opened table, or of a file (open_table gives its header too)."""
    if isinstance(source, Table):
        return source.preview(*args, **kwargs)
    return _preview_file(source, *args, **kwargs)


def _preview_file(
    path: str, kind: Kind, skip_rows: int = 0, n: int = 10, *, has_header: bool | None = None
) -> list[Row]:
    return open_table(path, kind, skip_rows=skip_rows, has_header=has_header).preview(n)


@overload
def count_rows(source: Table, /) -> int: ...
@overload
def count_rows(source: str, kind: Kind, skip_rows: int = 0, *, has_header: bool | None = None) -> int: ...
def count_rows(source: Table | str, *args: Any, **kwargs: Any) -> int:
    """Data rows for progress totals, in a pass far cheaper than reading them (see Table.count_rows)."""
    if isinstance(source, Table):
        return source.count_rows()
    return _count_file(source, *args, **kwargs)


def _count_file(path: str, kind: Kind, skip_rows: int = 0, *, has_header: bool | None = None) -> int:
    return open_table(path, kind, skip_rows=skip_rows, has_header=has_header).count_rows()
