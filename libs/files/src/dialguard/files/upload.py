"""Multipart uploads received while streaming, to disk, limits enforced per chunk: no body held in memory."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import TracebackType
from typing import IO, TYPE_CHECKING, Final

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from dialguard.files.errors import (
    FileError,
    FormTooLarge,
    MalformedUpload,
    MissingFile,
    TooManyFiles,
    UnsupportedUpload,
    UploadTooLarge,
)

MAX_FIELDS: Final = 100
MAX_FIELD_BYTES: Final = 64 * 1024
MAX_FORM_BYTES: Final = 256 * 1024
ENVELOPE_BYTES: Final = 64 * 1024
"""Boundaries and part headers on top of the file and the fields; python-multipart caps each part's headers."""
FLUSH_BYTES: Final = 1024 * 1024
"""File bytes buffered before one write in a worker thread: bounded memory, few thread hops."""
if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Upload:
    """The uploaded file on disk plus the other form fields; close() (or `with`) deletes the file."""

    filename: str
    content_type: str
    path: str
    size: int
    fields: dict[str, list[str]] = field(default_factory=dict)
    _owned: bool = field(default=True, repr=False)

    def field(self, name: str) -> str | None:
        """The last value of a form field, as most form libraries answer for a repeated scalar."""
        values = self.fields.get(name)
        return values[-1] if values else None

    def values(self, name: str) -> list[str]:
        """Every value of a repeatable field, in the order sent."""
        return list(self.fields.get(name, ()))

    def detach(self) -> str:
        """Hand the temp file to a background job: close() will no longer delete it."""
        self._owned = False
        return self.path

    def close(self) -> None:
        """Delete the temp file; safe to call twice."""
        if self._owned:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def safe_filename(raw: bytes) -> str:
    """The client's name without any path, control characters or absurd length (it ends up in logs)."""
    text = raw.decode("utf-8", "replace").replace("\\", "/")
    name = _UNSAFE_NAME.sub("", PurePosixPath(text).name).strip()
    return name[-255:]


class _Receiver:
    """python-multipart callbacks: route file bytes to a spool file and fields into capped buffers."""

    def __init__(
        self,
        *,
        out: IO[bytes],
        file_field: str,
        max_bytes: int,
        max_fields: int,
        max_field_bytes: int,
        max_form_bytes: int,
    ) -> None:
        self.out = out
        self.file_field = file_field
        self.max_bytes = max_bytes
        self.max_fields = max_fields
        self.max_field_bytes = max_field_bytes
        self.max_form_bytes = max_form_bytes
        self.fields: dict[str, list[str]] = {}
        self.field_count = 0
        self.form_bytes = 0
        self.filename: str | None = None
        self.content_type = ""
        self.size = 0
        self.pending = bytearray()
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._part = "ignore"
        self._name = ""
        self._value = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers.clear()
        self._value.clear()
        self._part = "ignore"

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = params.get(b"filename")
        if raw_filename is None:
            self._part = "field"
            self.field_count += 1
            if self.field_count > self.max_fields:
                raise FormTooLarge(f"more than {self.max_fields} form fields")
        elif self._name != self.file_field or not safe_filename(raw_filename):
            self._part = "ignore"
        elif self.filename is not None:
            raise TooManyFiles(f"send one file in field {self.file_field!r}, not several")
        else:
            self._part = "file"
            self.filename = safe_filename(raw_filename)
            self.content_type = self._headers.get(b"content-type", b"").decode("latin-1")[:255]

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.size += end - start
            if self.size > self.max_bytes:
                raise UploadTooLarge(
                    f"the file is over the {self.max_bytes} byte limit",
                    details=[{"field": self.file_field, "limit": self.max_bytes}],
                )
            self.pending += data[start:end]
        elif self._part == "field":
            self._value += data[start:end]
            self.form_bytes += end - start
            if len(self._value) > self.max_field_bytes:
                raise FormTooLarge(f"form field {self._name!r} is over {self.max_field_bytes} bytes")
            if self.form_bytes > self.max_form_bytes:
                raise FormTooLarge(f"the form fields are over {self.max_form_bytes} bytes in total")

    def on_part_end(self) -> None:
        if self._part != "field":
            return
        try:
            value = self._value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedUpload(f"form field {self._name!r} is not UTF-8 text") from exc
        self.fields.setdefault(self._name, []).append(value)

    def on_end(self) -> None:
        self.ended = True


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise MalformedUpload("Content-Length is not a number")
    return int(raw)


async def receive_upload(
    request: Request,
    *,
    max_bytes: int,
    file_field: str = "file",
    spool_dir: str | None = None,
    max_fields: int = MAX_FIELDS,
    max_field_bytes: int = MAX_FIELD_BYTES,
    max_form_bytes: int = MAX_FORM_BYTES,
) -> Upload:
    """Parse request.stream() chunk by chunk; UploadTooLarge the moment the file passes max_bytes."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise UnsupportedUpload(
            f"send multipart/form-data with the file in field {file_field!r}",
            details=[{"field": file_field, "reason": "expected multipart/form-data"}],
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedUpload("multipart/form-data without a boundary")
    body_limit = max_bytes + max_form_bytes + ENVELOPE_BYTES
    declared = _declared_length(request)
    if declared is not None and declared > body_limit:
        raise UploadTooLarge(
            f"the upload ({declared} bytes) is over the {max_bytes} byte limit",
            details=[{"field": file_field, "limit": max_bytes}],
        )

    fd, path = tempfile.mkstemp(prefix="dialguard-upload-", dir=spool_dir)
    out = os.fdopen(fd, "wb")
    receiver = _Receiver(
        out=out,
        file_field=file_field,
        max_bytes=max_bytes,
        max_fields=max_fields,
        max_field_bytes=max_field_bytes,
        max_form_bytes=max_form_bytes,
    )
    try:
        try:
            parser = MultipartParser(boundary, receiver.callbacks())
        except FormParserError as exc:
            raise MalformedUpload(f"bad multipart boundary: {exc}") from exc
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise UploadTooLarge(
                    f"the upload is over the {max_bytes} byte limit",
                    details=[{"field": file_field, "limit": max_bytes}],
                )
            try:
                parser.write(chunk)
            except FileError:
                raise
            except FormParserError as exc:
                raise MalformedUpload(f"malformed multipart body: {exc}") from exc
            if len(receiver.pending) >= FLUSH_BYTES:
                await _flush(receiver)
        await _flush(receiver)
        if not receiver.ended:
            raise MalformedUpload("the multipart body ended before its closing boundary")
        if receiver.filename is None:
            raise MissingFile(
                f"a file is required in form field {file_field!r}",
                details=[{"field": file_field, "reason": "missing"}],
            )
        out.close()
    except BaseException:
        out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return Upload(receiver.filename, receiver.content_type, path, receiver.size, receiver.fields)


async def _flush(receiver: _Receiver) -> None:
    """Write buffered file bytes off the event loop: a slow disk must not stall other requests."""
    if receiver.pending:
        data = bytes(receiver.pending)
        receiver.pending.clear()
        await run_in_threadpool(receiver.out.write, data)
