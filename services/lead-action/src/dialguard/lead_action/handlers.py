"""Use cases: hierarchy writes, lead uploads and the 13 lead actions, each one transaction with its events."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from dialguard.events import Envelope
from dialguard.events.envelope import envelope_bytes, format_time, utcnow
from dialguard.events.topics import LEADS_ACTIONS, LEADS_MOVED, LEADS_STOPPED
from dialguard.lead_action import exports
from dialguard.lead_action import repository as repo
from dialguard.lead_action.config import Settings
from dialguard.lead_action.domain import (
    MANUAL,
    Criteria,
    Move,
    ParamError,
    chunks,
    is_dnc_disposition,
    lead_stop_key,
    parse_disposition,
    parse_emails,
    parse_move,
    parse_schedule,
)
from dialguard.messaging.outbox import EncodedEvent, OutgoingEvent
from dialguard.platform.errors import ApiError, not_found
from dialguard.platform.runtime import ServiceRuntime

log = structlog.get_logger(__name__)


@dataclass
class LeadService:
    """The service's dependencies as handlers see them."""

    runtime: ServiceRuntime
    settings: Settings


@dataclass
class ActionResult:
    """What an action answers: its id, how many leads it touched, and action-specific extras."""

    action_id: uuid.UUID
    affected: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """Who asks for which action over which leads, with which parameters."""

    account_id: str
    actor: str
    action: str
    criteria: Criteria
    params: dict[str, Any]
    correlation_id: str | None = None


def envelope(
    svc: LeadService, account_id: str, event_type: str, payload: dict[str, Any], cid: str | None
) -> Envelope:
    return Envelope(
        event_type=event_type,
        account_id=account_id,
        producer=svc.runtime.service,
        correlation_id=cid,
        payload=payload,
    )


def lead_stopped(
    svc: LeadService, *, account_id: str, phone: str, reason: str, correlation_id: str | None
) -> OutgoingEvent:
    """An agent's do-not-call becomes an opt-out for the suppression service (all channels: never dropped)."""
    payload = {
        "identifier": {"type": "phone", "value": phone},
        "channel": None,
        "stoplist_id": None,
        "source": "agent_disposition",
        "sender": None,
        "reason": reason,
        "expires_in_days": None,
    }
    env = envelope(svc, account_id, "LeadStopped", payload, correlation_id)
    return OutgoingEvent(LEADS_STOPPED, lead_stop_key(account_id, phone), env)


def _applied_events(
    svc: LeadService, req: ActionRequest, action_id: uuid.UUID, per_campaign: dict[int, int]
) -> list[OutgoingEvent]:
    """One LeadActionApplied per affected campaign (dialers reload per campaign); one even when nothing matched."""
    targets: dict[int | None, int] = (
        dict(per_campaign.items()) if per_campaign else {req.criteria.single_campaign: 0}
    )
    total = sum(per_campaign.values())
    events = []
    for campaign_id, affected in sorted(targets.items(), key=lambda kv: kv[0] or 0):
        payload = {
            "action_id": str(action_id),
            "action": req.action,
            "criteria": req.criteria.raw,
            "params": req.params,
            "affected": affected,
            "total_affected": total,
            "campaign_id": str(campaign_id) if campaign_id is not None else None,
        }
        env = envelope(svc, req.account_id, "LeadActionApplied", payload, req.correlation_id)
        key = f"{req.account_id}:{campaign_id if campaign_id is not None else ''}"
        events.append(OutgoingEvent(LEADS_ACTIONS, key, env))
    return events


async def _finish(
    svc: LeadService,
    conn: asyncpg.Connection,
    req: ActionRequest,
    action_id: uuid.UUID,
    per_campaign: dict[int, int],
    extra_events: Sequence[OutgoingEvent | EncodedEvent] = (),
) -> int:
    """Audit row and events, in the action's transaction."""
    affected = sum(per_campaign.values())
    await repo.record_action(
        conn,
        action_id=action_id,
        account_id=req.account_id,
        actor=req.actor,
        action=req.action,
        criteria=req.criteria.raw,
        params=req.params,
        affected=affected,
    )
    await svc.runtime.publish(conn, [*extra_events, *_applied_events(svc, req, action_id, per_campaign)])
    return affected


