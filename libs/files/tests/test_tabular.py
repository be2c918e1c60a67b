"""Streaming readers: encodings, delimiters, quoted newlines, headers, skip_rows, spreadsheets' cell rules."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pytest

from dialguard.files.errors import BadEncoding, BadSpreadsheet, EmptyFile, MalformedFile, ZipBomb
from dialguard.files.tabular import (
    Row,
    count_rows,
    detect_delimiter,
    detect_encoding,
    looks_like_header,
    open_table,
    preview,
)


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


# --- text ------------------------------------------------------------------------------------------


def test_semicolons_and_a_utf8_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "\ufeffPhone;Name\r\n12672345678;Zoë\r\n442079460958;Bob\r\n".encode())
    table = open_table(path, "csv")
    assert (table.encoding, table.delimiter, table.header) == ("utf-8-sig", ";", ["Phone", "Name"])
    assert list(table.rows()) == [(2, ["12672345678", "Zoë"]), (3, ["442079460958", "Bob"])]


def test_windows_1252_text_reads_its_accents(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", "email,name\nrene@example.com,René Ç\n".encode("cp1252"))
    table = open_table(path, "csv")
    assert table.encoding == "cp1252"
    assert list(table.rows()) == [(2, ["rene@example.com", "René Ç"])]


def test_the_whole_file_decides_the_encoding_not_a_sample(tmp_path: Path) -> None:
    body = b"phone\n" + b"12672345678\n" * 200_000 + "caf\xe9\n".encode("cp1252")
    path = write(tmp_path, "late.csv", body)
    assert detect_encoding(path) == "cp1252"
    assert list(open_table(path, "csv").rows())[-1] == (200_002, ["café"])


def test_bytes_that_no_candidate_decodes_are_bad_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", b"phone\n12672345678\n\x81\x8d\x8f\x90\x9d\n")
    with pytest.raises(BadEncoding, match=r"utf-8 \(line 3\), cp1252 \(line 3\)") as exc:
        open_table(path, "csv")
    assert (exc.value.code, exc.value.http_status) == ("bad_encoding", 422)


def test_excel_unicode_text_is_utf16_with_tabs(tmp_path: Path) -> None:
    path = write(tmp_path, "u.txt", "phone\tname\r\n12672345678\tŁukasz\r\n".encode("utf-16"))
    table = open_table(path, "txt")
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert list(table.rows()) == [(2, ["12672345678", "Łukasz"])]


def test_quoted_newlines_keep_the_line_numbers_of_the_original_file(tmp_path: Path) -> None:
    data = b'phone,note\n12672345678,"first line\nsecond line"\n442079460958,plain\n'
    table = open_table(write(tmp_path, "q.csv", data), "csv")
    assert list(table.rows()) == [
        (2, ["12672345678", "first line\nsecond line"]),
        (4, ["442079460958", "plain"]),
    ]


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("phone,name\n1267,Ann\n4420,Bob\n", ","),
        ("phone;amount\n1267;75,25\n4420;3,50\n", ";"),
        ("phone\tname\n1267\tAnn\n4420\tBob\n", "\t"),
        ("phone|name\n1267|Ann\n4420|Bob\n", "|"),
        ('name,phone\n"Smith, John",1267\n"Doe, Jane",4420\n', ","),
        ("12672345678\n442079460958\n", ","),
        ("ann@example.com\nbob@example.org\n", ","),
    ],
)
def test_delimiter_detection(text: str, delimiter: str) -> None:
    assert detect_delimiter(text) == delimiter


def test_one_column_file_without_header(tmp_path: Path) -> None:
    table = open_table(write(tmp_path, "c.txt", b"12672345678\n\n442079460958\n"), "txt")
    assert table.header is None
    assert list(table.rows()) == [(1, ["12672345678"]), (3, ["442079460958"])]
    assert count_rows(table) == 2


@pytest.mark.parametrize(
    ("first", "later", "expected"),
    [
        (["Contact information", "Sender"], [["1234567890", "9876543210"]], True),
        (["phone"], [["12672345678"]], True),
        (["person_id"], [["CRM-1"], ["CRM-2"]], True),
        (["Kundennummer"], [["K-100"], ["K-200"]], True),
        (["Mail"], [["ann@example.com"]], True),
        (["12672345678", "Ann"], [["442079460958", "Bob"]], False),
        (["ann@example.com"], [["bob@example.com"]], False),
        (["Alice"], [["Bob"], ["Carol"]], False),
        (["2024-01-01", "x"], [["2024-01-02", "y"]], False),
        (["", ""], [["1", "2"]], False),
    ],
)
def test_header_detection(first: list[str], later: list[list[str]], expected: bool) -> None:
    assert looks_like_header(first, later) is expected


def test_has_header_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "names.csv", b"Alice\nBob\n")
    assert open_table(path, "csv").header is None
    forced = open_table(path, "csv", has_header=True)
    assert (forced.header, list(forced.rows())) == (["Alice"], [(2, ["Bob"])])
    labelled = write(tmp_path, "labelled.csv", b"phone\n12672345678\n")
    assert preview(labelled, "csv", has_header=False)[0] == (1, ["phone"])


def test_skip_rows_skips_lines_before_the_header_and_keeps_numbering(tmp_path: Path) -> None:
    data = b'Exported by CRM on 2024-01-01, "all" lists\n\nphone;name\n12672345678;Ann\n'
    table = open_table(write(tmp_path, "s.csv", data), "csv", skip_rows=2)
    assert (table.delimiter, table.header) == (";", ["phone", "name"])
    assert list(table.rows()) == [(4, ["12672345678", "Ann"])]
    assert preview(table, 5) == [(4, ["12672345678", "Ann"])]


def test_empty_files_header_only_files_and_skipping_everything(tmp_path: Path) -> None:
    for name, data, skip in [("e.csv", b"", 0), ("blank.csv", b"\n ,, \n", 0), ("h.csv", b"phone\n", 0)]:
        with pytest.raises(EmptyFile) as exc:
            open_table(write(tmp_path, name, data), "csv", skip_rows=skip)
        assert (exc.value.code, exc.value.http_status) == ("empty_file", 422)
    with pytest.raises(EmptyFile, match="after skipping 5 rows"):
        open_table(write(tmp_path, "short.csv", b"1\n2\n"), "csv", skip_rows=5)


def test_unclosed_quote_and_endless_lines_are_malformed_not_crashes(tmp_path: Path) -> None:
    unclosed = b'phone,note\n12672345678,ok\n442079460958,"never closed\n' + b"x" * 200_000 + b"\n"
    with pytest.raises(MalformedFile, match="line 3") as exc:
        list(open_table(write(tmp_path, "u.csv", unclosed), "csv").rows())
    assert exc.value.code == "malformed_file"
    endless = b"phone\n" + b"1," * 600_000 + b"\n"
    with pytest.raises(MalformedFile, match="line 2 is longer"):
        list(open_table(write(tmp_path, "l.csv", endless), "csv", has_header=True).rows())


def test_preview_and_count_from_a_path_or_a_table(tmp_path: Path) -> None:
    lines = "".join(f"1267{2000000 + i},user{i}@example.com\n" for i in range(100))
    path = write(tmp_path, "p.csv", ("phone,email\n" + lines).encode())
    table = open_table(path, "csv")
    assert [row.number for row in preview(table, 30)] == list(range(2, 32))
    assert [row.number for row in preview(path, "csv", 0, 3)] == [2, 3, 4]
    assert preview(path, "csv", 50, n=1) == [(51, ["12672000049", "user49@example.com"])]
    assert (count_rows(table), count_rows(path, "csv"), count_rows(path, "csv", 90)) == (100, 100, 11)


def test_rows_are_pairs_that_also_name_their_parts() -> None:
    row = Row(7, ["a"])
    number, cells = row
    assert (number, cells, row.number, row.cells, row.errors) == (7, ["a"], 7, ["a"], ())


_CHILD = """
import json, resource, sys, time
from dialguard.files.tabular import open_table
table = open_table(sys.argv[1], "csv")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
rows = last = 0
for number, _cells in table.rows():
    rows += 1
    last = number
