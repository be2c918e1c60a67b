"""HTTP routes of outbound-sync: targets per stoplist and their delivery log. Parse, authorize, call, map."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from dialguard.outbound_sync import repository as repo
from dialguard.outbound_sync.domain import (
    METHODS,
    canonical_stoplist_id,
    format_time,
    mask_headers,
    merge_headers,
    tm_url,
    unknown_placeholders,
    valid_url,
)
from dialguard.outbound_sync.handlers import OutboundSync, create_target, retry_delivery, update_target
from dialguard.platform.auth import OPS, OUTBOUND_MANAGER, READERS, Principal, require_roles
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    decode_cursor,
    decode_cursor_key,
    encode_cursor,
)

Manager = Annotated[Principal, Depends(require_roles(OUTBOUND_MANAGER))]
Operator = Annotated[Principal, Depends(require_roles(OUTBOUND_MANAGER, OPS))]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]
StoplistId = Annotated[str, Path(min_length=1, max_length=256)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "idempotency-key"}
)
DELIVERY_STATUSES = ("pending", "delivered", "failed", "dead")


class TargetIn(BaseModel):
    """TM: system + project (+ expires_in_days); MANUAL: url, method, headers, body_template."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["TM", "MANUAL"]
    system: str | int | None = None
    project: str | None = Field(default=None, min_length=1, max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=36500)
    url: str | None = Field(default=None, max_length=2048)
    method: str | None = Field(default=None, max_length=10)
    headers: dict[str, str] | None = Field(default=None, max_length=50)
    body_template: str | None = Field(default=None, max_length=20_000)
    active: bool = True
    backfill: bool = False


class TargetPatch(BaseModel):
    """Any subset of a target's settings; `active` pauses or resumes it. Type and stoplist do not change."""

    model_config = ConfigDict(extra="forbid")

    system: str | int | None = None
    project: str | None = Field(default=None, min_length=1, max_length=200)
    expires_in_days: int | None = Field(default=None, ge=1, le=36500)
    url: str | None = Field(default=None, max_length=2048)
    method: str | None = Field(default=None, max_length=10)
    headers: dict[str, str] | None = Field(default=None, max_length=50)
    body_template: str | None = Field(default=None, max_length=20_000)
    active: bool | None = None


def _invalid(field: str, reason: str, code: str = "validation_error") -> ApiError:
    return ApiError(422, code, f"invalid {field}: {reason}", [{"field": field, "reason": reason}])


