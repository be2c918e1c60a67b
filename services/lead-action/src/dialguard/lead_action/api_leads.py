"""HTTP routes of leads: bulk add (JSON or CSV), list a list's leads, read one lead."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from dialguard.files.errors import FileError
from dialguard.files.sniff import detect_kind
from dialguard.files.upload import receive_upload
from dialguard.lead_action import repository as repo
from dialguard.lead_action.api import (
    ACCOUNT,
    Limit,
    Manager,
    Reader,
    after_id,
    campaign_or_404,
    lead_out,
    lead_page,
    list_or_404,
    own_account,
    svc_of,
)
from dialguard.lead_action.domain import Criteria
from dialguard.lead_action.handlers import add_leads
from dialguard.lead_action.uploads import MAX_JSON_LEADS, ParsedLeads, parse_csv_leads, parse_json_leads
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.paging import DEFAULT_LIMIT

router = APIRouter(prefix=ACCOUNT, tags=["leads"])


def _region(request: Request, value: Any) -> str:
    if isinstance(value, str) and len(value) == 2 and value.isalpha():
        return value.upper()
    return request.app.state.runtime.settings.DEFAULT_PHONE_REGION  # type: ignore[no-any-return]


def _phone_format(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if value not in ("international", "national"):
        raise ApiError(
            422,
            "validation_error",
            "invalid phone_format",
            [{"field": "phone_format", "reason": "international or national"}],
        )
    return str(value)


async def _parse_json(request: Request) -> ParsedLeads:
    raw = await request.body()
    if len(raw) > 32 * 1024 * 1024:
        raise ApiError(413, "payload_too_large", "JSON body over 32 MB: upload a CSV file instead")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            422, "validation_error", "body is not JSON", [{"field": "body", "reason": str(exc)}]
        ) from exc
    leads = body.get("leads") if isinstance(body, dict) else None
    if not isinstance(leads, list):
        raise ApiError(422, "validation_error", "leads is required", [{"field": "leads", "reason": "a list"}])
    if len(leads) > MAX_JSON_LEADS:
        raise ApiError(
            422,
            "validation_error",
            f"at most {MAX_JSON_LEADS} leads per JSON request",
            [{"field": "leads", "reason": f"at most {MAX_JSON_LEADS}; upload a CSV file for more"}],
        )
    return parse_json_leads(
        leads,
        region=_region(request, body.get("region")),
        phone_format=_phone_format(body.get("phone_format")),
    )


def _head(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8192)


async def _parse_file(request: Request) -> ParsedLeads:
    settings = request.app.state.runtime.settings
    try:
        upload = await receive_upload(request, max_bytes=settings.MAX_UPLOAD_BYTES)
    except FileError as exc:
        raise ApiError(exc.http_status, exc.code, exc.message, exc.details or [{"field": "file"}]) from exc
    with upload:
        try:
            head = await run_in_threadpool(_head, upload.path)
            kind = detect_kind(upload.filename, head, allowed=("csv", "txt"))
            return await run_in_threadpool(
                parse_csv_leads,
                upload.path,
                kind,
                region=_region(request, upload.field("region")),
                phone_format=_phone_format(upload.field("phone_format")),
            )
        except FileError as exc:
            raise ApiError(
                exc.http_status,
                exc.code,
                exc.message,
                exc.details or [{"field": "file", "reason": exc.message}],
            ) from exc


@router.post("/dialGroups/{dialGroupId}/campaigns/{campaignId}/lists/{listId}/leads", status_code=201)
@router.post("/campaigns/{campaignId}/lists/{listId}/leads", status_code=201)
@router.post("/lists/{listId}/leads", status_code=201)
async def upload_leads(
    accountId: str,
    listId: int,
    request: Request,
    principal: Manager,
    dialGroupId: int | None = None,
    campaignId: int | None = None,
) -> dict[str, Any]:
    """Bulk add: JSON `{"leads": [...]}` or a multipart CSV `file`; bad rows are reported, good ones inserted."""
    account = own_account(accountId, principal)
    if campaignId is not None:
        await campaign_or_404(request, account, campaignId, dialGroupId)
    await list_or_404(request, account, listId, campaignId)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        parsed = await _parse_file(request)
    elif content_type in ("application/json", ""):
        parsed = await _parse_json(request)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            'send application/json {"leads": [...]} or multipart/form-data with a CSV file',
            [{"field": "file", "reason": f"content type {content_type!r}"}],
        )
    campaign_id, ids = await add_leads(svc_of(request), account_id=account, list_id=listId, rows=parsed.rows)
    return {
        "list_id": str(listId),
        "campaign_id": str(campaign_id),
        "inserted": len(ids),
        "rejected": parsed.rejected,
        "lead_ids": [str(i) for i in ids],
        "errors": parsed.errors,
        "errors_truncated": parsed.rejected > len(parsed.errors),
    }


@router.get("/dialGroups/{dialGroupId}/campaigns/{campaignId}/lists/{listId}/leads")
@router.get("/campaigns/{campaignId}/lists/{listId}/leads")
@router.get("/lists/{listId}/leads")
async def list_leads(
    accountId: str,
    listId: int,
    request: Request,
    principal: Reader,
    dialGroupId: int | None = None,
    campaignId: int | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Response:
    account = own_account(accountId, principal)
    if campaignId is not None:
        await campaign_or_404(request, account, campaignId, dialGroupId)
    await list_or_404(request, account, listId, campaignId)
    async with svc_of(request).runtime.pool.acquire() as conn:
        rows = await repo.search_leads(
            conn,
            account_id=account,
            criteria=Criteria(list_ids=(listId,)),
            after=after_id(cursor),
            limit=limit + 1,
        )
    return lead_page(rows, limit)


@router.get("/leads/{leadId}")
async def get_lead(accountId: str, leadId: int, request: Request, principal: Reader) -> dict[str, Any]:
    account = own_account(accountId, principal)
    async with svc_of(request).runtime.pool.acquire() as conn:
        row = await repo.get_lead(conn, account_id=account, lead_id=leadId)
    if row is None:
        raise not_found("lead")
    return lead_out(row)
