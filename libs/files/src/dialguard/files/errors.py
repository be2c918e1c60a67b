"""File errors, each carrying the contract's code and HTTP status so a route maps any of them in one place."""

from __future__ import annotations

from typing import Any, ClassVar


class FileError(Exception):
    """Base of every refusal of an upload or a file: never a 500 for bad input."""

    code: ClassVar[str] = "bad_file"
    http_status: ClassVar[int] = 422

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[dict[str, Any]] = details or []

    def body(self) -> dict[str, Any]:
        """The contract's error envelope, for callers without their own error type."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class UploadTooLarge(FileError):
    """The file (or the whole body) passed its byte limit while streaming."""

    code, http_status = "file_too_large", 413


class FormTooLarge(FileError):
    """Too many or too large non-file form fields: they are held in memory, so they are capped."""

    code, http_status = "form_too_large", 413


class UnsupportedUpload(FileError):
    """The body is not multipart/form-data."""

    code, http_status = "unsupported_media_type", 415


class MalformedUpload(FileError):
    """The multipart body is broken (bad boundary, truncated, undecodable field)."""

    code, http_status = "malformed_upload", 400


class MissingFile(FileError):
    """No file arrived in the expected form field."""

    code, http_status = "missing_file", 422


class TooManyFiles(FileError):
    """More than one file in the file field: which one was meant is a guess we refuse to make."""

    code, http_status = "too_many_files", 422


class UnsupportedFileType(FileError):
    """Neither the name nor the bytes make it one of the kinds the service accepts."""

    code, http_status = "unsupported_file_type", 415


class ZipBomb(FileError):
    """An archive member expands beyond the byte or ratio limit."""

    code, http_status = "zip_bomb", 413


class EmptyArchive(FileError):
    """A zip with no usable file (only folders, __MACOSX or hidden files)."""

    code, http_status = "empty_archive", 422


class BadArchive(FileError):
    """A zip that cannot be read: corrupt, encrypted or using an unsupported compression."""

    code, http_status = "bad_archive", 422


class EmptyFile(FileError):
    """No data rows (after skip_rows and the header)."""

    code, http_status = "empty_file", 422


class BadEncoding(FileError):
    """Text that decodes as none of the accepted encodings."""

    code, http_status = "bad_encoding", 422


class MalformedFile(FileError):
    """Text that the csv module cannot split into rows (unclosed quote, absurdly long line)."""

    code, http_status = "malformed_file", 422


class BadSpreadsheet(FileError):
    """An .xlsx/.xls that the spreadsheet library cannot open (corrupt, encrypted, not a workbook)."""

    code, http_status = "bad_spreadsheet", 422
