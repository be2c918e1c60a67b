"""Batch consumers that keep contact statuses current: suppression changes flag and unflag units; lead
moves, lead actions and call results move contacts through their lifecycle. Each batch is one transaction
(the runtime has already claimed its events in the inbox) with set-based statements."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from dialguard.contact_list import repository as repo
from dialguard.contact_list.domain import after_call, fast_email
from dialguard.events import Envelope
from dialguard.events.payloads import CallResult, LeadActionApplied, LeadsMoved
from dialguard.identifiers import InvalidIdentifier, identifier_readings
from dialguard.messaging.consumer import Batch

log = structlog.get_logger(__name__)
# Lead actions that put leads in front of the dialer again; RESET_LEADS also forgets attempts.
PLANNING_ACTIONS = frozenset(
    {"READY_LEADS", "RESET_LEADS", "DIALER_REFRESH", "CALLBACK_LEADS", "MOVE_TO_CAMPAIGN"}
)
Handler = Callable[[Batch], Awaitable[None]]
_OPS = frozenset({"added", "removed", "expired"})


def _bind(env: Envelope) -> None:
    """Log lines of this event's processing carry its ids (a poison event is then easy to trace)."""
    structlog.contextvars.bind_contextvars(
        event_id=str(env.event_id), correlation_id=env.correlation_id, account_id=env.account_id
    )


def _readings(id_type: str, value: str, region: str) -> list[str]:
    """Events carry normalized identifiers (E.164 digits): taken as they are, since re-reading canonical
    digits nationally could yield a second number. A raw phone (`+1 (267) …`) is normalized to each of its
    readings; an email is normalized (fast_email: normalize_email's answer with the domain checked once
    per distinct domain; a third of a bulk stoplist change can be emails)."""
    if id_type == "phone" and value.isdigit():
        return [value]
    if id_type == "email":
        try:
            return [fast_email(value)]
        except InvalidIdentifier:
            return [value]
    try:
        return [r.value for r in identifier_readings(id_type, value, region=region)]
    except InvalidIdentifier:
        return [value]


def suppression_handler(*, region: str) -> Handler:
    """SuppressionChanged → the local projection of live entries → unit `callable` → contact flagged or not."""

    async def handle(batch: Batch) -> None:
        upserts: dict[tuple[str, str], tuple[str, str, str, str, str | None]] = {}
        deletes: dict[tuple[str, str], tuple[str, str]] = {}
        cleared: list[tuple[str, str, str, str | None]] = []
        keys: set[tuple[str, str, str]] = set()
        # Thousands of events a second: no per-event model or log-context binding; the envelope is
        # validated already and a payload missing a field fails the batch (then the event alone, to the DLQ).
        for event in batch.events:  # in offset order: an entry's last event wins
            account = event.envelope.account_id
            payload = event.envelope.payload
            entry = payload["entry"]
            entry_id, channel = str(entry["entry_id"]), entry.get("channel")
            id_type, raw = str(entry["identifier"]["type"]), str(entry["identifier"]["value"])
            key = (account, entry_id)
            op = payload["op"]
            if op not in _OPS:
                raise ValueError(f"unknown SuppressionChanged op {op!r}")
            added = op == "added"
            for value in _readings(id_type, raw, region):
                keys.add((account, id_type, value))
                if added:
                    deletes.pop(key, None)
                    upserts[key] = (account, entry_id, id_type, value, channel)
                else:
                    upserts.pop(key, None)
                    deletes[key] = key
                    if not payload[
                        "suppressed"
                    ]:  # the producer's word: nothing covering this channel remains
                        cleared.append((account, id_type, value, channel))
        conn = batch.conn
        await repo.delete_suppressions(conn, list(deletes.values()))
        await repo.clear_suppressions(conn, cleared)
        await repo.upsert_suppressions(conn, list(upserts.values()))
        changed = await repo.refresh_units(conn, sorted(keys))
        await repo.refresh_contacts(conn, changed)

    return handle


