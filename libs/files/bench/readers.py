"""Rows per second of the CSV and XLSX readers, for the figures quoted in reviews: python libs/files/bench/readers.py."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import openpyxl

from dialguard.files.tabular import open_table


def _rate(path: Path, kind: str) -> tuple[int, float]:
    table = open_table(str(path), kind)  # type: ignore[arg-type]
    started = time.perf_counter()
    rows = sum(1 for _ in table.rows())
    return rows, rows / (time.perf_counter() - started)


def main() -> None:
    csv_rows, xlsx_rows = 1_000_000, 100_000
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "big.csv"
        with csv_path.open("w") as out:
            out.write("phone,email,name\n")
            out.writelines(f"1267{2000000 + i},user{i}@example.com,Name {i}\n" for i in range(csv_rows))
        # A regular (not write-only) workbook stores text as shared strings, as Excel does.
        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(["phone", "email", "name"])
        for i in range(xlsx_rows):
            sheet.append([12672000000 + i, f"user{i}@example.com", f"Name {i}"])
        xlsx_path = Path(tmp) / "big.xlsx"
        book.save(xlsx_path)
        del book, sheet
        for path, kind in ((csv_path, "csv"), (xlsx_path, "xlsx")):
            rows, rate = _rate(path, kind)
            sys.stdout.write(f"{kind}: {rows:,} rows x 3 columns, {rate:,.0f} rows/s\n")


if __name__ == "__main__":
    main()