# The status-only actions: one UPDATE each over the criteria match.
_SIMPLE: dict[str, tuple[str, tuple[Any, ...]]] = {
    "RESET_LEADS": ("status = 'READY', pass_count = 0, next_dial_at = now()", ()),
    "CANCEL_LEADS": ("status = 'CANCELLED'", ()),
    "PAUSE_LEADS": ("status = 'PAUSED'", ()),
    "READY_LEADS": ("status = 'READY'", ()),
    "SUPPRESS_LEADS": (
        "suppression_causes = array_append(array_remove(suppression_causes, $1), $1)",
        (MANUAL,),
    ),
    "UNSUPPRESS_LEADS": ("suppression_causes = array_remove(suppression_causes, $1)", (MANUAL,)),
}
# The ones that change a status (so the search's lead_blocks of the touched leads are recomputed).
_STATUS_ACTIONS = frozenset({"RESET_LEADS", "CANCEL_LEADS", "PAUSE_LEADS", "READY_LEADS"})


async def apply_action(svc: LeadService, req: ActionRequest) -> ActionResult:
    """Validate parameters first (422 naming the param), then run the action in one transaction."""
    action_id = uuid.uuid4()
    if req.criteria.is_empty:
        raise ParamError("campaignLeadSearchCriteria", "at least one criterion is required for an action")
    if req.action == "MOVE_TO_CAMPAIGN":
        return await _move(svc, req, action_id)
    if req.action == "EMAIL_LEADS":
        return await _email(svc, req, action_id)
    if req.action == "MANUAL_LEADS":
        return await _manual(svc, req, action_id)
    if req.action in ("CALLBACK_LEADS", "AGENT_RESERVATION"):
        return await _schedule(svc, req, action_id)
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        if req.action in _SIMPLE:
            assignments, params = _SIMPLE[req.action]
            per_campaign = await repo.update_matching(
                conn,
                account_id=req.account_id,
                criteria=req.criteria,
                assignments=assignments,
                params=params,
                changes_status=req.action in _STATUS_ACTIONS,
            )
        elif req.action == "DELETE_LEADS":
            per_campaign = await repo.delete_matching(conn, account_id=req.account_id, criteria=req.criteria)
        elif req.action == "DIALER_REFRESH":
            per_campaign = await repo.count_matching(conn, account_id=req.account_id, criteria=req.criteria)
        else:  # pragma: no cover - the API validates the action name
            raise ValueError(req.action)
        affected = await _finish(svc, conn, req, action_id, per_campaign)
    return ActionResult(action_id, affected)


async def _schedule(svc: LeadService, req: ActionRequest, action_id: uuid.UUID) -> ActionResult:
    """CALLBACK_LEADS / AGENT_RESERVATION: set (status CALLBACK, next dial at the callback) or cancel."""
    reservation = req.action == "AGENT_RESERVATION"
    schedule = parse_schedule(req.params, with_agent=reservation)
    if schedule.cancel:
        agent_clause = ", reserved_agent_id = NULL" if reservation else ""
        assignments = (
            "status = CASE WHEN status = 'CALLBACK' THEN 'READY' ELSE status END, callback_at = NULL"
            + agent_clause
        )
        params: tuple[Any, ...] = ()
    else:
        assignments = "status = 'CALLBACK', callback_at = $1, next_dial_at = $1"
        params = (schedule.callback_at,)
        if reservation:
            assignments += ", reserved_agent_id = $2"
            params = (schedule.callback_at, schedule.agent_id)
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        per_campaign = await repo.update_matching(
            conn,
            account_id=req.account_id,
            criteria=req.criteria,
            assignments=assignments,
            params=params,
            changes_status=True,
        )
        affected = await _finish(svc, conn, req, action_id, per_campaign)
    return ActionResult(action_id, affected)


