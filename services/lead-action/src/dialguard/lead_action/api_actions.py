"""HTTP routes of lead search, the 13 lead actions, their audit trail and the e-mailed export links."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from dialguard.events.envelope import format_time
from dialguard.lead_action import exports
from dialguard.lead_action import repository as repo
from dialguard.lead_action.api import ACCOUNT, Limit, after_id, lead_page, own_account, svc_of
from dialguard.lead_action.domain import ACTIONS, DESTRUCTIVE_ACTIONS, ParamError, parse_criteria
from dialguard.lead_action.handlers import ActionRequest, apply_action, param_error
from dialguard.lead_action.ratelimit import rate_limited
from dialguard.platform.auth import OPS, OUTBOUND_MANAGER, READERS, Principal, require_roles
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.paging import DEFAULT_LIMIT, decode_cursor_key, encode_cursor

Searcher = Annotated[Principal, Depends(rate_limited("searches", *READERS))]
Actor = Annotated[Principal, Depends(rate_limited("actions", OUTBOUND_MANAGER))]
Auditor = Annotated[Principal, Depends(require_roles(OPS, OUTBOUND_MANAGER))]
router = APIRouter(prefix=ACCOUNT, tags=["lead actions"])


class SearchIn(BaseModel):
    campaignLeadSearchCriteria: dict[str, Any] = Field(default_factory=dict)


class ParamsIn(BaseModel):
    paramMap: dict[str, Any] = Field(default_factory=dict)


class ActionIn(BaseModel):
    campaignLeadSearchCriteria: dict[str, Any]
    leadActionParams: ParamsIn | None = None


def _region(request: Request) -> str:
    return request.app.state.runtime.settings.DEFAULT_PHONE_REGION  # type: ignore[no-any-return]


@router.post("/campaignLeads/search")
async def search(
    accountId: str,
    body: SearchIn,
    request: Request,
    principal: Searcher,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Response:
    """Leads matching every criterion given (each list: any of its values), in id order, paged."""
    account = own_account(accountId, principal)
    try:
        criteria = parse_criteria(body.campaignLeadSearchCriteria, region=_region(request))
    except ParamError as exc:
        raise param_error(exc) from exc
    async with svc_of(request).runtime.pool.acquire() as conn:
        rows = await repo.search_leads(
            conn, account_id=account, criteria=criteria, after=after_id(cursor), limit=limit + 1
        )
    return lead_page(rows, limit)


@router.put("/campaignLeads/actions")
async def act(
    accountId: str,
    body: ActionIn,
    request: Request,
    principal: Actor,
    leadAction: Annotated[str, Query(min_length=1, max_length=64)],
    confirm: bool = False,
) -> dict[str, Any]:
    """Apply one action to every lead the criteria match (set-based), audited, announced on leads.actions.v1.

    DELETE_LEADS is destructive: it needs `?confirm=true` (CONTRACT §3), else 400 confirmation_required.
    """
    account = own_account(accountId, principal)
    action = leadAction.strip().upper()
    if action not in ACTIONS:
        raise ApiError(
            400,
            "unknown_action",
            f"unknown leadAction {leadAction!r}",
            [{"field": "leadAction", "valid_values": list(ACTIONS)}, *ACTIONS],
        )
    if action in DESTRUCTIVE_ACTIONS and not confirm:
        raise ApiError(
            400,
            "confirmation_required",
            f"{action} is destructive: repeat it with ?confirm=true",
            [{"field": "confirm", "reason": "must be true"}],
        )
    params = body.leadActionParams.paramMap if body.leadActionParams else {}
    try:
        criteria = parse_criteria(body.campaignLeadSearchCriteria, region=_region(request))
        result = await apply_action(
            svc_of(request),
            ActionRequest(
                account_id=account,
                actor=principal.sub,
                action=action,
                criteria=criteria,
                params=params,
                correlation_id=request.headers.get("x-correlation-id"),
            ),
        )
    except ParamError as exc:
        raise param_error(exc) from exc
    return {"action_id": str(result.action_id), "action": action, "affected": result.affected, **result.extra}


def _action_out(r: Any) -> dict[str, Any]:
    return {
        "id": str(r["id"]),
        "action_id": str(r["id"]),
        "actor": r["actor"],
        "applied_at": format_time(r["applied_at"]),
        "action": r["action"],
        "criteria": r["criteria"],
        "params": r["params"],
        "affected": r["affected"],
    }


@router.get("/actions")
async def audit(
    accountId: str,
    request: Request,
    principal: Auditor,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Every action applied in the account, newest first: who, when, what, on which criteria, how many."""
    account = own_account(accountId, principal)
    key = decode_cursor_key(cursor, datetime.fromisoformat, uuid.UUID)
    async with svc_of(request).runtime.pool.acquire() as conn:
        rows = await repo.list_actions(conn, account_id=account, after=key, limit=limit + 1)
    items = rows[:limit]
    nxt = (
        encode_cursor([items[-1]["applied_at"].isoformat(), str(items[-1]["id"])])
        if len(rows) > limit
        else None
    )
    return {"items": [_action_out(r) for r in items], "next_cursor": nxt}


@router.get("/leadExports/{exportId}")
async def download(
    accountId: str,
    exportId: uuid.UUID,
    request: Request,
    expires: Annotated[int, Query()],
    signature: Annotated[str, Query(min_length=16, max_length=128)],
) -> Response:
    """The e-mailed link: the signature is the credential (no token), valid until `expires`."""
    secret = request.app.state.runtime.settings.AUTH_JWT_SECRET
    if not exports.verify(
        secret,
        account_id=accountId,
        export_id=str(exportId),
        expires=expires,
        signature=signature,
        now=time.time(),
    ):
        expired = (
            exports.sign(secret, account_id=accountId, export_id=str(exportId), expires=expires) == signature
        )
        code, message = (
            ("link_expired", "the download link expired") if expired else ("invalid_signature", "bad link")
        )
        raise ApiError(403, code, message, [{"field": "signature" if not expired else "expires"}])
    async with svc_of(request).runtime.pool.acquire() as conn:
        row = await repo.get_export(conn, account_id=accountId, export_id=exportId)
    if row is None:
        raise not_found("export")
    return Response(
        bytes(row["data"]),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{row["filename"]}"'},
    )


__all__ = ["after_id", "router"]