def lifecycle_handler(*, region: str) -> Handler:
    """LeadsMoved / LeadActionApplied → planning; CallResult → open / attempted / closed."""

    async def handle(batch: Batch) -> None:
        calls: list[tuple[int, str, str, str, str, str]] = []
        details: dict[int, CallResult] = {}
        for i, event in enumerate(batch.events):
            env = event.envelope
            _bind(env)
            if env.event_type == "LeadsMoved":
                await _moved(batch, env.account_id, LeadsMoved.model_validate(env.payload))
            elif env.event_type == "LeadActionApplied":
                await _action(batch, env.account_id, LeadActionApplied.model_validate(env.payload))
            else:
                call = CallResult.model_validate(env.payload)
                details[i] = call
                for value in _readings(call.identifier.type, call.identifier.value, region):
                    calls.append(
                        (i, env.account_id, call.campaign_id, call.lead_id, call.identifier.type, value)
                    )
        if calls:
            await _calls(batch, calls, details)

    return handle


async def _moved(batch: Batch, account_id: str, p: LeadsMoved) -> None:
    """Leads entered a campaign: its lists' campaign is active; their named (else all) callable contacts plan."""
    list_ids = await repo.activate_campaign(batch.conn, account_id=account_id, campaign_id=p.to_campaign_id)
    if not list_ids:
        return
    named = p.lead_ids and await repo.any_contact_named(batch.conn, list_ids=list_ids, lead_ids=p.lead_ids)
    await repo.plan_contacts(
        batch.conn, list_ids=list_ids, lead_ids=p.lead_ids if named else None, from_statuses=["callable"]
    )


def _campaigns(p: LeadActionApplied) -> list[str]:
    crit: dict[str, Any] = p.criteria or {}
    found = [p.campaign_id, crit.get("campaignId"), *(crit.get("campaignIds") or [])]
    return [str(c) for c in found if c]


async def _action(batch: Batch, account_id: str, p: LeadActionApplied) -> None:
    if p.action not in PLANNING_ACTIONS:
        return
    list_ids = await repo.lists_of_campaigns(batch.conn, account_id=account_id, campaign_ids=_campaigns(p))
    lead_ids = [str(x) for x in (p.criteria or {}).get("leadIds") or []] or None
    reset = p.action == "RESET_LEADS"
    await repo.plan_contacts(
        batch.conn,
        list_ids=list_ids,
        lead_ids=lead_ids,
        from_statuses=["callable", "open", "attempted"] if reset else ["callable"],
        reset_attempts=reset,
    )


async def _calls(
    batch: Batch, calls: list[tuple[int, str, str, str, str, str]], details: dict[int, CallResult]
) -> None:
    """Match every call to contacts in one query (lead id first, identifier otherwise), lock them, apply the
    lifecycle rule in event order, write back in one statement."""
    matches = await repo.call_matches(batch.conn, calls)
    by_event: dict[int, dict[int, list[uuid.UUID]]] = {}
    for m in matches:
        by_event.setdefault(m["idx"], {}).setdefault(m["how"], []).append(m["contact_id"])
    targets: dict[int, list[uuid.UUID]] = {
        idx: sorted(set(hows.get(1) or hows.get(2) or [])) for idx, hows in by_event.items()
    }
    ids = sorted({c for cs in targets.values() for c in cs})
    if not ids:
        return
    state = {r["id"]: dict(r) for r in await repo.lock_call_state(batch.conn, ids)}
    for idx in sorted(targets):
        call = details[idx]
        for contact_id in targets[idx]:
            s = state[contact_id]
            outcome = after_call(
                base_status=s["base_status"],
                attempts=s["attempts"],
                reached_channels=s["reached_channels"],
                unit_channels=s["unit_channels"],
                reached=call.reached,
                channel=call.channel or "voice",
                close_when_all_reached=s["close_when_all_reached"],
                max_attempts=s["max_attempts"],
            )
            s.update(
                base_status=outcome.base_status,
                attempts=outcome.attempts,
                reached_channels=list(outcome.reached_channels),
            )
    await repo.save_call_state(
        batch.conn,
        [(cid, s["base_status"], s["attempts"], s["reached_channels"]) for cid, s in state.items()],
    )
