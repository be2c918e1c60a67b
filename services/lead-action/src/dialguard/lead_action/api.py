"""HTTP routes of the campaign hierarchy and lead uploads (Engage Voice admin paths, CONTRACT §6)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AliasChoices, BaseModel, Field

from dialguard.events.envelope import format_time
from dialguard.lead_action import repository as repo
from dialguard.lead_action.handlers import LeadService
from dialguard.platform.auth import OUTBOUND_MANAGER, READERS, Principal, require_roles
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor

Manager = Annotated[Principal, Depends(require_roles(OUTBOUND_MANAGER))]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
ACCOUNT = "/v1/admin/accounts/{accountId}"
router = APIRouter(prefix=ACCOUNT, tags=["campaigns and leads"])


class NamedIn(BaseModel):
    """A dial group, campaign or list to create; Engage Voice's own field names are accepted too."""

    name: str = Field(
        min_length=1,
        max_length=200,
        validation_alias=AliasChoices("name", "dialGroupName", "campaignName", "listName", "listDescription"),
    )


def svc_of(request: Request) -> LeadService:
    svc: LeadService = request.app.state.leads
    return svc


def own_account(account_id: str, principal: Principal) -> str:
    """The path's account must be the token's; any other is a 404 (never reveal it exists)."""
    if account_id != principal.account_id:
        raise not_found("account")
    return account_id


def after_id(cursor: str | None) -> int:
    values = decode_cursor(cursor)
    if values is None:
        return 0
    if len(values) != 1 or not isinstance(values[0], int):
        raise ApiError(
            422, "validation_error", "invalid cursor", [{"field": "cursor", "reason": "malformed"}]
        )
    return values[0]


def page(rows: list[Any], limit: int, shape: Any) -> dict[str, Any]:
    """Keyset page by id: one row past the limit says there is a next page."""
    items = rows[:limit]
    nxt = encode_cursor([items[-1]["id"]]) if len(rows) > limit else None
    return {"items": [shape(r) for r in items], "next_cursor": nxt}


def lead_page(rows: list[Any], limit: int) -> Response:
    """A page of Leads as JSON bytes: FastAPI's generic encoder took ~7 ms of a 50-lead page (half a search)."""
    return Response(orjson.dumps(page(rows, limit, lead_out)), media_type="application/json")


def dial_group_out(r: Any) -> dict[str, Any]:
    return {"id": str(r["id"]), "name": r["name"], "created_at": format_time(r["created_at"])}


def campaign_out(r: Any) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "name": r["name"],
        "dial_group_id": str(r["dial_group_id"]),
        "created_at": format_time(r["created_at"]),
    }


def list_out(r: Any) -> dict[str, Any]:
    out = {
        "id": str(r["id"]),
        "name": r["name"],
        "campaign_id": str(r["campaign_id"]),
        "created_at": format_time(r["created_at"]),
    }
    if "lead_count" in r:
        out["lead_count"] = int(r["lead_count"])
    return out


def _time(value: Any) -> str | None:
    return format_time(value) if value is not None else None


def lead_out(r: Any) -> dict[str, Any]:
    """The Lead shape of CONTRACT §7, plus the rest of what the service knows of the lead."""
    return {
        "id": str(r["id"]),
        "list_id": str(r["list_id"]),
        "campaign_id": str(r["campaign_id"]),
        "external_id": r["external_id"],
        "contact_id": r["contact_id"],
        "phone": r["phone"],
        "first_name": r["first_name"],
        "last_name": r["last_name"],
        "fields": r["fields"],
        "timezone": r["timezone"],
        "status": r["status"],
        "pass_count": r["pass_count"],
        "manual_pass_count": r["manual_pass_count"],
        "next_dial_at": _time(r["next_dial_at"]),
        "suppressed": r["suppressed"],
        "suppression_causes": list(r["suppression_causes"]),
        "physical_state": r["physical_state"],
        "agent_disposition": r["agent_disposition"],
        "system_disposition": r["system_disposition"],
        "callback_at": _time(r["callback_at"]),
        "reserved_agent_id": r["reserved_agent_id"],
        "created_at": _time(r["created_at"]),
        "updated_at": _time(r["updated_at"]),
    }


# --- dial groups ---------------------------------------------------------------------------------------


