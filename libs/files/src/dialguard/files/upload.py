"""Receives multipart uploads while streaming: the file goes to disk chunk by chunk and the size
limit is enforced as bytes arrive, never after the whole body was read into memory."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from dialguard.files.errors import MissingFile, UnsupportedUpload, UploadTooLarge

MAX_FIELDS = 50
MAX_FIELD_BYTES = 64 * 1024


@dataclass
class Upload:
    """The uploaded file on disk plus the other form fields (repeated ones kept in order)."""

    filename: str
    content_type: str
    path: str
    size: int
    fields: dict[str, list[str]] = field(default_factory=dict)

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def receive_upload(
    request: Request, *, max_bytes: int, file_field: str = "file", spool_dir: str | None = None
) -> Upload:
    """Parse request.stream() incrementally; UploadTooLarge the moment the file passes max_bytes."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedUpload("expected multipart/form-data with a 'file' field")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 1024 * 1024:
        raise UploadTooLarge(f"upload of {int(declared)} bytes is over the {max_bytes} byte limit")

    fd, path = tempfile.mkstemp(prefix="dg-upload-", dir=spool_dir)
    out = os.fdopen(fd, "wb")
    state: dict[str, Any] = {
        "name": None,
        "filename": None,
        "ctype": "",
        "is_file": False,
        "buf": bytearray(),
    }
    fields: dict[str, list[str]] = {}
    found: dict[str, Any] = {"size": 0, "filename": None, "ctype": "", "seen": False}
    headers: dict[bytes, bytes] = {}
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        headers.clear()
        state["buf"] = bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        filename = disp.get(b"filename")
        state["name"] = name
        state["is_file"] = name == file_field and filename is not None
        if state["is_file"]:
            found["seen"] = True
            found["filename"] = filename.decode("utf-8", "replace") if filename else ""
            found["ctype"] = headers.get(b"content-type", b"").decode("latin-1")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if state["is_file"]:
            found["size"] += len(chunk)
            if found["size"] > max_bytes:
                raise UploadTooLarge(f"file is over the {max_bytes} byte limit")
            out.write(chunk)
        else:
            state["buf"].extend(chunk)
            if len(state["buf"]) > MAX_FIELD_BYTES:
                raise UploadTooLarge(f"form field {state['name']!r} is over {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if not state["is_file"] and state["name"] is not None:
            if sum(len(v) for v in fields.values()) >= MAX_FIELDS:
                raise UploadTooLarge(f"more than {MAX_FIELDS} form fields")
            fields.setdefault(state["name"], []).append(bytes(state["buf"]).decode("utf-8", "replace"))

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except BaseException:
        out.close()
        os.unlink(path)
        raise
    out.close()
    if not found["seen"]:
        os.unlink(path)
        raise MissingFile(f"form field {file_field!r} with a file is required")
    return Upload(found["filename"] or "upload", found["ctype"], path, found["size"], fields)
