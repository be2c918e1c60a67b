"""Uploads, file sniffing, zip handling, streaming table readers and safe exports shared by the services."""

from dialguard.files.errors import (
    BadArchive,
    BadEncoding,
    BadSpreadsheet,
    EmptyArchive,
    EmptyFile,
    FileError,
    FormTooLarge,
    MalformedFile,
    MalformedUpload,
    MissingFile,
    TooManyFiles,
    UnsupportedFileType,
    UnsupportedUpload,
    UploadTooLarge,
    ZipBomb,
)
from dialguard.files.export import XlsxExport, csv_stream, safe_cell, xlsx_file
from dialguard.files.samples import stoplist_samples_zip
from dialguard.files.sniff import ALL_KINDS, HEAD_BYTES, Kind, detect_kind
from dialguard.files.tabular import (
    CellError,
    Row,
    Table,
    count_rows,
    detect_delimiter,
    detect_encoding,
    open_table,
    preview,
)
from dialguard.files.upload import Upload, receive_upload
from dialguard.files.zipped import ZipMember, open_first_member

__all__ = [
    "ALL_KINDS",
    "HEAD_BYTES",
    "BadArchive",
    "BadEncoding",
    "BadSpreadsheet",
    "CellError",
    "EmptyArchive",
    "EmptyFile",
    "FileError",
    "FormTooLarge",
    "Kind",
    "MalformedFile",
    "MalformedUpload",
    "MissingFile",
    "Row",
    "Table",
    "TooManyFiles",
    "UnsupportedFileType",
    "UnsupportedUpload",
    "Upload",
    "UploadTooLarge",
    "XlsxExport",
    "ZipBomb",
    "ZipMember",
    "count_rows",
    "csv_stream",
    "detect_delimiter",
    "detect_encoding",
    "detect_kind",
    "open_first_member",
    "open_table",
    "preview",
    "receive_upload",
    "safe_cell",
    "stoplist_samples_zip",
    "xlsx_file",
]
