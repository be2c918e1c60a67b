"""HTTP routes of the suppression service: parse, authorize, call a handler, map errors."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from dialguard.events.envelope import format_time
from dialguard.identifiers import (
    Channel,
    IdentifierType,
    InvalidIdentifier,
    normalize_identifier,
    validate_channel,
)
from dialguard.platform.auth import OUTBOUND_MANAGER, READERS, Principal, require_roles
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor_key, encode_cursor
from dialguard.suppression import repository as repo
from dialguard.suppression.check_http import CHECK_ROLES, answer_batch, answer_one
from dialguard.suppression.check_wire import MAX_CHECK_IDS
from dialguard.suppression.domain import NewEntry
from dialguard.suppression.handlers import (
    Suppression,
    add_entries,
    create_stoplist,
    entry_payload,
    remove_entries,
)

Manager = Annotated[Principal, Depends(require_roles(OUTBOUND_MANAGER))]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]
Checker = Annotated[Principal, Depends(require_roles(*CHECK_ROLES))]

Source = Literal[
    "end_user_message", "campaign_action", "url_opt_out", "manual", "agent_disposition", "api", "import"
]


class IdentifierIn(BaseModel):
    type: IdentifierType
    value: str = Field(min_length=1, max_length=512)


class EntryIn(BaseModel):
    identifier: IdentifierIn
    channel: Channel | None = None
    sender: str | None = Field(default=None, max_length=256)
    source: Source = "api"
    reason: str | None = Field(default=None, max_length=1000)
    expires_in_days: int | None = Field(default=None, ge=1, le=36500)
    region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    phone_format: Literal["international", "national"] | None = None


class StoplistIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    entries: list[EntryIn] = Field(default_factory=list, max_length=10_000)


class StoplistPatch(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class BulkDeleteIn(BaseModel):
    entry_ids: list[uuid.UUID] = Field(min_length=1, max_length=10_000)


class PasswordIn(BaseModel):
    password: str = Field(min_length=8, max_length=256)


class CheckIn(BaseModel):
    identifiers: list[IdentifierIn] = Field(max_length=MAX_CHECK_IDS)
    channel: Channel | None = None
    sender: str | None = Field(default=None, max_length=256)
    stoplist_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    region: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


def _svc(request: Request) -> Suppression:
    svc: Suppression = request.app.state.suppression
    return svc


def _region(request: Request, region: str | None) -> str:
    return region or request.app.state.runtime.settings.DEFAULT_PHONE_REGION  # type: ignore[no-any-return]


def to_new_entry(body: EntryIn, *, region: str, field_prefix: str = "") -> NewEntry:
    """Normalize per CONTRACT §4; a bad identifier or channel is a 422 naming the field and the reason."""
    try:
        ident = normalize_identifier(
            body.identifier.type,
            body.identifier.value,
            region=body.region or region,
            phone_format=body.phone_format,
        )
        channel = validate_channel(ident.type, body.channel)
    except InvalidIdentifier as exc:
        detail: dict[str, Any] = {
            "field": f"{field_prefix}identifier.value",
            "reason": exc.reason,
            "code": exc.code,
        }
        if exc.readings:
            detail["readings"] = list(exc.readings)
            detail["hint"] = "pass phone_format: international | national"
        if exc.code == "invalid_channel":
            detail["field"] = f"{field_prefix}channel"
        raise ApiError(422, exc.code, f"invalid identifier: {exc.reason}", [detail]) from exc
    expires = datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    return NewEntry(ident.type, ident.value, channel, body.sender, body.source, body.reason, expires)


def stoplist_out(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "record_count": int(row["record_count"]),
        "created_at": format_time(row["created_at"]),
    }


def entry_out(row: Any) -> dict[str, Any]:
    out = entry_payload(row)
    out["id"] = out["entry_id"]
    return out


def _confirm(confirm: bool) -> None:
    if not confirm:
        raise ApiError(400, "confirmation_required", "destructive call: repeat it with ?confirm=true")


def hash_password(password: str) -> str:
    """scrypt with a random salt; the password itself is never stored or logged."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


