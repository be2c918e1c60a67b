"""receive_upload against a real Starlette Request fed chunk by chunk, as an ASGI server would."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.types import Message

from dialguard.files.errors import (
    FileError,
    FormTooLarge,
    MalformedUpload,
    MissingFile,
    TooManyFiles,
    UnsupportedUpload,
    UploadTooLarge,
)
from dialguard.files.upload import receive_upload

BOUNDARY = "----dialguard7MA4YWxkTrZu0gW"
CHUNK = 64 * 1024


class Body:
    """The ASGI receive side: hands out the body in chunks and counts what the app pulled."""

    def __init__(self, body: bytes, chunk: int = CHUNK) -> None:
        self.chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.pulled = 0

    async def receive(self) -> Message:
        data = self.chunks.pop(0) if self.chunks else b""
        self.pulled += len(data)
        return {"type": "http.request", "body": data, "more_body": bool(self.chunks)}


def request(body: Body, *, content_type: str | None = None, length: int | None = None) -> Request:
    headers = [(b"content-type", (content_type or f"multipart/form-data; boundary={BOUNDARY}").encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/v1/imports", "headers": headers}
    return Request(scope, body.receive)


def form(parts: Iterable[tuple[str, str | None, bytes]], *, close: bool = True) -> bytes:
    """multipart/form-data from (name, filename or None, content)."""
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: text/csv\r\n"
        out += b"\r\n" + content + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


async def test_file_goes_to_disk_and_fields_keep_repeats(tmp_path: Path) -> None:
    data = b"phone\n12672345678\n" * 10_000
    body = Body(
        form(
            [
                ("stoplist_ids", None, b"a"),
                ("skip_rows", None, b"1"),
                ("file", "C:\\Users\\ann\\Desktop\\list.csv", data),
                ("stoplist_ids", None, "b,ç".encode()),
            ]
        )
    )
    upload = await receive_upload(request(body), max_bytes=1 << 20, spool_dir=str(tmp_path))
    with upload:
        assert (upload.filename, upload.content_type, upload.size) == ("list.csv", "text/csv", len(data))
        assert upload.fields == {"stoplist_ids": ["a", "b,ç"], "skip_rows": ["1"]}
        assert (upload.field("skip_rows"), upload.values("stoplist_ids")) == ("1", ["a", "b,ç"])
        assert Path(upload.path).read_bytes() == data
        assert Path(upload.path).parent == tmp_path
    assert not os.path.exists(upload.path)


async def test_detach_hands_the_file_to_a_background_job(tmp_path: Path) -> None:
    upload = await receive_upload(
        request(Body(form([("file", "a.csv", b"1\n")]))), max_bytes=100, spool_dir=str(tmp_path)
    )
    with upload:
        path = upload.detach()
    assert Path(path).read_bytes() == b"1\n"


async def test_streaming_stops_at_the_limit_having_read_about_max_bytes(tmp_path: Path) -> None:
    limit = 1 << 20
    body = Body(form([("file", "big.csv", b"1" * (20 << 20))]))
    with pytest.raises(UploadTooLarge) as exc:
        await receive_upload(request(body), max_bytes=limit, spool_dir=str(tmp_path))
    assert (exc.value.code, exc.value.http_status) == ("file_too_large", 413)
    assert limit < body.pulled <= limit + 2 * CHUNK
    assert os.listdir(tmp_path) == []


async def test_content_length_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    body = Body(form([("file", "big.csv", b"1" * (3 << 20))]))
    with pytest.raises(UploadTooLarge):
        await receive_upload(request(body, length=3 << 20), max_bytes=1 << 20, spool_dir=str(tmp_path))
    assert body.pulled == 0
    assert os.listdir(tmp_path) == []


async def test_junk_parts_cannot_bypass_the_body_limit(tmp_path: Path) -> None:
    body = Body(form([("other", "x.bin", b"1" * (5 << 20)), ("file", "a.csv", b"1")]))
    with pytest.raises(UploadTooLarge):
        await receive_upload(request(body), max_bytes=1 << 20, spool_dir=str(tmp_path))
    assert body.pulled < (2 << 20)


@pytest.mark.parametrize(
    ("content_type", "body", "error", "status"),
    [
        ("application/json", b'{"file": 1}', UnsupportedUpload, 415),
        ("multipart/form-data", b"", MalformedUpload, 400),
        (None, form([("skip_rows", None, b"1")]), MissingFile, 422),
        (None, form([("file", None, b"not a file")]), MissingFile, 422),
        (None, form([("file", "", b"")]), MissingFile, 422),
        (None, form([("file", "a.csv", b"1"), ("file", "b.csv", b"2")]), TooManyFiles, 422),
        (None, form([("file", "a.csv", b"1")], close=False), MalformedUpload, 400),
        (None, b"garbage without any boundary at all\r\n", MalformedUpload, 400),
        (None, form([("mapping", None, b"\xff\xfe")]), MalformedUpload, 400),
        (None, form([(f"f{i}", None, b"1") for i in range(101)]), FormTooLarge, 413),
        (None, form([("mapping", None, b"x" * (65 * 1024))]), FormTooLarge, 413),
    ],
)
async def test_bad_requests_are_4xx_with_a_code(
    tmp_path: Path, content_type: str | None, body: bytes, error: type[FileError], status: int
) -> None:
    with pytest.raises(error) as exc:
        await receive_upload(
            request(Body(body), content_type=content_type), max_bytes=1 << 20, spool_dir=str(tmp_path)
        )
    assert exc.value.http_status == status
    assert exc.value.body()["error"]["code"] == error.code
    assert os.listdir(tmp_path) == []
