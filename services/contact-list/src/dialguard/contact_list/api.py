"""HTTP routes for contact lists and their contacts: parse, authorize, call SQL/handlers, map errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dialguard.contact_list import handlers
from dialguard.contact_list import repository as repo
from dialguard.contact_list.domain import STATUSES, next_run
from dialguard.contact_list.filters import ContactFilter, preview
from dialguard.contact_list.outgoing import campaign_link
from dialguard.contact_list.text import Text
from dialguard.events.envelope import format_time
from dialguard.platform.auth import OUTBOUND_MANAGER, READERS, Principal, require_roles
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from dialguard.platform.runtime import ServiceRuntime

Manager = Annotated[Principal, Depends(require_roles(OUTBOUND_MANAGER))]
Reader = Annotated[Principal, Depends(require_roles(*READERS))]
ChannelName = Literal["voice", "sms", "whatsapp", "viber", "email", "messenger"]
DEFAULT_CRON = "0 0 * * *"

router = APIRouter(prefix="/v1", tags=["contact lists"])


class CampaignIn(BaseModel):
    """The lead-action campaign and list the contacts feed (ids as lead-action gives them, numbers or text)."""

    campaign_id: Text = Field(min_length=1, max_length=256)
    list_id: Text = Field(min_length=1, max_length=256)

    @field_validator("campaign_id", "list_id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ContactListIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    kind: Literal["telephony", "text"] = "telephony"
    channel: ChannelName | None = None
    unique_id_column: Text | None = Field(default=None, max_length=200)
    name_column: Text | None = Field(default=None, max_length=200)
    close_when_all_reached: bool = False
    max_attempts: int = Field(default=3, ge=1, le=100)
    campaign: CampaignIn | None = None
    source: Literal["file", "filter"] = "file"
    filter: ContactFilter | None = None
    auto_add: bool = False
    auto_add_cron: Text = Field(default=DEFAULT_CRON, max_length=100)


class FromFilterIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    filter: ContactFilter
    kind: Literal["telephony", "text"] = "telephony"
    channel: ChannelName | None = None
    close_when_all_reached: bool = False
    max_attempts: int = Field(default=3, ge=1, le=100)
    campaign: CampaignIn | None = None
    auto_add: bool = False
    auto_add_cron: Text = Field(default=DEFAULT_CRON, max_length=100)


class ContactListPatch(BaseModel):
    """Editable settings; the kind, channel and column choices are fixed by the first file."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    close_when_all_reached: bool | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    campaign: CampaignIn | None = None
    auto_add: bool | None = None
    auto_add_cron: Text | None = Field(default=None, max_length=100)


def _invalid(field: str, reason: str) -> ApiError:
    return ApiError(
        422, "validation_error", f"invalid input: {field}: {reason}", [{"field": field, "reason": reason}]
    )


def check_settings(body: ContactListIn) -> None:
    """Cross-field rules a single field's type cannot say; 422 naming the field."""
    if body.kind == "text" and body.channel is None and body.source == "file":
        raise _invalid("channel", "a text list needs the channel its client ids are for")
    if body.kind == "text" and body.channel == "voice":
        raise _invalid(
            "channel", "a text list is for a text channel: sms, whatsapp, viber, email or messenger"
        )
    if body.kind == "telephony" and body.channel not in (None, "voice"):
        raise _invalid("channel", "a telephony list dials on channel voice")
    if body.source == "filter" and body.filter is None:
        raise _invalid("filter", "required when source is filter")
    if body.auto_add and body.source != "filter":
        raise _invalid("auto_add", "only a list built from a filter adds new contacts automatically")
    try:
        next_run(body.auto_add_cron, datetime.now(UTC))
    except (ValueError, KeyError) as exc:
        raise _invalid("auto_add_cron", str(exc)) from exc


def runtime(request: Request) -> ServiceRuntime:
    rt: ServiceRuntime = request.app.state.runtime
    return rt


def confirm_or_400(confirm: bool) -> None:
    if not confirm:
        raise ApiError(400, "confirmation_required", "destructive call: repeat it with ?confirm=true")


