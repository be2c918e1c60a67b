"""Batch consumers: suppression changes, imported contacts and call results, each set-based per batch."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import structlog

from dialguard.events.payloads import CallResult, ContactImported, SuppressionChanged
from dialguard.identifiers import InvalidIdentifier, phone_readings
from dialguard.lead_action import repository as repo
from dialguard.lead_action.handlers import LeadService, lead_stopped
from dialguard.messaging.consumer import Batch, BatchHandler

log = structlog.get_logger(__name__)
VOICE_CHANNELS = (None, "voice")


class UnknownCampaignList(LookupError):
    """A ContactImported names a campaign/list this service does not have: retried, then dead-lettered."""


def suppression_handler(svc: LeadService) -> BatchHandler:
    """Project phone entries, then add/remove the leads' dnc cause for every identifier the batch touched."""

    async def handle(batch: Batch) -> None:
        added: dict[tuple[str, str], tuple[str, str, str, str, str | None]] = {}
        removed: dict[tuple[str, str], tuple[str, str]] = {}
        last_flag: dict[tuple[str, str], bool] = {}
        for event in batch.events:  # in offset order: the last event of an entry or phone wins
            env = event.envelope
            change = SuppressionChanged.model_validate(env.payload)
            entry = change.entry
            if entry.identifier.type != "phone":
                continue
            key = (env.account_id, entry.entry_id)
            if change.op == "added":
                removed.pop(key, None)
                added[key] = (env.account_id, entry.entry_id, "phone", entry.identifier.value, entry.channel)
            else:
                added.pop(key, None)
                removed[key] = key
            if entry.channel in VOICE_CHANNELS:
                last_flag[(env.account_id, entry.identifier.value)] = change.suppressed
        if not added and not removed:
            return
        await repo.lock_account_leads(batch.conn, account_ids=[a for a, _ in last_flag], exclusive=True)
        await repo.project_entries(batch.conn, added=list(added.values()), removed=list(removed.values()))
        changed = await repo.apply_dnc(batch.conn, keys=[(a, p, f) for (a, p), f in last_flag.items()])
        log.info(
            "suppression changes applied",
            events=len(batch.events),
            first_event_id=str(batch.events[0].envelope.event_id),
            leads_changed=changed,
        )

    return handle


def _lead_phone(units: list[Any], region: str) -> str | None:
    """The priority-1 voice-capable phone unit (lowest priority number first); None when there is none."""
    phones = [u for u in units if u.type == "phone" and u.channel in VOICE_CHANNELS]
    for unit in sorted(phones, key=lambda u: u.priority):
        try:
            return phone_readings(unit.value, region=region)[0]
        except InvalidIdentifier:
            continue
    return None


def contact_handler(svc: LeadService, *, region: str) -> BatchHandler:
    """Contacts of a campaign-linked list become leads, one per contact (its priority-1 phone)."""

    async def handle(batch: Batch) -> None:
        groups: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
        for event in batch.events:
            env = event.envelope
            structlog.contextvars.bind_contextvars(
                event_id=str(env.event_id), correlation_id=env.correlation_id
            )
            imported = ContactImported.model_validate(env.payload)
            if imported.campaign is None:
                continue
            contact = imported.contact
            phone = _lead_phone(contact.units, region)
            if phone is None:
                log.info("contact without a dialable phone skipped", contact_id=contact.contact_id)
                continue
            first, _, last = (contact.name or "").strip().partition(" ")
            key = (env.account_id, int(imported.campaign.campaign_id), int(imported.campaign.list_id))
            groups[key].append(
                {
                    "phone": phone,
                    "external_id": contact.external_id or contact.contact_id,
                    "contact_id": contact.contact_id,
                    "first_name": first or None,
                    "last_name": last.strip() or None,
                    "timezone": contact.timezone,
                    "fields": contact.fields,
                }
            )
        by_account: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for account_id, campaign_id, list_id in groups:
            by_account[account_id].append((campaign_id, list_id))
        for account_id, pairs in by_account.items():
            known = await repo.existing_lists(batch.conn, account_id=account_id, pairs=pairs)
            missing = [p for p in pairs if p not in known]
            if missing:
                raise UnknownCampaignList(f"account {account_id}: no campaign/list {missing}")
        for (account_id, campaign_id, list_id), rows in groups.items():
            await repo.insert_leads(
                batch.conn, account_id=account_id, campaign_id=campaign_id, list_id=list_id, rows=rows
            )

    return handle


def call_result_handler(svc: LeadService, *, region: str) -> BatchHandler:
    """History rows, one UPDATE for the batch's outcomes, and LeadStopped for do-not-call results."""

    async def handle(batch: Batch) -> None:
        history: list[dict[str, Any]] = []
        outcomes: dict[tuple[str, int], dict[str, Any]] = {}
        stops: dict[tuple[str, str], str | None] = {}
        for event in batch.events:
            env = event.envelope
            structlog.contextvars.bind_contextvars(
                event_id=str(env.event_id), correlation_id=env.correlation_id
            )
            result = CallResult.model_validate(env.payload)
            lead_id = int(result.lead_id)
            phone = result.identifier.value
            if result.identifier.type == "phone":
                with contextlib.suppress(InvalidIdentifier):
                    phone = phone_readings(phone, region=region)[0]
            history.append(
                {
                    "account_id": env.account_id,
                    "event_id": env.event_id,
                    "lead_id": lead_id,
                    "campaign_id": int(result.campaign_id) if result.campaign_id.isdigit() else None,
                    "phone": phone,
                    "attempted_at": result.attempted_at,
                    "system_disposition": result.system_disposition,
                    "agent_disposition": result.agent_disposition,
                    "reached": result.reached,
                    "do_not_call": result.do_not_call,
                }
            )
            key = (env.account_id, lead_id)
            previous = outcomes.get(key)
            outcomes[key] = {
                "account_id": env.account_id,
                "lead_id": lead_id,
                "passes": (previous["passes"] if previous else 0) + 1,
                "system_disposition": result.system_disposition,
                "agent_disposition": result.agent_disposition,
                "reached": result.reached,
                "attempted_at": result.attempted_at,
                "dnc": result.do_not_call or bool(previous and previous["dnc"]),
            }
            if result.do_not_call and result.identifier.type == "phone":
                stops[(env.account_id, phone)] = env.correlation_id
        await repo.record_call_results(batch.conn, rows=history)
        await repo.apply_call_outcomes(
            batch.conn, outcomes=list(outcomes.values()), retry_delay_seconds=svc.settings.RETRY_DELAY_SECONDS
        )
        if stops:
            await svc.runtime.publish(
                batch.conn,
                [
                    lead_stopped(
                        svc, account_id=a, phone=p, reason="do_not_call call result", correlation_id=cid
                    )
                    for (a, p), cid in stops.items()
                ],
            )

    return handle
