"""HTTP routes for files: analyze, import (202 + progress + error report), export, samples."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from dialguard.files.errors import FileError
from dialguard.files.export import csv_stream
from dialguard.files.samples import stoplist_samples_zip
from dialguard.files.tabular import preview
from dialguard.files.upload import Upload, receive_upload
from dialguard.platform.auth import OUTBOUND_MANAGER, READERS, Principal, require_roles
from dialguard.platform.errors import ApiError, not_found
from dialguard.suppression import repository as repo
from dialguard.suppression.handlers import Suppression
from dialguard.suppression.importing import (
    MappingError,
    analyze,
    columns_of,
    import_out,
    open_upload,
    resolve_mapping,
    run_import,
    suggest_mapping,
)

MAX_UPLOAD = 15 * 1024 * 1024
Manager = Annotated[Principal, Depends(require_roles(OUTBOUND_MANAGER))]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]
router = APIRouter(prefix="/v1", tags=["suppression files"])
_running: set[asyncio.Task[None]] = set()


def _svc(request: Request) -> Suppression:
    svc: Suppression = request.app.state.suppression
    return svc


def _file_error(exc: FileError) -> ApiError:
    return ApiError(exc.http_status, exc.code, exc.message, [{"field": "file", "reason": exc.message}])


async def _upload(request: Request) -> Upload:
    try:
        return await receive_upload(request, max_bytes=MAX_UPLOAD)
    except FileError as exc:
        raise _file_error(exc) from exc


def _skip_rows(upload: Upload) -> int:
    raw = upload.field("skip_rows") or "0"
    if not raw.strip().isdigit() or int(raw) > 1_000_000:
        raise ApiError(
            422,
            "validation_error",
            "invalid skip_rows",
            [{"field": "skip_rows", "reason": "integer 0-1000000"}],
        )
    return int(raw)


def _mapping(upload: Upload) -> dict[str, str] | None:
    raw = upload.field("mapping")
    if not raw:
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            422, "validation_error", "mapping is not JSON", [{"field": "mapping", "reason": str(exc)}]
        ) from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ApiError(
            422,
            "validation_error",
            "invalid mapping",
            [{"field": "mapping", "reason": "object of column: field"}],
        )
    return value


def _region(request: Request, upload: Upload) -> str:
    region = upload.field("region")
    if region and (len(region) != 2 or not region.isupper()):
        raise ApiError(
            422, "validation_error", "invalid region", [{"field": "region", "reason": "ISO 3166 alpha-2"}]
        )
    return region or request.app.state.runtime.settings.DEFAULT_PHONE_REGION  # type: ignore[no-any-return]


@router.post("/stoplists/{stoplist_id}/imports:analyze")
async def analyze_file(stoplist_id: uuid.UUID, request: Request, principal: Manager) -> dict[str, Any]:
    async with _svc(request).runtime.pool.acquire() as conn:
        if await repo.get_stoplist(conn, account_id=principal.account_id, stoplist_id=stoplist_id) is None:
            raise not_found("stoplist")
    upload = await _upload(request)
    skip_rows, mapping, region = _skip_rows(upload), _mapping(upload), _region(request, upload)
    try:
        opened = await asyncio.to_thread(open_upload, upload.path, upload.filename, skip_rows=skip_rows)
    except FileError as exc:
        upload.close()
        raise _file_error(exc) from exc
    try:
        result = await asyncio.to_thread(analyze, opened, mapping, region=region)
    except MappingError as exc:
        raise ApiError(422, "invalid_mapping", str(exc), [{"field": "mapping", "reason": str(exc)}]) from exc
    except FileError as exc:
        raise _file_error(exc) from exc
    finally:
        opened.close()
    return {"filename": upload.filename, **result}


@router.post("/imports", status_code=202)
async def start_import(request: Request, principal: Manager) -> dict[str, str]:
    svc = _svc(request)
    upload = await _upload(request)
    try:
        ids_raw = [
            p.strip() for v in upload.fields.get("stoplist_ids", []) for p in v.split(",") if p.strip()
        ]
        if not ids_raw:
            raise ApiError(422, "validation_error", "stoplist_ids is required", [{"field": "stoplist_ids"}])
        try:
            stoplist_ids = list(dict.fromkeys(uuid.UUID(s) for s in ids_raw))
        except ValueError as exc:
            raise ApiError(
                422, "validation_error", "stoplist_ids must be ids", [{"field": "stoplist_ids"}]
            ) from exc
        skip_rows, mapping, region = _skip_rows(upload), _mapping(upload), _region(request, upload)
        async with svc.runtime.pool.acquire() as conn:
            found = await repo.existing_stoplists(conn, account_id=principal.account_id, ids=stoplist_ids)
        if found != set(stoplist_ids):
            raise not_found("stoplist")
        try:
            opened = await asyncio.to_thread(open_upload, upload.path, upload.filename, skip_rows=skip_rows)
        except FileError as exc:
            raise _file_error(exc) from exc
    except BaseException:
        upload.close()
        raise
    columns = columns_of(opened.table, preview(opened.table, 10))
    effective = mapping or suggest_mapping(columns, opened.table.header is not None)
    try:
        resolve_mapping(effective, columns)
    except MappingError as exc:
        opened.close()
        raise ApiError(422, "invalid_mapping", str(exc), [{"field": "mapping", "reason": str(exc)}]) from exc
    import_id = uuid.uuid4()
    async with svc.runtime.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO imports (id, account_id, status, stoplist_ids, filename, mapping, skip_rows, skipped,
                                    created_by, worker)
               VALUES ($1, $2, 'analyzing', $3, $4, $5, $6::int, $6::int, $7, $8)""",
            import_id,
            principal.account_id,
            stoplist_ids,
            upload.filename,
            effective,
            skip_rows,
            principal.sub,
            socket.gethostname(),
        )
    task = asyncio.create_task(
        run_import(
            svc,
            import_id=import_id,
            account_id=principal.account_id,
            stoplist_ids=stoplist_ids,
            opened=opened,
            mapping=effective,
            region=region,
            actor=principal.sub,
        )
    )
    _running.add(task)
    task.add_done_callback(_running.discard)
    return {"import_id": str(import_id)}