def list_out(row: Any) -> dict[str, Any]:
    """The ContactList resource of CONTRACT §7 (counts are live: computed from contact statuses)."""
    counts = {
        k: int(row[k]) for k in ("total", "callable", "planning", "open", "attempted", "flagged", "closed")
    }
    campaign_status = row["campaign_status"]
    if (
        campaign_status == "active"
        and counts["total"]
        and not (counts["callable"] + counts["planning"] + counts["open"])
    ):
        campaign_status = "completed"  # nothing is left to dial or to wait for
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "kind": row["kind"],
        "channel": row["channel"],
        "counts": counts,
        "campaign": campaign_link(row),
        "campaign_status": campaign_status,
        "unique_id_column": row["unique_id_column"],
        "name_column": row["name_column"],
        "close_when_all_reached": row["close_when_all_reached"],
        "max_attempts": row["max_attempts"],
        "source": row["source"],
        "filter": row["filter"],
        "auto_add": row["auto_add"],
        "auto_add_cron": row["auto_add_cron"],
        "next_auto_add_at": format_time(row["next_auto_add_at"]) if row["next_auto_add_at"] else None,
        "columns": list(row["columns"]) if row["columns"] is not None else None,
        "created_at": format_time(row["created_at"]),
    }


def contact_out(row: Any, units: list[Any]) -> dict[str, Any]:
    """The Contact resource of CONTRACT §7."""
    return {
        "id": str(row["id"]),
        "external_id": row["external_id"],
        "name": row["name"],
        "status": row["status"],
        "units": [
            {
                "type": u["type"],
                "value": u["value"],
                "channel": u["channel"],
                "priority": u["priority"],
                "callable": u["callable"],
            }
            for u in units
        ],
        "fields": row["fields"],
        "timezone": row["timezone"],
        "attempts": row["attempts"],
        "created_at": format_time(row["created_at"]),
        "updated_at": format_time(row["updated_at"]),
    }


async def _create(rt: ServiceRuntime, principal: Principal, body: ContactListIn) -> dict[str, Any]:
    check_settings(body)
    now = datetime.now(UTC)
    values = {
        "name": body.name.strip(),
        "kind": body.kind,
        "channel": body.channel or ("voice" if body.kind == "telephony" else None),
        "unique_id_column": body.unique_id_column,
        "name_column": body.name_column,
        "close_when_all_reached": body.close_when_all_reached,
        "max_attempts": body.max_attempts,
        "campaign_id": body.campaign.campaign_id if body.campaign else None,
        "campaign_list_id": body.campaign.list_id if body.campaign else None,
        "source": body.source,
        "filter": body.filter.model_dump(exclude_none=True) if body.filter else None,
        "auto_add": body.auto_add,
        "auto_add_cron": body.auto_add_cron,
        "next_auto_add_at": next_run(body.auto_add_cron, now) if body.auto_add else None,
        "created_by": principal.sub,
    }
    row = await handlers.create_list(rt, account_id=principal.account_id, values=values, flt=body.filter)
    return list_out(row)


@router.post("/contact-lists", status_code=201)
async def create(body: ContactListIn, request: Request, principal: Manager) -> dict[str, Any]:
    return await _create(runtime(request), principal, body)


@router.post("/contact-lists:from-filter", status_code=201)
async def create_from_filter(body: FromFilterIn, request: Request, principal: Manager) -> dict[str, Any]:
    full = ContactListIn(**body.model_dump(), source="filter")
    return await _create(runtime(request), principal, full)