elapsed = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "last": last, "grew_kb": after - before, "rows_per_s": rows / elapsed}))
"""


def test_a_million_rows_stream_in_bounded_memory(tmp_path: Path) -> None:
    """Peak RSS of a fresh process: tracemalloc would make the loop ten times slower, and RSS sees C buffers."""
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("phone,email\n")
        out.writelines(f"1267{2000000 + i},u{i}@example.com\n" for i in range(1_000_000))
    assert path.stat().st_size > 30_000_000
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert (result["rows"], result["last"]) == (1_000_000, 1_000_001)
    assert result["grew_kb"] < 50 * 1024, result
    print(f"csv: {result['rows_per_s']:,.0f} rows/s, peak RSS grew {result['grew_kb'] / 1024:.1f} MiB")


# --- xlsx ------------------------------------------------------------------------------------------


def _set_cached_value(path: Path, cell: str, value: str) -> None:
    """openpyxl never saves a formula's result; write one in as Excel would, to test reading it."""
    sheet_xml = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path) as source:
        parts = {info.filename: source.read(info) for info in source.infolist()}
    xml = parts[sheet_xml].decode()
    patched, count = re.subn(
        rf'(<c r="{cell}"[^>]*>\s*<f>[^<]*</f>)\s*<v\s*(/>|>\s*</v>)', rf"\1<v>{value}</v>", xml
    )
    assert count == 1, xml
    parts[sheet_xml] = patched.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)


