"""What kind of file an upload is, from its name and its first bytes, checked against what a service accepts."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import PurePosixPath
from typing import Final, Literal, get_args

from dialguard.files.errors import UnsupportedFileType

Kind = Literal["csv", "txt", "xlsx", "xls", "zip"]
ALL_KINDS: Final[tuple[Kind, ...]] = get_args(Kind)
TEXT_KINDS: Final[frozenset[str]] = frozenset({"csv", "txt"})
SHEET_KINDS: Final[frozenset[str]] = frozenset({"xlsx", "xls"})

ZIP_MAGICS: Final = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
_BINARY_MAGICS: Final = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"Rar!", b"\x1f\x8b", b"7z\xbc\xaf")
_OOXML_FIRST_MEMBERS: Final = (b"[Content_Types].xml", b"_rels/", b"docProps/", b"xl/")
HEAD_BYTES: Final = 8192
"""How many leading bytes detect_kind wants: enough for a zip's first member name and a text check."""


def accepted_text(allowed: Collection[str]) -> str:
    """`.csv, .txt, .xlsx` — the form a user recognises, in a stable order."""
    return ", ".join(f".{k}" for k in ALL_KINDS if k in allowed)


def _first_zip_member_name(head: bytes) -> bytes:
    """The name in a zip's first local header, which tells an .xlsx from a plain zip without unpacking."""
    if not head.startswith(ZIP_MAGICS[0]) or len(head) < 30:
        return b""
    name_len = int.from_bytes(head[26:28], "little")
    return head[30 : 30 + name_len]


def _looks_binary(head: bytes) -> bool:
    """NUL bytes or a known binary signature: not something a CSV reader should be handed."""
    if head.startswith(UTF16_BOMS):
        return False
    return head.startswith(_BINARY_MAGICS) or b"\x00" in head


def detect_kind(filename: str, head: bytes, allowed: Collection[str] = ALL_KINDS) -> Kind:
    """Magic bytes decide binary kinds (a renamed .xlsx still reads), the extension decides text kinds."""
    ext = PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")
    kind: Kind | None = None
    hint = ""
    if head.startswith(ZIP_MAGICS):
        if ext == "zip":
            kind = "zip"
        elif ext in SHEET_KINDS or _first_zip_member_name(head).startswith(_OOXML_FIRST_MEMBERS):
            kind = "xlsx"
        else:
            kind = "zip"
    elif head.startswith(OLE2_MAGIC):
        kind = "xls"
        if ext == "xlsx":
            hint = " (a password-protected workbook, or an old .xls renamed to .xlsx)"
    elif ext in TEXT_KINDS:
        if _looks_binary(head[:HEAD_BYTES]):
            raise UnsupportedFileType(
                f"{filename!r} is named .{ext} but its content is binary, not text; "
                f"accepted: {accepted_text(allowed)}",
                details=[{"field": "file", "accepted": [k for k in ALL_KINDS if k in allowed]}],
            )
        kind = "csv" if ext == "csv" else "txt"
    elif ext in ("xlsx", "xls", "zip"):
        hint = f" (its content is not a real .{ext} file)"
    if kind is None or kind not in allowed:
        shown = f".{kind} content" if kind is not None else (f".{ext}" if ext else "no extension")
        raise UnsupportedFileType(
            f"unsupported file {filename!r} ({shown}){hint}; accepted: {accepted_text(allowed)}",
            details=[{"field": "file", "accepted": [k for k in ALL_KINDS if k in allowed]}],
        )
    return kind