async def _import_row(request: Request, principal: Principal, import_id: uuid.UUID) -> Any:
    async with _svc(request).runtime.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT * FROM imports WHERE id = $1 AND account_id = $2", import_id, principal.account_id
        )
    if row is None:
        raise not_found("import")
    return row


@router.get("/imports/{import_id}")
async def get_import(import_id: uuid.UUID, request: Request, principal: Reader) -> dict[str, Any]:
    return import_out(await _import_row(request, principal, import_id))


@router.get("/imports/{import_id}/errors")
async def import_errors(import_id: uuid.UUID, request: Request, principal: Reader) -> StreamingResponse:
    await _import_row(request, principal, import_id)
    pool = _svc(request).runtime.pool

    async def rows() -> AsyncIterator[list[Any]]:
        async with pool.acquire() as conn, conn.transaction():
            cursor = await conn.cursor(
                "SELECT row_number, value, code, reason FROM import_errors WHERE import_id = $1 ORDER BY row_number",
                import_id,
            )
            while batch := await cursor.fetch(5000):
                for r in batch:
                    yield [r["row_number"], r["value"], r["code"], r["reason"]]

    return StreamingResponse(
        csv_stream(["row", "value", "code", "reason"], rows()),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'},
    )


@router.get("/stoplists/{stoplist_id}/export")
async def export(
    stoplist_id: uuid.UUID,
    request: Request,
    principal: Reader,
    type: Annotated[list[str] | None, Query()] = None,
    value: Annotated[list[str] | None, Query()] = None,
    channel: Annotated[list[str] | None, Query()] = None,
    sender: Annotated[list[str] | None, Query()] = None,
    source: Annotated[list[str] | None, Query()] = None,
    added_from: Annotated[list[datetime] | None, Query()] = None,
    added_to: Annotated[list[datetime] | None, Query()] = None,
    entry_ids: Annotated[list[uuid.UUID] | None, Query(max_length=10_000)] = None,
) -> StreamingResponse:
    async with _svc(request).runtime.pool.acquire() as conn:
        if await repo.get_stoplist(conn, account_id=principal.account_id, stoplist_id=stoplist_id) is None:
            raise not_found("stoplist")
    pool = _svc(request).runtime.pool
    args = [
        principal.account_id,
        stoplist_id,
        type,
        value,
        channel,
        sender,
        source,
        min(added_from) if added_from else None,
        max(added_to) if added_to else None,
        entry_ids,
    ]

    async def rows() -> AsyncIterator[list[Any]]:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = await conn.cursor(
                """SELECT id, id_type, value, channel, sender, source, reason, added_at, expires_at FROM entries
                   WHERE account_id = $1 AND stoplist_id = $2
                     AND ($3::text[] IS NULL OR id_type = ANY($3)) AND ($4::text[] IS NULL OR value = ANY($4))
                     AND ($5::text[] IS NULL OR channel = ANY($5)) AND ($6::text[] IS NULL OR sender = ANY($6))
                     AND ($7::text[] IS NULL OR source = ANY($7))
                     AND ($8::timestamptz IS NULL OR added_at >= $8) AND ($9::timestamptz IS NULL OR added_at <= $9)
                     AND ($10::uuid[] IS NULL OR id = ANY($10))
                   ORDER BY added_at, id""",
                *args,
            )
            while batch := await cursor.fetch(5000):
                for r in batch:
                    yield [
                        r["id"],
                        r["id_type"],
                        r["value"],
                        r["channel"] or "",
                        r["sender"] or "",
                        r["source"],
                        r["reason"] or "",
                        r["added_at"].isoformat(),
                        r["expires_at"].isoformat() if r["expires_at"] else "",
                    ]

    header = ["entry_id", "type", "value", "channel", "sender", "source", "reason", "added_at", "expires_at"]
    return StreamingResponse(
        csv_stream(header, rows()),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="stoplist-{stoplist_id}.csv"'},
    )


@router.get("/samples/stoplist.zip")
async def samples(principal: Reader) -> Response:
    return Response(
        stoplist_samples_zip(),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="stoplist-samples.zip"'},
    )