def test_xlsx_cells_follow_the_text_rules(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Stoplist export"])
    sheet.append([])
    sheet.append(["phone", "email", "joined", "seen", "amount", "active", "total", "pending", "lookup"])
    sheet.append(
        [
            12672345678,
            " ann@example.com ",
            dt.date(2024, 1, 31),
            dt.datetime(2024, 2, 1, 13, 30),
            75.25,
            True,
            "=A4*2",
            "=1+1",
            "#N/A",
        ]
    )
    sheet.append([])
    sheet.append([12672345679.0, "bob@example.com", None, None, 3.0, False, None, None, None])
    path = tmp_path / "list.xlsx"
    book.save(path)
    _set_cached_value(path, "G4", "25344691356")

    table = open_table(str(path), "xlsx", skip_rows=2)
    assert table.header == [
        "phone",
        "email",
        "joined",
        "seen",
        "amount",
        "active",
        "total",
        "pending",
        "lookup",
    ]
    assert (table.encoding, table.delimiter) == (None, None)
    first, second = list(table.rows())
    assert first == (
        4,
        [
            "12672345678",
            "ann@example.com",
            "2024-01-31",
            "2024-02-01T13:30:00",
            "75.25",
            "TRUE",
            "25344691356",
            "",
            "",
        ],
    )
    assert [(e.column, e.code) for e in first.errors] == [(8, "formula_without_value"), (9, "cell_error")]
    assert "H4" in first.errors[0].message
    assert second == (6, ["12672345679", "bob@example.com", "", "", "3", "FALSE"])
    assert second.errors == ()
    assert count_rows(table) >= 2


def test_xlsx_spooled_without_an_extension_opens(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["phone"])
    sheet.append([12672345678])
    path = tmp_path / "dialguard-upload-abc"  # how uploads are spooled: no Excel extension
    book.save(path)
    table = open_table(str(path), "xlsx")
    assert table.header == ["phone"]
    assert list(table.rows()) == [(2, ["12672345678"])]


def test_xlsx_without_header_and_count_from_declared_size(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for i in range(40):
        sheet.append([12672345678 + i])
    path = tmp_path / "n.xlsx"
    book.save(path)
    table = open_table(str(path), "xlsx")
    assert table.header is None
    assert preview(table, 2) == [(1, ["12672345678"]), (2, ["12672345679"])]
    assert count_rows(table) == 40
    assert sum(1 for _ in table.rows()) == 40


def test_unreadable_workbooks_are_bad_spreadsheets(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("[Content_Types].xml", "<nope")
    with pytest.raises(BadSpreadsheet) as exc:
        open_table(str(broken), "xlsx")
    assert exc.value.http_status == 422
    with pytest.raises(BadSpreadsheet):
        open_table(write(tmp_path, "x.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600), "xls")


def test_xlsx_that_would_inflate_past_the_limit_is_refused(tmp_path: Path, zero_bomb: Path) -> None:
    renamed = tmp_path / "bomb.xlsx"
    shutil.copyfile(zero_bomb, renamed)
    with pytest.raises(ZipBomb):
        open_table(str(renamed), "xlsx")


# --- xls -------------------------------------------------------------------------------------------


def test_xls_follows_the_same_rules(contacts_xls: Path) -> None:
    table = open_table(str(contacts_xls), "xls", skip_rows=2)
    assert table.header == ["phone", "email", "joined", "amount", "active"]
    assert list(table.rows()) == [
        (4, ["12672345678", "ann@example.com", "2024-01-31", "75.25", "TRUE"]),
        (5, ["442079460958", "bob@example.com", "2024-02-01T13:30:00", "3", "FALSE"]),
    ]
    assert count_rows(table) == 2
    raw = open_table(str(contacts_xls), "xls", has_header=False)
    assert [row.number for row in raw.rows()] == [1, 3, 4, 5]
