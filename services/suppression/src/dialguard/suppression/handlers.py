"""Use cases of the suppression service; each runs in one transaction and emits through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from dialguard.events import envelope_bytes, format_time, new_event_ids, utcnow
from dialguard.events.topics import SUPPRESSION_CHANGES
from dialguard.messaging.outbox import EncodedEvent, notify_channel
from dialguard.platform.runtime import ServiceRuntime
from dialguard.suppression import repository as repo
from dialguard.suppression.cache import SuppressionCache
from dialguard.suppression.domain import NewEntry, cache_key, covers_channel, event_key


@dataclass
class Suppression:
    """The service's dependencies as handlers see them."""

    runtime: ServiceRuntime
    cache: SuppressionCache


def entry_payload(row: asyncpg.Record, times: dict[Any, str] | None = None) -> dict[str, Any]:
    """An entry as SuppressionChanged carries it (and as the HTTP API returns it, with `id`).

    `times` memoises formatted timestamps across a bulk call (its rows share their added_at).
    """
    added, expires = row["added_at"], row["expires_at"]
    if times is None:
        times = {}
    added_text = times.get(added) or times.setdefault(added, format_time(added))
    return {
        "entry_id": str(row["id"]),
        "stoplist_id": str(row["stoplist_id"]),
        "identifier": {"type": row["id_type"], "value": row["value"]},
        "channel": row["channel"],
        "sender": row["sender"],
        "source": row["source"],
        "reason": row["reason"],
        "added_at": added_text,
        "expires_at": (times.get(expires) or times.setdefault(expires, format_time(expires)))
        if expires
        else None,
    }


def changed_events(
    rt: ServiceRuntime,
    account_id: str,
    rows: Sequence[asyncpg.Record],
    op: str,
    suppressed: Sequence[bool],
    correlation_id: str | Sequence[str | None] | None,
    remaining: Sequence[list[str | None]] | None = None,
) -> list[EncodedEvent]:
    """One SuppressionChanged per entry, serialised directly: imports emit one per row, and building a
    pydantic envelope each cost more than parsing the row (envelope_bytes gives the same bytes).
    correlation_id is one for all rows, or one per row."""
    occurred = format_time(utcnow())
    correlations = (
        [correlation_id] * len(rows)
        if correlation_id is None or isinstance(correlation_id, str)
        else correlation_id
    )
    times: dict[Any, str] = {}
    events: list[EncodedEvent] = []
    for i, (row, event_id, correlation) in enumerate(
        zip(rows, new_event_ids(len(rows)), correlations, strict=True)
    ):
        payload: dict[str, Any] = {"op": op, "entry": entry_payload(row, times), "suppressed": suppressed[i]}
        if remaining is not None:
            payload["remaining_channels"] = remaining[i]
        value = envelope_bytes(
            event_id=event_id,
            event_type="SuppressionChanged",
            occurred_at=occurred,
            account_id=account_id,
            producer=rt.service,
            correlation_id=correlation,
            payload=payload,
        )
        key = event_key(account_id, row["id_type"], row["value"])
        events.append(
            EncodedEvent(SUPPRESSION_CHANGES, key, value, event_id, "SuppressionChanged", correlation)
        )
    return events


async def add_entries(
    svc: Suppression,
    conn: asyncpg.Connection,
    *,
    account_id: str,
    stoplist_id: uuid.UUID,
    entries: Sequence[NewEntry],
    actor: str | None,
    correlation_id: str | None = None,
    correlation_ids: Sequence[str | None] | None = None,
) -> list[asyncpg.Record]:
    """Insert (idempotently) inside the caller's transaction; set cache bits before commit; one event per new entry.

    correlation_ids, aligned with entries, gives each entry's event the id of the request that asked
    for it (a batch of opt-outs); otherwise all carry correlation_id."""
    if not entries:
        return []
    await repo.lock_identifiers(conn, account_id=account_id, keys=[(e.id_type, e.value) for e in entries])
    rows = await repo.insert_entries(
        conn, account_id=account_id, stoplist_id=stoplist_id, entries=entries, actor=actor
    )
    if rows:
        # Before commit: a check that starts after the commit must find these bits (docs/suppression-cache.md).
        await svc.cache.add(account_id, [cache_key(r["id_type"], r["value"]) for r in rows])
        correlation: str | list[str | None] | None = correlation_id
        if correlation_ids is not None:
            asked: dict[tuple[str, str, str | None, str | None], str | None] = {}
            for e, c in zip(entries, correlation_ids, strict=True):
                asked.setdefault((e.id_type, e.value, e.channel, e.sender), c)
            correlation = [asked.get((r["id_type"], r["value"], r["channel"], r["sender"])) for r in rows]
        await svc.runtime.publish(
            conn, changed_events(svc.runtime, account_id, rows, "added", [True] * len(rows), correlation)
        )
        await repo.count_entries(conn, rows=rows, sign=1)
    return rows