@router.get("/contact-lists")
async def list_all(
    request: Request,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    after = _after(cursor)
    async with runtime(request).pool.acquire() as conn:
        rows = await repo.page_lists(conn, account_id=principal.account_id, limit=limit + 1, after=after)
    page = rows[:limit]
    nxt = (
        encode_cursor([page[-1]["created_at"].isoformat(), str(page[-1]["id"])])
        if len(rows) > limit
        else None
    )
    return {"items": [list_out(r) for r in page], "next_cursor": nxt}


def _after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    after = decode_cursor(cursor)
    if not after:
        return None
    try:
        return datetime.fromisoformat(str(after[0])), uuid.UUID(str(after[1]))
    except (ValueError, IndexError) as exc:
        raise ApiError(
            422, "validation_error", "invalid cursor", [{"field": "cursor", "reason": "malformed"}]
        ) from exc


def _after_seq(cursor: str | None) -> int | None:
    after = decode_cursor(cursor)
    if not after:
        return None
    if not isinstance(after[0], int):
        raise ApiError(
            422, "validation_error", "invalid cursor", [{"field": "cursor", "reason": "malformed"}]
        )
    return after[0]


async def list_or_404(rt: ServiceRuntime, principal: Principal, list_id: uuid.UUID) -> Any:
    async with rt.pool.acquire() as conn:
        row = await repo.get_list(conn, account_id=principal.account_id, list_id=list_id)
    if row is None:
        raise not_found("contact list")
    return row


@router.get("/contact-lists/{list_id}")
async def get_one(list_id: uuid.UUID, request: Request, principal: Reader) -> dict[str, Any]:
    return list_out(await list_or_404(runtime(request), principal, list_id))


@router.patch("/contact-lists/{list_id}")
async def update(
    list_id: uuid.UUID, body: ContactListPatch, request: Request, principal: Manager
) -> dict[str, Any]:
    rt = runtime(request)
    current = await list_or_404(rt, principal, list_id)
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("close_when_all_reached", "max_attempts", "auto_add", "auto_add_cron"):
        if name in given and getattr(body, name) is not None:
            changes[name] = getattr(body, name)
    if body.name is not None:
        changes["name"] = body.name.strip()
    if "campaign" in given:  # null unlinks
        changes["campaign_id"] = body.campaign.campaign_id if body.campaign else None
        changes["campaign_list_id"] = body.campaign.list_id if body.campaign else None
        changes["campaign_status"] = "active" if body.campaign else None
    auto_add = changes.get("auto_add", current["auto_add"])
    cron = changes.get("auto_add_cron", current["auto_add_cron"])
    if auto_add and current["source"] != "filter":
        raise _invalid("auto_add", "only a list built from a filter adds new contacts automatically")
    if {"auto_add", "auto_add_cron"} & changes.keys():
        try:
            changes["next_auto_add_at"] = next_run(cron, datetime.now(UTC)) if auto_add else None
        except (ValueError, KeyError) as exc:
            raise _invalid("auto_add_cron", str(exc)) from exc
    row = await handlers.update_list(rt, account_id=principal.account_id, list_id=list_id, changes=changes)
    if row is None:
        raise not_found("contact list")
    return list_out(row)


@router.delete("/contact-lists/{list_id}", status_code=204)
async def delete(list_id: uuid.UUID, request: Request, principal: Manager, confirm: bool = False) -> Response:
    confirm_or_400(confirm)
    if not await handlers.delete_list(runtime(request), account_id=principal.account_id, list_id=list_id):
        raise not_found("contact list")
    return Response(status_code=204)


@router.get("/contact-lists/{list_id}/contacts")
async def contacts(
    list_id: uuid.UUID,
    request: Request,
    principal: Reader,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    if status is not None and status not in STATUSES:
        raise ApiError(400, "unknown_status", f"unknown status {status!r}", list(STATUSES))
    rt = runtime(request)
    await list_or_404(rt, principal, list_id)
    after = _after_seq(cursor)
    async with rt.pool.acquire() as conn:
        rows = await repo.page_contacts(conn, list_id=list_id, status=status, limit=limit + 1, after=after)
        page = rows[:limit]
        units = await repo.units_of(conn, [r["id"] for r in page])
    nxt = encode_cursor([page[-1]["seq"]]) if len(rows) > limit else None
    return {"items": [contact_out(r, units.get(r["id"], [])) for r in page], "next_cursor": nxt}


class PreviewIn(BaseModel):
    """The filter to try and how many matching contacts to show (the sample)."""

    filter: ContactFilter
    limit: int = Field(default=10, ge=1, le=100)


@router.post("/contact-lists:preview-filter")
async def preview_filter(body: PreviewIn, request: Request, principal: Reader) -> dict[str, Any]:
    rt = runtime(request)
    async with rt.pool.acquire() as conn:
        total, rows = await preview(conn, account_id=principal.account_id, flt=body.filter, limit=body.limit)
        units = await repo.units_of(conn, [r["id"] for r in rows])
    return {"total": total, "sample": [contact_out(r, units.get(r["id"], [])) for r in rows]}
