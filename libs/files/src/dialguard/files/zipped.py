"""The first usable file of a .zip, extracted with a running byte count so a zip bomb stops early."""

from __future__ import annotations

import os
import tempfile
import zipfile

from dialguard.files.errors import EmptyArchive, UnsupportedFileType, ZipBomb
from dialguard.files.sniff import Kind, detect_kind


def open_first_member(
    path: str,
    *,
    allowed: tuple[str, ...] = ("csv", "txt", "xlsx"),
    max_uncompressed: int = 200 * 1024 * 1024,
    max_ratio: float = 200.0,
) -> tuple[str, Kind, str]:
    """(member name, its kind, path of the extracted temp file); others in the archive are ignored."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UnsupportedFileType(f"not a readable zip archive: {exc}") from exc
    with archive:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir()
            and not m.filename.startswith("__MACOSX/")
            and not os.path.basename(m.filename).startswith(".")
        ]
        if not members:
            raise EmptyArchive("the zip archive contains no file")
        member = members[0]
        with archive.open(member) as src:
            head = src.read(8)
        kind = detect_kind(member.filename, head, allowed)
        fd, out_path = tempfile.mkstemp(prefix="dg-unzip-")
        written = 0
        try:
            with os.fdopen(fd, "wb") as out, archive.open(member) as src:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    compressed = max(member.compress_size, 1)
                    if written > max_uncompressed or written / compressed > max_ratio:
                        raise ZipBomb(
                            f"{member.filename!r} expands beyond {max_uncompressed} bytes or ratio {max_ratio}"
                        )
                    out.write(chunk)
        except BaseException:
            os.unlink(out_path)
            raise
    return member.filename, kind, out_path
