"""Consumers of leads.stopped.v1: upstream opt-outs become entries, unstops remove them. Thin: parse and call."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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
    """Build the batch handler; raises on invalid input so the consumer retries and then dead-letters it.

    Consecutive LeadStopped events are applied together (one lock, insert, cache round trip and
    outbox write per stoplist and source instead of per event): at hundreds of opt-outs a second
    the per-event round trips, not the work, set the pace. An unstop ends the run, so the events of
    one identifier still apply in their order.
    """

    async def handle(batch: Batch) -> None:
        stops: list[_Stop] = []
        for event in batch.events:
            env = event.envelope
            if env.event_type == "LeadStopped":
                p = LeadStopped.model_validate(env.payload)
                stops.append(_Stop(env.account_id, p, env.correlation_id, _entries(p, default_region)))
                continue
            await _stop_all(svc, batch, stops)
            stops = []
            structlog.contextvars.bind_contextvars(
                event_id=str(env.event_id), correlation_id=env.correlation_id
            )
            await _unstop(
                svc,
                batch,
                env.account_id,
                LeadUnstopped.model_validate(env.payload),
                env.correlation_id,
                default_region,
            )
        await _stop_all(svc, batch, stops)

    return handle


@dataclass(frozen=True, slots=True)
class _Stop:
    account_id: str
    payload: LeadStopped
    correlation_id: str | None
    entries: list[NewEntry]


def _entries(p: LeadStopped, region: str) -> list[NewEntry]:
    """The entries one opt-out asks for (two for an ambiguous phone); raises on an invalid identifier."""
    readings = identifier_readings(p.identifier.type, p.identifier.value, region=p.region or region)
    channel = validate_channel(readings[0].type, p.channel)
    expires = datetime.now(UTC) + timedelta(days=p.expires_in_days) if p.expires_in_days else None
    return [NewEntry(r.type, r.value, channel, p.sender, p.source, p.reason, expires) for r in readings]


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


async def _stop_all(svc: Suppression, batch: Batch, stops: list[_Stop]) -> None:
    """Apply a run of opt-outs grouped by account, target stoplist and source, keeping each event's
    correlation id on the SuppressionChanged events it causes."""
    targets: dict[tuple[str, str | None], uuid.UUID] = {}
    groups: dict[tuple[str, uuid.UUID, str], tuple[list[NewEntry], list[str | None]]] = {}
    for stop in stops:
        target = (stop.account_id, stop.payload.stoplist_id)
        if target not in targets:
            targets[target] = await _stoplist(batch, *target)
        entries, correlations = groups.setdefault(
            (stop.account_id, targets[target], stop.payload.source), ([], [])
        )
        entries.extend(stop.entries)
        correlations.extend([stop.correlation_id] * len(stop.entries))
    for (account_id, stoplist_id, source), (entries, correlations) in groups.items():
        await add_entries(
            svc,
            batch.conn,
            account_id=account_id,
            stoplist_id=stoplist_id,
            entries=entries,
            actor=f"event:{source}",
            correlation_ids=correlations,
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
