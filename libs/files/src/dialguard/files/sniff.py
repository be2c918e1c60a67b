"""What kind of file an upload is, by its name and its first bytes."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from dialguard.files.errors import UnsupportedFileType

Kind = Literal["csv", "txt", "xlsx", "xls", "zip"]
ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def detect_kind(filename: str, head: bytes, allowed: Collection[str]) -> Kind:
    """Magic bytes win over the extension (an .xlsx is a zip: its extension decides)."""
    name = filename.lower()
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    kind: Kind | None
    if head.startswith(ZIP_MAGIC):
        kind = "xlsx" if ext in ("xlsx", "xlsm") else "zip"
    elif head.startswith(OLE2_MAGIC):
        kind = "xls"
    elif ext in ("csv", "txt", "tsv"):
        kind = "txt" if ext in ("txt", "tsv") else "csv"
        if b"\x00" in head[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UnsupportedFileType(f"{filename!r} looks binary, not text")
    else:
        kind = None
    if kind is None or kind not in allowed:
        raise UnsupportedFileType(f"unsupported file {filename!r}; accepted: {', '.join(sorted(allowed))}")
    return kind