async def _manual(svc: LeadService, req: ActionRequest, action_id: uuid.UUID) -> ActionResult:
    """+1 manual pass with the agent's disposition; a DNC disposition stops each phone (LeadStopped)."""
    disposition = parse_disposition(req.params)
    dnc = is_dnc_disposition(disposition, svc.settings.dnc_dispositions())
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        rows = await repo.manual_pass(
            conn, account_id=req.account_id, criteria=req.criteria, disposition=disposition, dnc=dnc
        )
        per_campaign: dict[int, int] = defaultdict(int)
        for r in rows:
            per_campaign[r["campaign_id"]] += 1
        stops = []
        if dnc:
            for phone in sorted({r["phone"] for r in rows}):
                stops.append(
                    lead_stopped(
                        svc,
                        account_id=req.account_id,
                        phone=phone,
                        reason=f"agent disposition {disposition}",
                        correlation_id=req.correlation_id,
                    )
                )
        affected = await _finish(svc, conn, req, action_id, dict(per_campaign), stops)
    return ActionResult(action_id, affected, {"lead_stopped": len(stops)})


def _moved_events(
    svc: LeadService,
    req: ActionRequest,
    action_id: uuid.UUID,
    move: Move,
    list_id: int,
    parts: dict[int, list[list[str]]],
) -> list[EncodedEvent]:
    """LeadsMoved per source campaign and chunk of ids, serialised straight to bytes (a 1M-lead move is
    1,000 events: building and validating envelope models for them cost more than the SQL)."""
    occurred_at = format_time(utcnow())
    key = f"{req.account_id}:{move.campaign_id}"
    events = []
    for from_campaign, chunked in sorted(parts.items()):
        total = sum(len(p) for p in chunked)
        for part in chunked:
            event_id = uuid.uuid4()
            payload = {
                "action_id": str(action_id),
                "from_campaign_id": str(from_campaign),
                "to_campaign_id": str(move.campaign_id),
                "to_list_id": str(list_id),
                "mode": move.mode,
                "duplicate_action": move.duplicate_action,
                "lead_ids": part,
                "total_moved": total,
            }
            value = envelope_bytes(
                event_id=event_id,
                event_type="LeadsMoved",
                occurred_at=occurred_at,
                account_id=req.account_id,
                producer=svc.runtime.service,
                payload=payload,
                correlation_id=req.correlation_id,
            )
            events.append(EncodedEvent(LEADS_MOVED, key, value, event_id, "LeadsMoved", req.correlation_id))
    return events


async def _move(svc: LeadService, req: ActionRequest, action_id: uuid.UUID) -> ActionResult:
    """Move, copy or copy-with-TRANSITION into a campaign's list; LeadsMoved in chunks of 1000 ids."""
    move = parse_move(req.params)
    if req.criteria.campaign_ids is not None and move.campaign_id in req.criteria.campaign_ids:
        raise ParamError("leadActionParams.paramMap.CAMPAIGN_ID", "is the source campaign: pick another one")
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        target = await repo.get_campaign(conn, account_id=req.account_id, campaign_id=move.campaign_id)
        if target is None:
            raise not_found("campaign")
        if move.list_id is not None:
            lst = await repo.get_list(conn, account_id=req.account_id, list_id=move.list_id)
            if lst is None:
                raise not_found("list")
            if lst["campaign_id"] != move.campaign_id:
                raise ParamError("leadActionParams.paramMap.LIST_ID", "is not a list of CAMPAIGN_ID")
            list_id = move.list_id
        else:
            created = await repo.create_list(
                conn, account_id=req.account_id, campaign_id=move.campaign_id, name=move.list_name or ""
            )
            list_id = created["id"]
        ignore = move.duplicate_action == "IGNORE"
        if move.mode == "move":
            by_source = await repo.move_leads(
                conn,
                account_id=req.account_id,
                criteria=req.criteria,
                to_campaign=move.campaign_id,
                to_list=list_id,
                ignore_duplicates=ignore,
            )
        else:
            rows = await repo.copy_leads(
                conn,
                account_id=req.account_id,
                criteria=req.criteria,
                to_campaign=move.campaign_id,
                to_list=list_id,
                ignore_duplicates=ignore,
                transition_source=move.mode == "transition",
            )
            copied: dict[int, list[int]] = defaultdict(list)
            for r in rows:
                copied[r["from_campaign"]].append(r["id"])
            by_source = {c: sorted(ids) for c, ids in copied.items()}
        parts = {c: [list(map(str, p)) for p in chunks(ids)] for c, ids in by_source.items()}
        moved_events = _moved_events(svc, req, action_id, move, list_id, parts)
        per_campaign = {c: sum(len(p) for p in ps) for c, ps in parts.items()}
        affected = await _finish(svc, conn, req, action_id, per_campaign, moved_events)
    extra = {"to_campaign_id": str(move.campaign_id), "to_list_id": str(list_id), "mode": move.mode}
    return ActionResult(action_id, affected, extra)


