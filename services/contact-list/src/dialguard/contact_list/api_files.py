"""HTTP routes for files: import (validate → commit / cancel, error report) and export."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from dialguard.contact_list import repository as repo
from dialguard.contact_list.api import Manager, Reader, list_or_404, runtime
from dialguard.contact_list.domain import STATUSES, HeaderError, ListSpec, plan_columns, same_columns
from dialguard.contact_list.importing import (
    OPEN_STATES,
    ValidationJob,
    cancel_import,
    commit_import,
    import_out,
    run_validation,
    worker_id,
)
from dialguard.files.errors import FileError
from dialguard.files.export import XlsxExport, csv_stream
from dialguard.files.sniff import detect_kind
from dialguard.files.tabular import Table, open_table
from dialguard.files.upload import Upload, receive_upload
from dialguard.platform.auth import Principal
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.runtime import ServiceRuntime

MAX_UPLOAD = 20 * 1024 * 1024
ALLOWED_KINDS = ("csv", "xls", "xlsx")
EXPORT_FORMATS = ("xlsx", "csv")
CONSENT_YES = frozenset({"true", "1", "yes", "on"})  # `on` is what an HTML checkbox sends
router = APIRouter(prefix="/v1", tags=["contact list files"])
_running: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coro)
    _running.add(task)
    task.add_done_callback(_running.discard)


def _file_error(exc: FileError) -> ApiError:
    return ApiError(
        exc.http_status, exc.code, exc.message, exc.details or [{"field": "file", "reason": exc.message}]
    )


def _header_error(exc: HeaderError) -> ApiError:
    return ApiError(422, exc.code, exc.message, exc.details)


def _invalid(field: str, reason: str, code: str = "validation_error") -> ApiError:
    return ApiError(422, code, f"{field}: {reason}", [{"field": field, "reason": reason}])


def _open(upload: Upload, skip_rows: int) -> Table:
    """Sniff (csv / xls / xlsx only) and open with a required header row (after skip_rows title rows)."""
    with open(upload.path, "rb") as fh:
        head = fh.read(8192)
    kind = detect_kind(upload.filename, head, ALLOWED_KINDS)
    if kind in ("xlsx", "xls") and not upload.path.endswith(f".{kind}"):
        # openpyxl refuses a path without a spreadsheet extension, and the spooled upload has none.
        os.rename(upload.path, f"{upload.path}.{kind}")
        upload.path = f"{upload.path}.{kind}"
    return open_table(upload.path, kind, skip_rows=skip_rows, has_header=True)


def _skip_rows(upload: Upload) -> int:
    raw = (upload.field("skip_rows") or "0").strip()
    if not raw.isdigit() or int(raw) > 1000:
        raise _invalid("skip_rows", "integer 0-1000: title rows above the header")
    return int(raw)


def _options(request: Request, upload: Upload) -> tuple[str, Any]:
    if (upload.field("consent_confirmed") or "").strip().lower() not in CONSENT_YES:
        raise _invalid(
            "consent_confirmed",
            "confirm that the clients agreed to give you their numbers or ids (consent_confirmed=true)",
            "consent_required",
        )
    region = upload.field("region") or request.app.state.runtime.settings.DEFAULT_PHONE_REGION
    if len(region) != 2 or not region.isupper():
        raise _invalid("region", "ISO 3166 alpha-2")
    phone_format = upload.field("phone_format") or None
    if phone_format not in (None, "international", "national"):
        raise _invalid("phone_format", "international or national")
    return region, phone_format


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "consent_confirmed"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".csv, .xls or .xlsx, 20 MB max",
                        },
                        "consent_confirmed": {"type": "string", "enum": ["true"]},
                        "skip_rows": {"type": "integer", "minimum": 0, "maximum": 1000},
                        "region": {"type": "string", "pattern": "^[A-Z]{2}$"},
                        "phone_format": {"type": "string", "enum": ["international", "national"]},
                    },
                }
            }
        },
    }
}


@router.post("/contact-lists/{list_id}/imports", status_code=202, openapi_extra=UPLOAD_BODY)
async def start_import(list_id: uuid.UUID, request: Request, principal: Manager) -> dict[str, str]:
    rt = runtime(request)
    list_row = await list_or_404(rt, principal, list_id)
    try:
        upload = await receive_upload(request, max_bytes=MAX_UPLOAD)
    except FileError as exc:
        raise _file_error(exc) from exc
    try:
        region, phone_format = _options(request, upload)
        try:
            table = await asyncio.to_thread(_open, upload, _skip_rows(upload))
        except FileError as exc:
            raise _file_error(exc) from exc
        header = [h.strip() for h in table.header or []]
        spec = ListSpec(
            list_row["kind"], list_row["channel"], list_row["unique_id_column"], list_row["name_column"]
        )
        try:
            plan = plan_columns(header, spec)
        except HeaderError as exc:
            raise _header_error(exc) from exc
        async with rt.pool.acquire() as conn:
            expected = list_row["columns"] or await repo.pending_columns(conn, list_id=list_id)
        if expected is not None and not same_columns(expected, header):
            raise ApiError(
                422,
                "columns_mismatch",
                "this file's columns differ from the list's first file; upload a file with the same columns",
                [{"field": "file", "expected": list(expected), "got": header}],
            )
    except BaseException:
        upload.close()
        raise
    import_id = uuid.uuid4()
    async with rt.pool.acquire() as conn:
        await repo.insert_import(
            conn,
            import_id=import_id,
            account_id=principal.account_id,
            list_id=list_id,
            filename=upload.filename,
            columns=header,
            actor=principal.sub,
            worker=worker_id(),
        )
    job = ValidationJob(
        import_id, principal.account_id, list_id, table, upload.detach(), plan, region, phone_format
    )
    _spawn(run_validation(rt, job))
    return {"import_id": str(import_id)}


async def _import_row(rt: ServiceRuntime, principal: Principal, import_id: uuid.UUID) -> Any:
    async with rt.pool.acquire() as conn:
        row = await repo.get_import(conn, account_id=principal.account_id, import_id=import_id)
    if row is None:
        raise not_found("import")
    return row


@router.get("/imports/{import_id}")
async def get_import(import_id: uuid.UUID, request: Request, principal: Reader) -> dict[str, Any]:
    return import_out(await _import_row(runtime(request), principal, import_id))


@router.get("/imports/{import_id}/errors")
async def import_errors(import_id: uuid.UUID, request: Request, principal: Reader) -> StreamingResponse:
    rt = runtime(request)
    await _import_row(rt, principal, import_id)

    async def rows() -> AsyncIterator[list[Any]]:
        async with rt.pool.acquire() as conn, conn.transaction():
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


@router.post("/imports/{import_id}/commit", status_code=202)
async def commit(import_id: uuid.UUID, request: Request, principal: Manager) -> dict[str, Any]:
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        row = await repo.start_commit(
            conn, account_id=principal.account_id, import_id=import_id, worker=worker_id()
        )
    if row is None:
        current = await _import_row(rt, principal, import_id)
        raise ApiError(
            409,
            "import_not_validated",
            f"only a validated import can be committed; this one is {current['status']}",
            [{"status": current["status"]}],
        )
    _spawn(commit_import(rt, import_id=import_id, account_id=principal.account_id, actor=principal.sub))
    return {"import_id": str(import_id), "status": "running"}


@router.post("/imports/{import_id}/cancel")
async def cancel(import_id: uuid.UUID, request: Request, principal: Manager) -> dict[str, Any]:
    rt = runtime(request)
    imp = await _import_row(rt, principal, import_id)
    async with rt.pool.acquire() as conn, conn.transaction():
        row = await cancel_import(rt, conn, imp=imp)
    if row is None:
        raise ApiError(
            409,
            "import_not_cancellable",
            f"only an import that is {' or '.join(OPEN_STATES)} can be cancelled; this one is {imp['status']}",
            [{"status": imp["status"]}],
        )
    return import_out(row)


async def _field_names(rt: ServiceRuntime, list_row: Any) -> list[str]:
    """A file list's field columns come from its columns; a filter list's from its contacts."""
    if list_row["columns"] is not None:
        spec = ListSpec(
            list_row["kind"], list_row["channel"], list_row["unique_id_column"], list_row["name_column"]
        )
        return [label for _, label in plan_columns(list_row["columns"], spec).field_columns]
    async with rt.pool.acquire() as conn:
        return await repo.field_names(conn, list_id=list_row["id"])


def _export_row(contact: Any, units: list[Any], field_names: list[str]) -> list[Any]:
    fields = contact["fields"] or {}
    return [
        str(contact["id"]),
        contact["external_id"],
        contact["name"] or "",
        contact["status"],
        contact["timezone"] or "",
        "; ".join(
            f"{u['type']}:{u['value']} ({u['channel'] or 'any'}, priority {u['priority']}"
            f"{'' if u['callable'] else ', not callable'})"
            for u in units
        ),
        *[fields.get(name, "") for name in field_names],
    ]


@router.get("/contact-lists/{list_id}/export", response_model=None)
async def export(
    list_id: uuid.UUID, request: Request, principal: Reader, format: str = "xlsx", status: str | None = None
) -> StreamingResponse | FileResponse:
    if format not in EXPORT_FORMATS:
        raise ApiError(400, "unknown_format", f"unknown export format {format!r}", list(EXPORT_FORMATS))
    if status is not None and status not in STATUSES:
        raise ApiError(400, "unknown_status", f"unknown status {status!r}", list(STATUSES))
    rt = runtime(request)
    list_row = await list_or_404(rt, principal, list_id)
    field_names = await _field_names(rt, list_row)
    header = ["contact_id", "external_id", "name", "status", "timezone", "units", *field_names]

    async def pages() -> AsyncIterator[list[list[Any]]]:
        async with rt.pool.acquire() as conn, conn.transaction(readonly=True):
            cursor = await conn.cursor(
                "SELECT * FROM contacts WHERE list_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY seq",
                list_id,
                status,
            )
            while batch := await cursor.fetch(2000):
                units = await repo.units_of(conn, [r["id"] for r in batch])
                yield [_export_row(r, units.get(r["id"], []), field_names) for r in batch]

    filename = f"contact-list-{list_row['id']}"
    if format == "csv":

        async def rows() -> AsyncIterator[list[Any]]:
            async for page in pages():
                for row in page:
                    yield row

        return StreamingResponse(
            csv_stream(header, rows()),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
        )
    fd, path = tempfile.mkstemp(prefix="dialguard-export-", suffix=".xlsx")
    os.close(fd)
    try:
        book = XlsxExport(path, header, sheet_title="Contacts")
        async for page in pages():
            await asyncio.to_thread(book.extend, page)
        await asyncio.to_thread(book.close)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=f"{filename}.xlsx",
        background=BackgroundTask(os.unlink, path),
    )
