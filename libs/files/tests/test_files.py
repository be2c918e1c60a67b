"""Readers, limits and safe exports of dialguard.files."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import pytest

from dialguard.files.errors import (
    BadEncoding,
    EmptyArchive,
    EmptyFile,
    UnsupportedFileType,
    UploadTooLarge,
    ZipBomb,
)
from dialguard.files.export import csv_stream, safe_cell
from dialguard.files.samples import stoplist_samples_zip
from dialguard.files.sniff import detect_kind
from dialguard.files.tabular import count_rows, detect_encoding, open_table
from dialguard.files.upload import receive_upload
from dialguard.files.zipped import open_first_member


def write(tmp_path: Path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_semicolon_csv_with_bom_and_header(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "\ufeffPhone;Name\n12672345678;Ann\n442079460958;Bob\n".encode())
    t = open_table(path, "csv")
    assert (t.delimiter, t.header) == (";", ["Phone", "Name"])
    assert list(t.rows()) == [(2, ["12672345678", "Ann"]), (3, ["442079460958", "Bob"])]


def test_cp1252_quoted_newline_and_skip_rows(tmp_path: Path) -> None:
    data = 'exported by CRM\n\nphone,note\n12672345678,"caf\xe9\nsecond line"\n'.encode("cp1252")
    path = write(tmp_path, "b.csv", data)
    assert detect_encoding(path) == "cp1252"
    t = open_table(path, "csv", skip_rows=2)
    assert t.header == ["phone", "note"]
    assert list(t.rows()) == [(5, ["12672345678", "café\nsecond line"])]


def test_headerless_single_column_and_empty_files(tmp_path: Path) -> None:
    t = open_table(write(tmp_path, "c.txt", b"12672345678\n12672345679\n"), "txt")
    assert t.header is None
    assert count_rows(t) == 2
    with pytest.raises(EmptyFile):
        open_table(write(tmp_path, "d.csv", b""), "csv")
    with pytest.raises(EmptyFile):
        open_table(write(tmp_path, "e.csv", b"phone\n"), "csv")
    with pytest.raises(BadEncoding):
        detect_encoding(write(tmp_path, "f.csv", b"\x81\x8d\x8f\x90\x9d"))


def test_xlsx_numbers_formulas_and_cached_values(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["phone", "total"])
    sheet.append([12672345678, "=1+1"])
    path = str(tmp_path / "g.xlsx")
    book.save(path)
    t = open_table(path, "xlsx")
    assert t.header == ["phone", "total"]
    # openpyxl writes no cached value for a formula: the cell reads empty rather than as formula text.
    assert list(t.rows()) == [(2, ["12672345678", ""])]


def test_kinds_and_zip_members(tmp_path: Path) -> None:
    assert detect_kind("x.CSV", b"a,b", {"csv"}) == "csv"
    with pytest.raises(UnsupportedFileType):
        detect_kind("x.pdf", b"%PDF", {"csv", "txt"})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("__MACOSX/._x", b"junk")
        zf.writestr("list.csv", b"phone\n12672345678\n")
        zf.writestr("other.csv", b"phone\n1\n")
    name, kind, extracted = open_first_member(write(tmp_path, "h.zip", buf.getvalue()))
    assert (name, kind, Path(extracted).read_bytes()) == ("list.csv", "csv", b"phone\n12672345678\n")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(EmptyArchive):
        open_first_member(write(tmp_path, "i.zip", empty.getvalue()))


def test_zip_bomb_is_stopped_early(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("bomb.csv", "w") as member:
        chunk = b"0" * (1 << 20)
        for _ in range(300):
            member.write(chunk)
    with pytest.raises(ZipBomb):
        open_first_member(str(path), max_uncompressed=50 << 20)


class FakeRequest:
    def __init__(self, body: bytes, boundary: str) -> None:
        self.headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        self._body = body
        self.read = 0

    async def stream(self):  # type: ignore[no-untyped-def]
        for i in range(0, len(self._body), 65536):
            self.read += 65536
            yield self._body[i : i + 65536]


def _multipart(boundary: str, file_bytes: bytes) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="skip_rows"\r\n\r\n1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + file_bytes
        + f"\r\n--{boundary}--\r\n".encode()
    )


async def test_upload_streams_to_disk_and_stops_at_the_limit() -> None:
    ok = FakeRequest(_multipart("xyz", b"phone\n1\n"), "xyz")
    with await receive_upload(ok, max_bytes=1000) as up:  # type: ignore[arg-type]
        assert (up.filename, up.field("skip_rows"), Path(up.path).read_bytes()) == (
            "a.csv",
            "1",
            b"phone\n1\n",
        )
    big = FakeRequest(_multipart("xyz", b"1" * (5 << 20)), "xyz")
    with pytest.raises(UploadTooLarge):
        await receive_upload(big, max_bytes=1 << 20)  # type: ignore[arg-type]
    assert big.read < 2 << 20


def test_formula_injection_is_neutralised() -> None:
    assert [safe_cell(v) for v in ["=1+1", "+1", "-2", "@SUM", "plain", None, 5]] == [
        "'=1+1",
        "'+1",
        "'-2",
        "'@SUM",
        "plain",
        "",
        "5",
    ]


async def test_csv_stream_and_samples() -> None:
    data = b"".join([c async for c in csv_stream(["a"], [["=x"], ["y"]])])
    assert data == b"a\r\n'=x\r\ny\r\n"
    with zipfile.ZipFile(io.BytesIO(stoplist_samples_zip())) as zf:
        assert len(zf.namelist()) == 3


def test_million_rows_read_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("phone\n")
        for i in range(1_000_000):
            fh.write(f"1267{2000000 + i}\n")
    tracemalloc.start()
    n = count_rows(open_table(str(path), "csv"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 1_000_000
    assert peak < 20 * 1024 * 1024