async def _email(svc: LeadService, req: ActionRequest, action_id: uuid.UUID) -> ActionResult:
    """Store the ZIP with the audit row, then mail the signed link (after commit: the link must resolve)."""
    recipients = parse_emails(req.params)
    s = svc.settings
    export_id = uuid.uuid4()
    expires_at = datetime.now(UTC) + timedelta(hours=s.EXPORT_TTL_HOURS)
    expires = int(expires_at.timestamp())
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        data, count = await exports.build_zip(
            conn,
            account_id=req.account_id,
            criteria=req.criteria,
            max_rows=s.EXPORT_MAX_LEADS,
            name=f"leads-{action_id}.csv",
        )
        await repo.store_export(
            conn,
            export_id=export_id,
            account_id=req.account_id,
            action_id=action_id,
            filename=f"leads-{action_id}.zip",
            data=data,
            expires_at=expires_at,
        )
        per_campaign = await repo.count_matching(conn, account_id=req.account_id, criteria=req.criteria)
        affected = await _finish(svc, conn, req, action_id, per_campaign)
    url = exports.download_url(s, account_id=req.account_id, export_id=str(export_id), expires=expires)
    extra: dict[str, Any] = {"export_id": str(export_id), "recipients": list(recipients), "email_sent": True}
    started = time.monotonic()
    try:
        await exports.send_link(
            s, recipients=recipients, url=url, count=count, expires_at=expires_at, actor=req.actor
        )
    except Exception as exc:  # the export stays downloadable; the caller learns the mail did not leave
        log.warning("export mail failed", error=repr(exc), export_id=str(export_id))
        extra["email_sent"] = False
        extra["email_error"] = type(exc).__name__
    log.info("export mailed", export_id=str(export_id), seconds=round(time.monotonic() - started, 3))
    return ActionResult(action_id, affected, extra)


# --- hierarchy and uploads -----------------------------------------------------------------------------


async def add_leads(
    svc: LeadService, *, account_id: str, list_id: int, rows: Sequence[dict[str, Any]]
) -> tuple[int, list[int]]:
    """Insert the valid rows of an upload set-based into a list (404 when it is not the account's)."""
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        lst = await repo.get_list(conn, account_id=account_id, list_id=list_id)
        if lst is None:
            raise not_found("list")
        ids = await repo.insert_leads(
            conn, account_id=account_id, campaign_id=lst["campaign_id"], list_id=list_id, rows=rows
        )
    return lst["campaign_id"], ids


def param_error(exc: ParamError) -> ApiError:
    """A ParamError as the contract's 422 naming the field."""
    return ApiError(
        422,
        "validation_error",
        f"invalid {exc.field}: {exc.reason}",
        [{"field": exc.field, "reason": exc.reason}],
    )
