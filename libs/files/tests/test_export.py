"""Exports cannot smuggle formulas into a spreadsheet, stream in chunks, and the sample zip is usable."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from dialguard.files.export import XlsxExport, csv_stream, safe_cell, xlsx_file
from dialguard.files.samples import SAMPLES, stoplist_samples_zip
from dialguard.files.tabular import open_table

DANGEROUS = ["=1+1", "+44 20 7946 0958", "-2", "@SUM(A1)", "\tcmd", "\r=x", '=HYPERLINK("http://x","y")']


def test_safe_cell_neutralises_what_a_spreadsheet_would_evaluate() -> None:
    assert [safe_cell(v) for v in DANGEROUS] == ["'" + v for v in DANGEROUS]
    assert [safe_cell(v) for v in ["plain", "a=b", "", None, 5, -5, True, dt.date(2024, 1, 2)]] == [
        "plain",
        "a=b",
        "",
        "",
        "5",
        "'-5",
        "true",
        "2024-01-02",
    ]


async def _collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


async def test_csv_stream_from_sync_rows_is_neutralised_and_quoted() -> None:
    chunks = await _collect(csv_stream(["=head", "note"], [["=x", "line\nbreak"], ["y", 'say "hi"']]))
    assert b"".join(chunks) == b'\'=head,note\r\n\'=x,"line\nbreak"\r\ny,"say ""hi"""\r\n'


async def test_csv_stream_from_async_rows_comes_in_chunks() -> None:
    async def rows() -> AsyncIterator[Sequence[Any]]:
        for i in range(20_000):
            yield [f"1267{2000000 + i}", "=cmd|' /C calc'!A0", None]

    chunks = await _collect(csv_stream(["phone", "note", "empty"], rows(), chunk_bytes=16 * 1024, bom=True))
    assert len(chunks) > 10
    assert max(len(c) for c in chunks) < 17 * 1024
    text = b"".join(chunks).decode("utf-8-sig")
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == ["phone", "note", "empty"]
    assert parsed[1] == ["12672000000", "'=cmd|' /C calc'!A0", ""]
    assert len(parsed) == 20_001


async def test_empty_export_is_just_the_header() -> None:
    assert b"".join(await _collect(csv_stream(["phone"], []))) == b"phone\r\n"


def test_xlsx_file_writes_neutralised_text_and_typed_values(tmp_path: Path) -> None:
    path = tmp_path / "export.xlsx"
    aware = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
    rows = [
        ["=1+1", 12672345678, 75.25, dt.date(2024, 1, 31), aware, "bad\x00\x07char", "x" * 40_000],
        ["@SUM(A1)", 2**60, None, True, dt.datetime(2024, 1, 1, 8, 30), "-", "ok"],
    ]
    assert xlsx_file(["phone", "=evil", "amount", "day", "at", "note", "long"], rows, str(path)) == 2
    sheet = openpyxl.load_workbook(path).worksheets[0]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0] == ["phone", "'=evil", "amount", "day", "at", "note", "long"]
    assert values[1][:6] == [
        "'=1+1",
        12672345678,
        75.25,
        dt.datetime(2024, 1, 31),
        "2024-03-01T12:00:00+00:00",
        "badchar",
    ]
    assert len(values[1][6]) == 32_767
    assert values[2][:6] == ["'@SUM(A1)", str(2**60), None, True, dt.datetime(2024, 1, 1, 8, 30), "'-"]
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_xlsx_export_reads_back_through_our_reader(tmp_path: Path) -> None:
    path = tmp_path / "roundtrip.xlsx"
    with XlsxExport(str(path), ["phone", "email"]) as export:
        export.extend([[12672345678 + i, f"u{i}@example.com"] for i in range(1_000)])
    table = open_table(str(path), "xlsx")
    assert table.header == ["phone", "email"]
    rows = list(table.rows())
    assert (len(rows), rows[0], rows[-1].number) == (1_000, (2, ["12672345678", "u0@example.com"]), 1_001)


def test_stoplist_samples_are_three_valid_csvs_with_headers() -> None:
    phonenumbers = pytest.importorskip("phonenumbers")
    data = stoplist_samples_zip()
    assert data == stoplist_samples_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == list(SAMPLES)
        tables = {name: list(csv.reader(io.StringIO(archive.read(name).decode()))) for name in SAMPLES}
    phones, emails, people = (tables[name] for name in SAMPLES)
    assert [phones[0][0], emails[0][0], people[0][0]] == ["phone", "email", "person_id"]
    assert all(phonenumbers.is_valid_number(phonenumbers.parse("+" + row[0])) for row in phones[1:])
    assert all("@" in row[0] and row[0].split("@")[1].startswith("example.") for row in emails[1:])
    channels = {"", "voice", "sms", "whatsapp", "viber", "email", "messenger"}
    assert all(row[1] in channels for table in (phones, emails, people) for row in table[1:])
    assert min(len(t) for t in tables.values()) >= 3
