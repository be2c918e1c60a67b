"""Kinds by name and magic bytes; the first member of a zip; bombs and junk-only archives refused."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from dialguard.files import zipped
from dialguard.files.errors import BadArchive, EmptyArchive, UnsupportedFileType, ZipBomb
from dialguard.files.sniff import OLE2_MAGIC, detect_kind
from dialguard.files.zipped import open_first_member

SUPPRESSION = {"csv", "txt", "xlsx", "zip"}
CONTACT_LIST = {"csv", "xls", "xlsx"}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _xlsx_bytes() -> bytes:
    book = openpyxl.Workbook()
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_text_kinds_come_from_the_extension_case_insensitively() -> None:
    assert detect_kind("LIST.CSV", b"phone\n1", SUPPRESSION) == "csv"
    assert detect_kind("C:\\Users\\ann\\list.txt", b"1\n", SUPPRESSION) == "txt"
    assert detect_kind("unicode.txt", "a\tb".encode("utf-16"), SUPPRESSION) == "txt"


def test_binary_kinds_come_from_magic_bytes_so_renamed_workbooks_still_read() -> None:
    xlsx = _xlsx_bytes()
    assert detect_kind("list.xlsx", xlsx, SUPPRESSION) == "xlsx"
    assert detect_kind("list.xls", xlsx, CONTACT_LIST) == "xlsx"
    assert detect_kind("export", xlsx, SUPPRESSION) == "xlsx"
    assert detect_kind("list.zip", xlsx, SUPPRESSION) == "zip"
    assert detect_kind("archive", _zip({"a.csv": b"1"}), SUPPRESSION) == "zip"
    assert detect_kind("legacy.xls", OLE2_MAGIC + b"\0" * 100, CONTACT_LIST) == "xls"


def test_each_service_gets_415_naming_what_it_accepts() -> None:
    with pytest.raises(UnsupportedFileType) as pdf:
        detect_kind("contract.pdf", b"%PDF-1.7", SUPPRESSION)
    assert pdf.value.http_status == 415
    assert pdf.value.code == "unsupported_file_type"
    assert ".csv, .txt, .xlsx, .zip" in pdf.value.message
    with pytest.raises(UnsupportedFileType, match=r"accepted: \.csv, \.xlsx, \.xls$"):
        detect_kind("list.zip", _zip({"a.csv": b"1"}), CONTACT_LIST)
    with pytest.raises(UnsupportedFileType, match="password-protected"):
        detect_kind("secret.xlsx", OLE2_MAGIC, SUPPRESSION)


def test_text_named_files_with_binary_content_are_refused() -> None:
    with pytest.raises(UnsupportedFileType, match="binary"):
        detect_kind("photo.csv", b"\x89PNG\r\n\x1a\n\0\0", SUPPRESSION)
    with pytest.raises(UnsupportedFileType, match="not a real"):
        detect_kind("fake.xlsx", b"phone\n1\n", SUPPRESSION)


def test_first_usable_member_skips_folders_macos_and_hidden_files(tmp_path: Path) -> None:
    archive = tmp_path / "upload.zip"
    archive.write_bytes(
        _zip(
            {
                "exports/": b"",
                "__MACOSX/exports/._list.csv": b"junk",
                ".DS_Store": b"junk",
                "exports/.hidden.csv": b"junk",
                "exports/list.csv": b"phone\n12672345678\n",
                "exports/other.csv": b"phone\n1\n",
            }
        )
    )
    spool = tmp_path / "spool"
    spool.mkdir()
    name, kind, path = open_first_member(str(archive), spool_dir=str(spool))
    assert (name, kind) == ("exports/list.csv", "csv")
    assert Path(path).read_bytes() == b"phone\n12672345678\n"
    assert Path(path).parent == spool


def test_empty_and_junk_only_archives_are_empty(tmp_path: Path) -> None:
    for index, members in enumerate([{}, {"dir/": b"", "__MACOSX/._x": b"j", "Thumbs.db": b"j"}]):
        path = tmp_path / f"e{index}.zip"
        path.write_bytes(_zip(members))
        with pytest.raises(EmptyArchive) as exc:
            open_first_member(str(path))
        assert exc.value.code == "empty_archive"


def test_nested_zip_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "outer.zip"
    path.write_bytes(_zip({"inner.zip": _zip({"a.csv": b"phone\n1\n"})}))
    with pytest.raises(UnsupportedFileType, match="nested archives"):
        open_first_member(str(path), allowed=("csv", "txt", "xlsx"))


def test_a_gigabyte_of_zeros_is_refused_before_inflating(tmp_path: Path, zero_bomb: Path) -> None:
    bomb = zero_bomb
    assert bomb.stat().st_size < 2 << 20
    spool = tmp_path / "spool"
    spool.mkdir()
    started = time.perf_counter()
    with pytest.raises(ZipBomb) as exc:
        open_first_member(str(bomb), max_uncompressed=200 << 20, spool_dir=str(spool))
    assert time.perf_counter() - started < 1
    assert (exc.value.code, exc.value.http_status) == ("zip_bomb", 413)
    assert os.listdir(spool) == []


def test_running_count_stops_a_bomb_whose_header_is_not_trusted(
    tmp_path: Path, zero_bomb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zipped, "check_expansion", lambda *a, **k: None)
    bomb = zero_bomb
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(ZipBomb, match="more than 10 times"):
        open_first_member(str(bomb), max_uncompressed=2 << 30, max_ratio=10, spool_dir=str(spool))
    with pytest.raises(ZipBomb, match="more than 8388608 bytes"):
        open_first_member(str(bomb), max_uncompressed=8 << 20, max_ratio=10_000, spool_dir=str(spool))
    assert os.listdir(spool) == []


def test_small_repetitive_files_are_not_mistaken_for_bombs(tmp_path: Path) -> None:
    path = tmp_path / "small.zip"
    path.write_bytes(_zip({"same.csv": b"12672345678\n" * 50_000}))
    member = open_first_member(str(path), spool_dir=str(tmp_path))
    assert Path(member.path).stat().st_size == 600_000


def test_corrupt_and_encrypted_archives_are_422(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(BadArchive) as exc:
        open_first_member(str(corrupt))
    assert exc.value.http_status == 422
    data = bytearray(_zip({"a.csv": b"phone\n1\n"}))
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1
    encrypted = tmp_path / "encrypted.zip"
    encrypted.write_bytes(bytes(data))
    with pytest.raises(BadArchive, match="password"):
        open_first_member(str(encrypted))
