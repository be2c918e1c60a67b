"""Builders for test files that cannot be written by the libraries under test (.xls, a cheap zip bomb)."""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest

XLS_FIXTURE = Path(__file__).parent / "fixtures" / "contacts.xls"


def build_contacts_xls(path: Path) -> None:
    """A title row, a blank row, a header and two contacts, phones stored as numbers (needs xlwt)."""
    xlwt = importlib.import_module("xlwt")  # dev-only and untyped; fixtures/contacts.xls stands in

    book = xlwt.Workbook()
    sheet = book.add_sheet("Contacts")
    day = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    moment = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM")
    sheet.write(0, 0, "Contact export")
    for col, label in enumerate(["phone", "email", "joined", "amount", "active"]):
        sheet.write(2, col, label)
    sheet.write(3, 0, 12672345678.0)
    sheet.write(3, 1, "ann@example.com")
    sheet.write(3, 2, dt.date(2024, 1, 31), day)
    sheet.write(3, 3, 75.25)
    sheet.write(3, 4, True)
    sheet.write(4, 0, 442079460958)
    sheet.write(4, 1, " bob@example.com ")
    sheet.write(4, 2, dt.datetime(2024, 2, 1, 13, 30), moment)
    sheet.write(4, 3, 3.0)
    sheet.write(4, 4, False)
    book.save(str(path))


@pytest.fixture
def contacts_xls(tmp_path: Path) -> Path:
    """Built with xlwt when the dev group has it, else the same file committed under fixtures/."""
    path = tmp_path / "contacts.xls"
    try:
        build_contacts_xls(path)
    except ImportError:
        shutil.copyfile(XLS_FIXTURE, path)
    return path


def write_zero_bomb(path: Path, *, name: str = "bomb.csv", size: int = 1 << 30) -> None:
    """A zip of `size` "0" characters built in milliseconds: zipfile would deflate the whole gigabyte."""
    # After a full flush every 1 MiB block deflates identically, so one block is computed and repeated.
    # The CRC is left 0: a reader that stops early, as it must, never checks it.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"0" * (1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush()
    blocks = size >> 20
    packed = len(block) * blocks + len(tail)
    raw_name = name.encode()
    with path.open("wb") as out:
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, packed, size, len(raw_name), 0))
        out.write(raw_name)
        for _ in range(blocks):
            out.write(block)
        out.write(tail)
        directory_at = out.tell()
        central = struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, 0, packed, size, len(raw_name), 0, 0, 0, 0, 0, 0
        )
        out.write(central + raw_name)
        out.write(
            struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(raw_name), directory_at, 0)
        )


@pytest.fixture
def zero_bomb(tmp_path: Path) -> Path:
    """A 1 GiB-of-zeros zip of about 1 MiB on disk."""
    path = tmp_path / "bomb.zip"
    write_zero_bomb(path)
    return path


if __name__ == "__main__":
    # Regenerate the committed .xls: python libs/files/tests/conftest.py (with xlwt installed).
    build_contacts_xls(XLS_FIXTURE)
    sys.stdout.write(f"wrote {XLS_FIXTURE}\n")