def validated_settings(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """The columns a target of this type stores, or a 422 naming the first bad field."""
    if kind == "TM":
        system = str(values.get("system") if values.get("system") is not None else "")
        if not re.fullmatch(r"0?[1-7]", system):
            raise _invalid("system", "must be an Outbound server number 01..07")
        project = (values.get("project") or "").strip()
        if not project:
            raise _invalid("project", "required for a TM target")
        return {
            "system": system.zfill(2),
            "project": project,
            "expires_in_days": values.get("expires_in_days"),
            "url": None,
            "method": "POST",
            "headers": {},
            "body_template": None,
        }
    url = (values.get("url") or "").strip()
    if not url:
        raise _invalid("url", "required for a MANUAL target")
    problem = valid_url(url)
    if problem:
        raise _invalid("url", problem, "invalid_url")
    method = str(values.get("method") or "POST").upper()
    if method not in METHODS:
        raise _invalid("method", f"must be one of {', '.join(METHODS)}")
    headers: dict[str, str] = values.get("headers") or {}
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise _invalid(f"headers.{name}", "not a valid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise _invalid(f"headers.{name}", "set by the service, may not be configured")
        if "\r" in value or "\n" in value or len(value) > 8192:
            raise _invalid(f"headers.{name}", "header values are one line of at most 8192 characters")
    template = values.get("body_template")
    if template is not None:
        unknown = unknown_placeholders(template)
        if unknown:
            raise ApiError(
                422,
                "unknown_placeholder",
                f"body_template names unknown placeholders: {', '.join(unknown)}",
                [{"field": "body_template", "reason": "unknown placeholder", "placeholders": unknown}],
            )
    return {
        "system": values.get("system"),
        "project": values.get("project"),
        "expires_in_days": values.get("expires_in_days"),
        "url": url,
        "method": method,
        "headers": headers,
        "body_template": template,
    }


def _svc(request: Request) -> OutboundSync:
    svc: OutboundSync = request.app.state.outbound
    return svc


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value else None


def target_out(row: Any, tm_template: str) -> dict[str, Any]:
    """Target of CONTRACT §7; header secrets masked."""
    url = tm_url(tm_template, row["system"], row["project"]) if row["type"] == "TM" else row["url"]
    return {
        "id": str(row["id"]),
        "stoplist_id": row["stoplist_id"],
        "type": row["type"],
        "system": row["system"],
        "project": row["project"],
        "expires_in_days": row["expires_in_days"],
        "url": url,
        "method": row["method"],
        "headers": mask_headers(row["headers"] or {}),
        "body_template": row["body_template"],
        "active": row["active"],
        "status": {
            "last_success_at": _time(row["last_success_at"]),
            "last_error": row["last_error"],
            "last_error_at": _time(row["last_error_at"]),
            "backlog": int(row["backlog"]),
        },
        "created_at": _time(row["created_at"]),
        "updated_at": _time(row["updated_at"]),
    }


def delivery_out(row: Any) -> dict[str, Any]:
    """Delivery of CONTRACT §7 with the last request and response summaries."""
    entry = row["entry"] or {}
    return {
        "id": str(row["id"]),
        "target_id": str(row["target_id"]),
        "entry_id": row["entry_id"],
        "identifier": entry.get("identifier"),
        "status": row["status"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "next_attempt_at": _time(row["next_attempt_at"]) if row["status"] == "pending" else None,
        "created_at": _time(row["created_at"]),
        "updated_at": _time(row["updated_at"]),
        "delivered_at": _time(row["delivered_at"]),
        "request": row["request"],
        "response": row["response"],
    }


def _confirm(confirm: bool) -> None:
    if not confirm:
        raise ApiError(400, "confirmation_required", "destructive call: repeat it with ?confirm=true")


def _tm_template(request: Request) -> str:
    return _svc(request).settings.OUTBOUND_TM_URL_TEMPLATE


router = APIRouter(prefix="/v1", tags=["outbound-sync"])


@router.post("/stoplists/{stoplist_id}/targets", status_code=201)
async def create(
    stoplist_id: StoplistId, body: TargetIn, request: Request, principal: Manager
) -> dict[str, Any]:
    fields = validated_settings(body.type, body.model_dump())
    fields.update(
        stoplist_id=canonical_stoplist_id(stoplist_id),
        type=body.type,
        active=body.active,
        created_by=principal.sub,
    )
    row, queued = await create_target(
        _svc(request), account_id=principal.account_id, fields=fields, backfill=body.backfill
    )
    out = target_out(row, _tm_template(request))
    if body.backfill:
        out["backfill"] = {"queued": queued}
    return out


async def _page(
    request: Request, principal: Principal, stoplist_id: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    key = decode_cursor_key(cursor, datetime.fromisoformat, uuid.UUID)
    async with _svc(request).runtime.pool.acquire() as conn:
        rows = await repo.list_targets(
            conn, account_id=principal.account_id, stoplist_id=stoplist_id, limit=limit + 1, after=key
        )
    page = rows[:limit]
    nxt = (
        encode_cursor([page[-1]["created_at"].isoformat(), str(page[-1]["id"])])
        if len(rows) > limit
        else None
    )
    return {"items": [target_out(r, _tm_template(request)) for r in page], "next_cursor": nxt}


@router.get("/stoplists/{stoplist_id}/targets")
async def list_for_stoplist(
    stoplist_id: StoplistId,
    request: Request,
    principal: Reader,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    return await _page(request, principal, canonical_stoplist_id(stoplist_id), limit, cursor)


@router.get("/targets")
async def list_all(
    request: Request, principal: Reader, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> dict[str, Any]:
    return await _page(request, principal, None, limit, cursor)


async def _target_or_404(
    request: Request, principal: Principal, target_id: uuid.UUID, stoplist_id: str | None = None
) -> Any:
    async with _svc(request).runtime.pool.acquire() as conn:
        row = await repo.get_target(
            conn,
            account_id=principal.account_id,
            target_id=target_id,
            stoplist_id=canonical_stoplist_id(stoplist_id) if stoplist_id else None,
        )
    if row is None:
        raise not_found("target")
    return row


async def _get(
    request: Request, principal: Principal, target_id: uuid.UUID, stoplist_id: str | None
) -> dict[str, Any]:
    return target_out(await _target_or_404(request, principal, target_id, stoplist_id), _tm_template(request))


async def _patch(
    request: Request, principal: Principal, target_id: uuid.UUID, stoplist_id: str | None, body: TargetPatch
) -> dict[str, Any]:
    current = await _target_or_404(request, principal, target_id, stoplist_id)
    svc = _svc(request)
    given = body.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    settings_given = {k: v for k, v in given.items() if k != "active"}
    if settings_given:
        async with svc.runtime.pool.acquire() as conn:
            stored = await repo.stored_headers(conn, account_id=principal.account_id, target_id=target_id)
        if "headers" in settings_given:
            settings_given["headers"] = merge_headers(settings_given["headers"] or {}, stored)
        merged = {
            k: current[k] for k in ("system", "project", "expires_in_days", "url", "method", "body_template")
        }
        merged["headers"] = stored
        merged.update(settings_given)
        changes.update(validated_settings(current["type"], merged))
    if given.get("active") is not None:
        changes["active"] = given["active"]
    row = await update_target(svc, account_id=principal.account_id, target_id=target_id, changes=changes)
    if row is None:
        raise not_found("target")
    return target_out(row, _tm_template(request))


async def _delete(
    request: Request, principal: Principal, target_id: uuid.UUID, stoplist_id: str | None, confirm: bool
) -> Response:
    _confirm(confirm)
    await _target_or_404(request, principal, target_id, stoplist_id)
    async with _svc(request).runtime.pool.acquire() as conn:
        if not await repo.delete_target(conn, account_id=principal.account_id, target_id=target_id):
            raise not_found("target")
    return Response(status_code=204)


@router.get("/targets/{target_id}")
async def get_target(target_id: uuid.UUID, request: Request, principal: Reader) -> dict[str, Any]:
    return await _get(request, principal, target_id, None)


@router.get("/stoplists/{stoplist_id}/targets/{target_id}")
async def get_stoplist_target(
    stoplist_id: StoplistId, target_id: uuid.UUID, request: Request, principal: Reader
) -> dict[str, Any]:
    return await _get(request, principal, target_id, stoplist_id)


@router.patch("/targets/{target_id}")
async def patch_target(
    target_id: uuid.UUID, body: TargetPatch, request: Request, principal: Manager
) -> dict[str, Any]:
    return await _patch(request, principal, target_id, None, body)


@router.patch("/stoplists/{stoplist_id}/targets/{target_id}")
async def patch_stoplist_target(
    stoplist_id: StoplistId, target_id: uuid.UUID, body: TargetPatch, request: Request, principal: Manager
) -> dict[str, Any]:
    return await _patch(request, principal, target_id, stoplist_id, body)


@router.delete("/targets/{target_id}", status_code=204)
async def delete_target(
    target_id: uuid.UUID, request: Request, principal: Manager, confirm: bool = False
) -> Response:
    return await _delete(request, principal, target_id, None, confirm)


@router.delete("/stoplists/{stoplist_id}/targets/{target_id}", status_code=204)
async def delete_stoplist_target(
    stoplist_id: StoplistId, target_id: uuid.UUID, request: Request, principal: Manager, confirm: bool = False
) -> Response:
    return await _delete(request, principal, target_id, stoplist_id, confirm)


@router.get("/targets/{target_id}/deliveries")
async def list_deliveries(
    target_id: uuid.UUID,
    request: Request,
    principal: Reader,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The request log of a target, newest first."""
    unknown = sorted(set(status or []) - set(DELIVERY_STATUSES))
    if unknown:
        raise ApiError(
            400, "unknown_status", f"unknown delivery status: {', '.join(unknown)}", list(DELIVERY_STATUSES)
        )
    await _target_or_404(request, principal, target_id)
    after = decode_cursor(cursor)
    if after is not None and (len(after) != 1 or not isinstance(after[0], int)):
        raise _invalid("cursor", "malformed")
    async with _svc(request).runtime.pool.acquire() as conn:
        rows = await repo.list_deliveries(
            conn,
            account_id=principal.account_id,
            target_id=target_id,
            statuses=status or [],
            limit=limit + 1,
            before_seq=after[0] if after else None,
        )
    page = rows[:limit]
    nxt = encode_cursor([page[-1]["seq"]]) if len(rows) > limit else None
    return {"items": [delivery_out(r) for r in page], "next_cursor": nxt}


@router.get("/targets/{target_id}/deliveries/{delivery_id}")
async def get_delivery(
    target_id: uuid.UUID, delivery_id: uuid.UUID, request: Request, principal: Reader
) -> dict[str, Any]:
    async with _svc(request).runtime.pool.acquire() as conn:
        row = await repo.get_delivery(
            conn, account_id=principal.account_id, target_id=target_id, delivery_id=delivery_id
        )
    if row is None:
        raise not_found("delivery")
    return delivery_out(row)


@router.post("/targets/{target_id}/deliveries/{delivery_id}:retry")
async def retry(
    target_id: uuid.UUID, delivery_id: uuid.UUID, request: Request, principal: Operator
) -> dict[str, Any]:
    """Send a failed or dead delivery again (same Idempotency-Key), with a fresh retry budget."""
    row = await retry_delivery(
        _svc(request), account_id=principal.account_id, target_id=target_id, delivery_id=delivery_id
    )
    if row is None:
        raise not_found("delivery")
    return delivery_out(row)