@router.post("/dialGroups", status_code=201)
async def create_dial_group(
    accountId: str, body: NamedIn, request: Request, principal: Manager
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    async with svc_of(request).runtime.pool.acquire() as conn:
        row = await repo.create_dial_group(conn, account_id=account, name=body.name.strip())
    return dial_group_out(row)


@router.get("/dialGroups")
async def list_dial_groups(
    accountId: str,
    request: Request,
    principal: Reader,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    async with svc_of(request).runtime.pool.acquire() as conn:
        rows = await repo.list_dial_groups(conn, account_id=account, after=after_id(cursor), limit=limit + 1)
    return page(rows, limit, dial_group_out)


@router.get("/dialGroups/{dialGroupId}")
async def get_dial_group(
    accountId: str, dialGroupId: int, request: Request, principal: Reader
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    async with svc_of(request).runtime.pool.acquire() as conn:
        row = await repo.get_dial_group(conn, account_id=account, dial_group_id=dialGroupId)
    if row is None:
        raise not_found("dial group")
    return dial_group_out(row)


# --- campaigns -----------------------------------------------------------------------------------------


@router.post("/dialGroups/{dialGroupId}/campaigns", status_code=201)
async def create_campaign(
    accountId: str, dialGroupId: int, body: NamedIn, request: Request, principal: Manager
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    async with svc_of(request).runtime.pool.acquire() as conn, conn.transaction():
        if await repo.get_dial_group(conn, account_id=account, dial_group_id=dialGroupId) is None:
            raise not_found("dial group")
        row = await repo.create_campaign(
            conn, account_id=account, dial_group_id=dialGroupId, name=body.name.strip()
        )
    return campaign_out(row)


@router.get("/dialGroups/{dialGroupId}/campaigns")
async def list_campaigns(
    accountId: str,
    dialGroupId: int,
    request: Request,
    principal: Reader,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    async with svc_of(request).runtime.pool.acquire() as conn:
        if await repo.get_dial_group(conn, account_id=account, dial_group_id=dialGroupId) is None:
            raise not_found("dial group")
        rows = await repo.list_campaigns(
            conn, account_id=account, dial_group_id=dialGroupId, after=after_id(cursor), limit=limit + 1
        )
    return page(rows, limit, campaign_out)


async def campaign_or_404(request: Request, account: str, campaign_id: int, dial_group_id: int | None) -> Any:
    """The account's campaign (under the dial group when the path names one), else 404."""
    async with svc_of(request).runtime.pool.acquire() as conn:
        row = await repo.get_campaign(conn, account_id=account, campaign_id=campaign_id)
    if row is None or (dial_group_id is not None and row["dial_group_id"] != dial_group_id):
        raise not_found("campaign")
    return row


@router.get("/dialGroups/{dialGroupId}/campaigns/{campaignId}")
@router.get("/campaigns/{campaignId}")
async def get_campaign(
    accountId: str, campaignId: int, request: Request, principal: Reader, dialGroupId: int | None = None
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    return campaign_out(await campaign_or_404(request, account, campaignId, dialGroupId))


# --- lists ---------------------------------------------------------------------------------------------


@router.post("/dialGroups/{dialGroupId}/campaigns/{campaignId}/lists", status_code=201)
@router.post("/campaigns/{campaignId}/lists", status_code=201)
async def create_list(
    accountId: str,
    campaignId: int,
    body: NamedIn,
    request: Request,
    principal: Manager,
    dialGroupId: int | None = None,
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    await campaign_or_404(request, account, campaignId, dialGroupId)
    async with svc_of(request).runtime.pool.acquire() as conn:
        row = await repo.create_list(conn, account_id=account, campaign_id=campaignId, name=body.name.strip())
    return list_out(row)


@router.get("/dialGroups/{dialGroupId}/campaigns/{campaignId}/lists")
@router.get("/campaigns/{campaignId}/lists")
async def list_lists(
    accountId: str,
    campaignId: int,
    request: Request,
    principal: Reader,
    dialGroupId: int | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    account = own_account(accountId, principal)
    await campaign_or_404(request, account, campaignId, dialGroupId)
    async with svc_of(request).runtime.pool.acquire() as conn:
        rows = await repo.list_lists(
            conn, account_id=account, campaign_id=campaignId, after=after_id(cursor), limit=limit + 1
        )
    return page(rows, limit, list_out)


async def list_or_404(request: Request, account: str, list_id: int, campaign_id: int | None) -> Any:
    async with svc_of(request).runtime.pool.acquire() as conn:
        row = await repo.get_list(conn, account_id=account, list_id=list_id)
    if row is None or (campaign_id is not None and row["campaign_id"] != campaign_id):
        raise not_found("list")
    return row