router = APIRouter(prefix="/v1", tags=["suppression"])


@router.post("/stoplists", status_code=201)
async def create(body: StoplistIn, request: Request, principal: Manager) -> dict[str, Any]:
    region = _region(request, None)
    entries = [
        to_new_entry(e, region=region, field_prefix=f"entries.{i}.") for i, e in enumerate(body.entries)
    ]
    stoplist, rows = await create_stoplist(
        _svc(request),
        account_id=principal.account_id,
        name=body.name.strip(),
        entries=entries,
        actor=principal.sub,
    )
    if stoplist is None:
        raise ApiError(409, "name_taken", f"a stoplist named {body.name!r} exists", [{"field": "name"}])
    return {**stoplist_out(stoplist), "entries": [entry_out(r) for r in rows]}


@router.get("/stoplists")
async def list_all(
    request: Request,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    key = decode_cursor_key(cursor, datetime.fromisoformat, uuid.UUID)
    async with _svc(request).runtime.pool.acquire() as conn:
        rows = await repo.list_stoplists(conn, account_id=principal.account_id, limit=limit + 1, after=key)
    page = rows[:limit]
    nxt = (
        encode_cursor([page[-1]["created_at"].isoformat(), str(page[-1]["id"])])
        if len(rows) > limit
        else None
    )
    return {"items": [stoplist_out(r) for r in page], "next_cursor": nxt}


async def _stoplist_or_404(request: Request, principal: Principal, stoplist_id: uuid.UUID) -> Any:
    async with _svc(request).runtime.pool.acquire() as conn:
        row = await repo.get_stoplist(conn, account_id=principal.account_id, stoplist_id=stoplist_id)
    if row is None:
        raise not_found("stoplist")
    return row


@router.get("/stoplists/{stoplist_id}")
async def get_one(stoplist_id: uuid.UUID, request: Request, principal: Reader) -> dict[str, Any]:
    row = await _stoplist_or_404(request, principal, stoplist_id)
    return {**stoplist_out(row), "truncate_password_set": bool(row["has_password"])}


@router.patch("/stoplists/{stoplist_id}")
async def rename(
    stoplist_id: uuid.UUID, body: StoplistPatch, request: Request, principal: Manager
) -> dict[str, Any]:
    async with _svc(request).runtime.pool.acquire() as conn:
        try:
            row = await repo.rename_stoplist(
                conn, account_id=principal.account_id, stoplist_id=stoplist_id, name=body.name.strip()
            )
        except Exception as exc:  # unique violation
            if type(exc).__name__ == "UniqueViolationError":
                raise ApiError(409, "name_taken", f"a stoplist named {body.name!r} exists") from exc
            raise
    if row is None:
        raise not_found("stoplist")
    return stoplist_out(row)


@router.delete("/stoplists/{stoplist_id}", status_code=204)
async def delete_stoplist(
    stoplist_id: uuid.UUID, request: Request, principal: Manager, confirm: bool = False
) -> Response:
    _confirm(confirm)
    svc = _svc(request)
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        if await repo.lock_stoplist(conn, account_id=principal.account_id, stoplist_id=stoplist_id) is None:
            raise not_found("stoplist")
        await remove_entries(
            svc,
            conn,
            account_id=principal.account_id,
            where=repo.BY_STOPLIST,
            args=[stoplist_id],
            op="removed",
            actor=principal.sub,
            reason="stoplist deleted",
        )
        await repo.delete_stoplist_row(conn, account_id=principal.account_id, stoplist_id=stoplist_id)
    return Response(status_code=204)


@router.post("/stoplists/{stoplist_id}/entries", status_code=201)
async def add_entry(
    stoplist_id: uuid.UUID, body: EntryIn, request: Request, response: Response, principal: Manager
) -> dict[str, Any]:
    svc = _svc(request)
    entry = to_new_entry(body, region=_region(request, None))
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        if await repo.get_stoplist(conn, account_id=principal.account_id, stoplist_id=stoplist_id) is None:
            raise not_found("stoplist")
        rows = await add_entries(
            svc,
            conn,
            account_id=principal.account_id,
            stoplist_id=stoplist_id,
            entries=[entry],
            actor=principal.sub,
            correlation_id=request.headers.get("x-correlation-id"),
        )
        if rows:
            return entry_out(rows[0])
        existing = await repo.find_existing(
            conn, account_id=principal.account_id, stoplist_id=stoplist_id, entry=entry
        )
    response.status_code = 200  # idempotent: the same identifier + channel + sender is already there
    return entry_out(existing)


@router.get("/stoplists/{stoplist_id}/entries")
async def list_entries(
    stoplist_id: uuid.UUID,
    request: Request,
    principal: Reader,
    type: Annotated[list[IdentifierType] | None, Query()] = None,
    value: Annotated[list[str] | None, Query()] = None,
    channel: Annotated[list[Channel] | None, Query()] = None,
    sender: Annotated[list[str] | None, Query()] = None,
    source: Annotated[list[Source] | None, Query()] = None,
    added_from: Annotated[list[datetime] | None, Query()] = None,
    added_to: Annotated[list[datetime] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    await _stoplist_or_404(request, principal, stoplist_id)
    after = decode_cursor_key(cursor, datetime.fromisoformat, uuid.UUID)
    values = _normalized_filter_values(request, value)
    async with _svc(request).runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            f"""SELECT {repo.ENTRY_COLUMNS} FROM entries
                WHERE account_id = $1 AND stoplist_id = $2
                  AND ($3::text[] IS NULL OR id_type = ANY($3)) AND ($4::text[] IS NULL OR value = ANY($4))
                  AND ($5::text[] IS NULL OR channel = ANY($5)) AND ($6::text[] IS NULL OR sender = ANY($6))
                  AND ($7::text[] IS NULL OR source = ANY($7))
                  AND ($8::timestamptz IS NULL OR added_at >= $8) AND ($9::timestamptz IS NULL OR added_at <= $9)
                  AND ($10::timestamptz IS NULL OR (added_at, id) > ($10, $11::uuid))
                ORDER BY added_at, id LIMIT $12""",
            principal.account_id,
            stoplist_id,
            type,
            values,
            channel,
            sender,
            source,
            min(added_from) if added_from else None,
            max(added_to) if added_to else None,
            after[0] if after else None,
            after[1] if after else None,
            limit + 1,
        )
    page = rows[:limit]
    nxt = (
        encode_cursor([page[-1]["added_at"].isoformat(), str(page[-1]["id"])]) if len(rows) > limit else None
    )
    return {"items": [entry_out(r) for r in page], "next_cursor": nxt}


def _normalized_filter_values(request: Request, values: list[str] | None) -> list[str] | None:
    """Filter values match stored (normalized) values: accept them as typed and as normalized phones/emails."""
    if not values:
        return None
    out: list[str] = []
    for raw in values:
        out.append(raw.strip())
        for kind in ("email",) if "@" in raw else ("phone",):
            with contextlib.suppress(InvalidIdentifier):
                out.append(normalize_identifier(kind, raw, region=_region(request, None)).value)
    return out


@router.delete("/stoplists/{stoplist_id}/entries/{entry_id}", status_code=204)
async def delete_entry(
    stoplist_id: uuid.UUID, entry_id: uuid.UUID, request: Request, principal: Manager, confirm: bool = False
) -> Response:
    _confirm(confirm)
    svc = _svc(request)
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        rows = await remove_entries(
            svc,
            conn,
            account_id=principal.account_id,
            where=repo.BY_ENTRY_IDS,
            args=[stoplist_id, [entry_id]],
            op="removed",
            actor=principal.sub,
        )
    if not rows:
        raise not_found("entry")
    return Response(status_code=204)


@router.post("/stoplists/{stoplist_id}/entries:delete")
async def bulk_delete(
    stoplist_id: uuid.UUID, body: BulkDeleteIn, request: Request, principal: Manager, confirm: bool = False
) -> dict[str, Any]:
    _confirm(confirm)
    svc = _svc(request)
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        if await repo.get_stoplist(conn, account_id=principal.account_id, stoplist_id=stoplist_id) is None:
            raise not_found("stoplist")
        rows = await remove_entries(
            svc,
            conn,
            account_id=principal.account_id,
            where=repo.BY_ENTRY_IDS,
            args=[stoplist_id, list(dict.fromkeys(body.entry_ids))],
            op="removed",
            actor=principal.sub,
        )
    deleted = {r["id"] for r in rows}
    return {"deleted": len(deleted), "not_found": [str(i) for i in body.entry_ids if i not in deleted]}


@router.put("/stoplists/{stoplist_id}/truncate-password", status_code=204)
async def set_password(
    stoplist_id: uuid.UUID, body: PasswordIn, request: Request, principal: Manager
) -> Response:
    async with _svc(request).runtime.pool.acquire() as conn:
        ok = await repo.set_truncate_password(
            conn,
            account_id=principal.account_id,
            stoplist_id=stoplist_id,
            password_hash=hash_password(body.password),
        )
    if not ok:
        raise not_found("stoplist")
    return Response(status_code=204)


class TruncateIn(BaseModel):
    password: str = Field(min_length=1, max_length=256)


@router.post("/stoplists/{stoplist_id}/truncate")
async def truncate(
    stoplist_id: uuid.UUID, body: TruncateIn, request: Request, principal: Manager
) -> dict[str, Any]:
    svc = _svc(request)
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        row = await repo.lock_stoplist(conn, account_id=principal.account_id, stoplist_id=stoplist_id)
        if row is None:
            raise not_found("stoplist")
        if row["truncate_password_hash"] is None:
            raise ApiError(403, "truncate_password_not_set", "set a truncate password first")
        if not verify_password(body.password, row["truncate_password_hash"]):
            raise ApiError(403, "wrong_password", "wrong truncate password")
        rows = await remove_entries(
            svc,
            conn,
            account_id=principal.account_id,
            where=repo.BY_STOPLIST,
            args=[stoplist_id],
            op="removed",
            actor=principal.sub,
            reason="truncate",
        )
    return {"removed": len(rows)}


# GET and POST /v1/check are answered by check_http.CheckFastPath before routing; these declarations
# give them their OpenAPI entries and run the same functions should a request reach them.
@router.get("/check")
async def check_one(
    request: Request,
    principal: Checker,
    type: IdentifierType,
    value: Annotated[str, Query(min_length=1, max_length=512)],
    channel: Channel | None = None,
    sender: Annotated[str | None, Query(max_length=256)] = None,
    region: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
) -> dict[str, Any]:
    query = {"type": type, "value": value, "channel": channel, "sender": sender, "region": region}
    answer: dict[str, Any] = await answer_one(
        _svc(request), principal, {k: v for k, v in query.items() if v is not None}, _region(request, None)
    )
    return answer


def _check_in_schema() -> dict[str, Any]:
    """CheckIn's JSON Schema for OpenAPI (the body is parsed by hand, so FastAPI cannot derive it)."""
    schema = CheckIn.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post("/check", openapi_extra=_check_in_schema())
async def check_batch(request: Request, principal: Checker) -> Response:
    """Hand-parsed with orjson: at 10,000 ids per request pydantic's model parse costs more than the lookup."""
    raw = await request.body()
    body = await answer_batch(_svc(request), principal, raw, _region(request, None))
    return Response(body, media_type="application/json")
