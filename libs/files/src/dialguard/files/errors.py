"""File errors that map one-to-one to the contract's 4xx responses."""

from __future__ import annotations


class FileError(Exception):
    """Base: a clear, specific reason an upload or file was refused."""

    code = "bad_file"
    http_status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UploadTooLarge(FileError):
    code, http_status = "file_too_large", 413


class UnsupportedUpload(FileError):
    code, http_status = "unsupported_media_type", 415


class UnsupportedFileType(FileError):
    code, http_status = "unsupported_file_type", 415


class MissingFile(FileError):
    code, http_status = "missing_file", 422


class ZipBomb(FileError):
    code, http_status = "zip_bomb", 413


class EmptyArchive(FileError):
    code, http_status = "empty_archive", 422


class EmptyFile(FileError):
    code, http_status = "empty_file", 422


class BadEncoding(FileError):
    code, http_status = "bad_encoding", 422


class BadSpreadsheet(FileError):
    code, http_status = "bad_spreadsheet", 422
