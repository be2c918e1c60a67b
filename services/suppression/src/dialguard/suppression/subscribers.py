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

    A batch's opt-outs and unstops are applied in rounds: an event goes into the round after the
    last one holding an event for the same identifier, so each identifier's events keep their
    order while events of different identifiers (which commute) are applied together: one lock,
    insert or delete, cache round trip and outbox write per stoplist and source instead of per
    event. At hundreds of events a second the per-event round trips, not the work, set the pace.
    """

    async def handle(batch: Batch) -> None:
        rounds: list[tuple[list[_Stop], list[_Unstop]]] = []
        last: dict[tuple[str, str, str], int] = {}
        for event in batch.events:
            env = event.envelope
            item: _Stop | _Unstop
            if env.event_type == "LeadStopped":
                stop = LeadStopped.model_validate(env.payload)
                item = _Stop(env.account_id, stop, env.correlation_id, _entries(stop, default_region))
                keys = [(env.account_id, e.id_type, e.value) for e in item.entries]
            else:
                unstop = LeadUnstopped.model_validate(env.payload)
                region = unstop.region or default_region
                readings = identifier_readings(unstop.identifier.type, unstop.identifier.value, region=region)
                item = _Unstop(
                    env.account_id, unstop, env.correlation_id, [(r.type, r.value) for r in readings]
                )
                keys = [(env.account_id, t, v) for t, v in item.readings]
            at = max((last.get(k, -1) for k in keys), default=-1) + 1
            for k in keys:
                last[k] = at
            if at == len(rounds):
                rounds.append(([], []))
            if isinstance(item, _Stop):
                rounds[at][0].append(item)
            else:
                rounds[at][1].append(item)
        for stops, unstops in rounds:
            await _stop_all(svc, batch, stops)
            await _unstop_all(svc, batch, unstops)

    return handle


@dataclass(frozen=True, slots=True)
class _Unstop:
    account_id: str
    payload: LeadUnstopped
    correlation_id: str | None
    readings: list[tuple[str, str]]


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


async def _unstop_all(svc: Suppression, batch: Batch, unstops: list[_Unstop]) -> None:
    """Remove what a round of unstops names, one delete per account, identifier type, channel, stoplist
    and reason; each SuppressionChanged keeps the correlation id of the unstop that caused it."""
    groups: dict[tuple[str, str, str | None, str | None, str | None], dict[str, str | None]] = {}
    for u in unstops:
        p = u.payload
        values = groups.setdefault((u.account_id, u.readings[0][0], p.channel, p.stoplist_id, p.reason), {})
        for _, value in u.readings:
            values.setdefault(value, u.correlation_id)
    for (account_id, id_type, channel, stoplist_id, reason), values in groups.items():
        await remove_entries(
            svc,
            batch.conn,
            account_id=account_id,
            where=repo.BY_IDENTIFIER,
            args=[id_type, list(values), channel, uuid.UUID(stoplist_id) if stoplist_id else None],
            op="removed",
            actor="event:LeadUnstopped",
            reason=reason,
            correlation_by_value=values,
        )