async def import_entries(
    svc: Suppression,
    conn: asyncpg.Connection,
    *,
    account_id: str,
    stoplist_id: uuid.UUID,
    entries: Sequence[NewEntry],
    actor: str | None,
) -> int:
    """add_entries for file imports: the same locks, cache bits before commit and events, with the
    events built in Postgres next to the insert; returns how many entries were new, for the caller to
    move the stoplist's count with as its transaction's last statement (repository.move_counts)."""
    if not entries:
        return 0
    await repo.lock_identifiers(conn, account_id=account_id, keys=[(e.id_type, e.value) for e in entries])
    keys = await repo.insert_entries_announced(
        conn,
        account_id=account_id,
        stoplist_id=stoplist_id,
        entries=entries,
        actor=actor,
        producer=svc.runtime.service,
        occurred_at=format_time(utcnow()),
        topic=SUPPRESSION_CHANGES,
        notify=notify_channel(svc.runtime.schema),
    )
    if keys:
        # Before commit, as in add_entries (docs/suppression-cache.md).
        await svc.cache.add(account_id, [k.encode() for k in keys])
    return len(keys)


async def remove_entries(
    svc: Suppression,
    conn: asyncpg.Connection,
    *,
    account_id: str,
    where: str,
    args: Sequence[Any],
    op: str,
    actor: str | None,
    reason: str | None = None,
    correlation_id: str | None = None,
    correlation_by_value: Mapping[str, str | None] | None = None,
) -> list[asyncpg.Record]:
    """Delete matching entries inside the caller's transaction; each leaves with an event saying what remains.

    correlation_by_value gives each removed entry's event the id of the request that named its value
    (a batch of unstops); otherwise all carry correlation_id."""
    keys = await repo.identifiers_of(conn, account_id=account_id, where=where, args=args)
    if not keys:
        return []
    await repo.lock_identifiers(conn, account_id=account_id, keys=keys)
    rows = await repo.delete_entries_where(conn, account_id=account_id, where=where, args=args)
    if not rows:
        return []
    await repo.record_removals(conn, account_id=account_id, rows=rows, op=op, actor=actor, reason=reason)
    coverage = await repo.live_coverage(
        conn, account_id=account_id, keys=[(r["id_type"], r["value"]) for r in rows]
    )
    remaining = [coverage.get((r["id_type"], r["value"]), []) for r in rows]
    suppressed = [
        any(covers_channel(r["channel"], other) for other in rem)
        for r, rem in zip(rows, remaining, strict=True)
    ]
    correlation: str | list[str | None] | None = correlation_id
    if correlation_by_value is not None:
        correlation = [correlation_by_value.get(r["value"], correlation_id) for r in rows]
    await svc.runtime.publish(
        conn, changed_events(svc.runtime, account_id, rows, op, suppressed, correlation, remaining)
    )
    await repo.count_entries(conn, rows=rows, sign=-1)
    return rows


async def create_stoplist(
    svc: Suppression, *, account_id: str, name: str, entries: Sequence[NewEntry], actor: str | None
) -> tuple[asyncpg.Record | None, list[asyncpg.Record]]:
    """Create a named list, optionally with its first entries, atomically (None = name taken)."""
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        stoplist = await repo.create_stoplist(conn, account_id=account_id, name=name, actor=actor)
        if stoplist is None:
            return None, []
        rows = await add_entries(
            svc, conn, account_id=account_id, stoplist_id=stoplist["id"], entries=entries, actor=actor
        )
        return await repo.get_stoplist(conn, account_id=account_id, stoplist_id=stoplist["id"]), rows


async def sweep_expired(svc: Suppression, *, batch: int = 5000) -> int:
    """Remove expired entries with `expired` events; returns how many left."""
    total = 0
    async with svc.runtime.pool.acquire() as conn:
        accounts = await repo.expired_accounts(conn)
    for account_id in accounts:
        while True:
            async with svc.runtime.pool.acquire() as conn, conn.transaction():
                rows = await remove_entries(
                    svc,
                    conn,
                    account_id=account_id,
                    where=repo.EXPIRED,
                    args=[batch],
                    op="expired",
                    actor="system",
                    reason="expired",
                )
            total += len(rows)
            if len(rows) < batch:
                break
    return total
