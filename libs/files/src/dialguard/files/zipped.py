"""The first usable file of a .zip, extracted with a running byte count so a zip bomb is stopped early."""

from __future__ import annotations

import contextlib
import lzma
import os
import tempfile
import zipfile
import zlib
from collections.abc import Collection
from pathlib import PurePosixPath
from typing import Final, NamedTuple

from dialguard.files.errors import BadArchive, EmptyArchive, UnsupportedFileType, ZipBomb
from dialguard.files.sniff import HEAD_BYTES, Kind, accepted_text, detect_kind

DEFAULT_MAX_UNCOMPRESSED: Final = 200 * 1024 * 1024
RATIO_FLOOR: Final = 1024 * 1024
"""Below this many bytes out, a high ratio is just a small repetitive file, not a bomb."""
_CHUNK: Final = 1024 * 1024
_JUNK_NAMES: Final = frozenset({"thumbs.db", "desktop.ini"})
_CORRUPT: Final = (zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError)
"""What inflating a damaged member raises (bz2 reports bad data as OSError)."""
_READABLE_METHODS: Final = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)


class ZipMember(NamedTuple):
    """What was taken from the archive; unpacks as (name, kind, path) and the caller deletes path."""

    name: str
    kind: Kind
    path: str


def is_junk(info: zipfile.ZipInfo) -> bool:
    """Folders, macOS resource forks and hidden or OS files are never what the user meant to upload."""
    if info.is_dir():
        return True
    parts = PurePosixPath(info.filename.replace("\\", "/")).parts
    if not parts or parts[0] == "__MACOSX":
        return True
    return any(p.startswith(".") for p in parts) or parts[-1].lower() in _JUNK_NAMES


def check_expansion(
    infos: Collection[zipfile.ZipInfo], *, max_uncompressed: int, max_ratio: float | None = None
) -> None:
    """Refuse by the declared sizes before inflating anything (zipfile never yields more than declared)."""
    total = 0
    for info in infos:
        total += info.file_size
        if total > max_uncompressed:
            raise ZipBomb(
                f"the archive expands to more than {max_uncompressed} bytes",
                details=[{"field": "file", "member": info.filename, "limit": max_uncompressed}],
            )
        if max_ratio is not None and info.file_size > max(RATIO_FLOOR, max_ratio * info.compress_size):
            raise ZipBomb(
                f"{info.filename!r} expands more than {max_ratio:g} times",
                details=[{"field": "file", "member": info.filename, "max_ratio": max_ratio}],
            )


def _open_archive(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadArchive(f"not a readable zip archive: {exc}") from exc


def open_first_member(
    path: str,
    *,
    allowed: Collection[str] = ("csv", "txt", "xlsx", "xls"),
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    max_ratio: float = 100.0,
    spool_dir: str | None = None,
) -> ZipMember:
    """Extract the first usable member to a temp file; later members are ignored, nested zips not opened."""
    inner = [k for k in allowed if k != "zip"]
    with _open_archive(path) as archive:
        member = next((i for i in archive.infolist() if not is_junk(i)), None)
        if member is None:
            raise EmptyArchive("the zip archive contains no file (only folders or hidden files)")
        if member.flag_bits & 0x1:
            raise BadArchive(f"{member.filename!r} in the archive is password-protected")
        if member.compress_type not in _READABLE_METHODS:
            raise BadArchive(f"{member.filename!r} uses a compression method that cannot be read; re-zip it")
        check_expansion([member], max_uncompressed=max_uncompressed, max_ratio=max_ratio)
        try:
            with archive.open(member) as src:
                head = src.read(HEAD_BYTES)
        except _CORRUPT as exc:
            raise BadArchive(f"{member.filename!r} in the archive is corrupt: {exc}") from exc
        try:
            kind = detect_kind(member.filename, head, inner)
        except UnsupportedFileType as exc:
            raise UnsupportedFileType(
                f"the first file in the archive, {member.filename!r}, is not one of "
                f"{accepted_text(inner)} (nested archives are not opened)",
                details=exc.details,
            ) from exc
        suffix = PurePosixPath(member.filename).suffix.lower()[:10]
        fd, out_path = tempfile.mkstemp(prefix="dialguard-unzip-", suffix=suffix, dir=spool_dir)
        try:
            _extract(archive, member, fd, max_uncompressed=max_uncompressed, max_ratio=max_ratio)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out_path)
            raise
    return ZipMember(member.filename, kind, out_path)


def _extract(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, fd: int, *, max_uncompressed: int, max_ratio: float
) -> None:
    """Inflate in chunks, counting as we go, so a header that lies about sizes is caught by the bytes."""
    allowed_by_ratio = max(RATIO_FLOOR, max_ratio * member.compress_size)
    written = 0
    with os.fdopen(fd, "wb") as out, archive.open(member) as src:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except _CORRUPT as exc:
                raise BadArchive(f"{member.filename!r} in the archive is corrupt: {exc}") from exc
            if not chunk:
                return
            written += len(chunk)
            if written > max_uncompressed:
                raise ZipBomb(f"{member.filename!r} expands to more than {max_uncompressed} bytes")
            if written > allowed_by_ratio:
                raise ZipBomb(f"{member.filename!r} expands more than {max_ratio:g} times")
            out.write(chunk)
