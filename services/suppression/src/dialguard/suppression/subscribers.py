"""Consumers of leads.stopped.v1: upstream opt-outs become entries, unstops remove them. Thin: parse and call."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import structlog

from dialguard.events.payloads import LeadStopped, LeadUnstopped
from dialguard.identifiers import identifier_readings, validate_channel
from dialguard.messaging.consumer import Batch
from dialguard.suppression import repository as repo
from dialguard.suppression.domain import NewEntry
from dialguard.suppression.handlers import Suppression, add_entries, remove_entries

log = structlog.get_logger(__name__)


def lead_stop_handler(svc: Suppression, *, default_region: str) -> object:
    """Build the batch handler; raises on invalid input so the consumer retries and then dead-letters it."""

    async def handle(batch: Batch) -> None:
        for event in batch.events:
            env = event.envelope
            structlog.contextvars.bind_contextvars(
                event_id=str(env.event_id), correlation_id=env.correlation_id
            )
            if env.event_type == "LeadStopped":
                await _stop(
                    svc,
                    batch,
                    env.account_id,
                    LeadStopped.model_validate(env.payload),
                    env.correlation_id,
                    default_region,
                )
            else:
                await _unstop(
                    svc,
                    batch,
                    env.account_id,
                    LeadUnstopped.model_validate(env.payload),
                    env.correlation_id,
                    default_region,
                )

    return handle


async def _stoplist(batch: Batch, account_id: str, stoplist_id: str | None) -> uuid.UUID:
    """The named stoplist if it is the account's; otherwise the default one, since an opt-out is never dropped."""
    if stoplist_id:
        try:
            wanted = uuid.UUID(stoplist_id)
        except ValueError:
            wanted = None
        if wanted and await repo.existing_stoplists(batch.conn, account_id=account_id, ids=[wanted]):
            return wanted
        log.warning("unknown stoplist in LeadStopped, using default", stoplist_id=stoplist_id)
    return await repo.default_stoplist_id(batch.conn, account_id=account_id)


async def _stop(
    svc: Suppression, batch: Batch, account_id: str, p: LeadStopped, correlation_id: str | None, region: str
) -> None:
    readings = identifier_readings(p.identifier.type, p.identifier.value, region=p.region or region)
    channel = validate_channel(readings[0].type, p.channel)
    expires = datetime.now(UTC) + timedelta(days=p.expires_in_days) if p.expires_in_days else None
    entries = [NewEntry(r.type, r.value, channel, p.sender, p.source, p.reason, expires) for r in readings]
    stoplist_id = await _stoplist(batch, account_id, p.stoplist_id)
    await add_entries(
        svc,
        batch.conn,
        account_id=account_id,
        stoplist_id=stoplist_id,
        entries=entries,
        actor=f"event:{p.source}",
        correlation_id=correlation_id,
    )


async def _unstop(
    svc: Suppression, batch: Batch, account_id: str, p: LeadUnstopped, correlation_id: str | None, region: str
) -> None:
    readings = identifier_readings(p.identifier.type, p.identifier.value, region=p.region or region)
    stoplist: uuid.UUID | None = None
    if p.stoplist_id:
        stoplist = uuid.UUID(p.stoplist_id)
    await remove_entries(
        svc,
        batch.conn,
        account_id=account_id,
        where=repo.BY_IDENTIFIER,
        args=[readings[0].type, [r.value for r in readings], p.channel, stoplist],
        op="removed",
        actor="event:LeadUnstopped",
        reason=p.reason,
        correlation_id=correlation_id,
    )
