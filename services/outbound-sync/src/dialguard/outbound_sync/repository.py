"""SQL of the outbound-sync service, and only SQL; every account-facing query filters by account_id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg
import orjson

TARGET_COLUMNS: Final = frozenset(
    {"system", "project", "expires_in_days", "url", "method", "headers", "body_template", "active"}
)

_TARGET_SELECT = """
    SELECT t.*, coalesce(b.backlog, 0) AS backlog
    FROM targets t
    LEFT JOIN LATERAL (
        SELECT count(*) AS backlog FROM deliveries d WHERE d.target_id = t.id AND d.status = 'pending'
    ) b ON true
"""


async def insert_target(conn: asyncpg.Connection, *, account_id: str, fields: dict[str, Any]) -> uuid.UUID:
    """Store a new target; the caller reads it back with its status."""
    target_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO targets (id, account_id, stoplist_id, type, system, project, expires_in_days,
                                url, method, headers, body_template, active, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13)""",
        target_id,
        account_id,
        fields["stoplist_id"],
        fields["type"],
        fields.get("system"),
        fields.get("project"),
        fields.get("expires_in_days"),
        fields.get("url"),
        fields.get("method") or "POST",
        fields.get("headers") or {},
        fields.get("body_template"),
        fields.get("active", True),
        fields.get("created_by"),
    )
    return target_id


async def get_target(
    conn: asyncpg.Connection, *, account_id: str, target_id: uuid.UUID, stoplist_id: str | None = None
) -> asyncpg.Record | None:
    """One target of the account (optionally only if it belongs to that stoplist), with its backlog."""
    return await conn.fetchrow(
        _TARGET_SELECT
        + " WHERE t.account_id = $1 AND t.id = $2 AND ($3::text IS NULL OR t.stoplist_id = $3)",
        account_id,
        target_id,
        stoplist_id,
    )


async def list_targets(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    stoplist_id: str | None,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> list[asyncpg.Record]:
    """A page of the account's targets (of one stoplist, or all), oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        _TARGET_SELECT
        + """ WHERE t.account_id = $1 AND ($2::text IS NULL OR t.stoplist_id = $2)
              AND ($3::timestamptz IS NULL OR (t.created_at, t.id) > ($3, $4))
              ORDER BY t.created_at, t.id LIMIT $5""",
        account_id,
        stoplist_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


async def update_target(
    conn: asyncpg.Connection, *, account_id: str, target_id: uuid.UUID, changes: dict[str, Any]
) -> bool:
    """Apply whitelisted column changes; False when the target is not the account's."""
    columns = [c for c in changes if c in TARGET_COLUMNS]
    values = [changes[c] for c in columns]
    sets = ", ".join(f"{c} = ${i + 3}{'::jsonb' if c == 'headers' else ''}" for i, c in enumerate(columns))
    sql = "UPDATE targets SET " + (sets + ", " if sets else "") + "updated_at = now() "
    sql += "WHERE account_id = $1 AND id = $2"
    result = await conn.execute(sql, account_id, target_id, *values)
    return bool(result.endswith(" 1"))


async def delete_target(conn: asyncpg.Connection, *, account_id: str, target_id: uuid.UUID) -> bool:
    """Remove a target and its delivery log."""
    result = await conn.execute(
        "DELETE FROM targets WHERE account_id = $1 AND id = $2", account_id, target_id
    )
    return bool(result.endswith(" 1"))


async def stored_headers(
    conn: asyncpg.Connection, *, account_id: str, target_id: uuid.UUID
) -> dict[str, str]:
    """The unmasked headers, to keep secrets a PATCH echoes back masked."""
    raw = await conn.fetchval(
        "SELECT headers FROM targets WHERE account_id = $1 AND id = $2", account_id, target_id
    )
    return _json(raw) or {}


async def backfill(
    conn: asyncpg.Connection, *, account_id: str, target_id: uuid.UUID, stoplist_id: str
) -> int:
    """Queue the stoplist's live entries known from the topic for a new target."""
    result = await conn.execute(
        """INSERT INTO deliveries (id, account_id, target_id, entry_id, identifier_key, entry)
           SELECT gen_random_uuid(), k.account_id, $2, k.entry_id,
                  (k.entry->'identifier'->>'type') || ':' || (k.entry->'identifier'->>'value'), k.entry
           FROM known_entries k
           WHERE k.account_id = $1 AND k.stoplist_id = $3 AND (k.expires_at IS NULL OR k.expires_at > now())
           ORDER BY k.added_at, k.entry_id
           ON CONFLICT (target_id, entry_id) DO NOTHING""",
        account_id,
        target_id,
        stoplist_id,
    )
    return int(result.split()[-1])


async def remember_entries(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str, dict[str, Any]]]
) -> None:
    """Upsert live entries (account, entry id, stoplist, entry JSON) into the local projection."""
    if not rows:
        return
    accounts, entry_ids, stoplists, entries = (list(col) for col in zip(*rows, strict=True))
    await conn.execute(
        """INSERT INTO known_entries (account_id, entry_id, stoplist_id, entry, expires_at, added_at)
           SELECT a, e, s, j, (j->>'expires_at')::timestamptz, (j->>'added_at')::timestamptz
           FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) AS u(a, e, s, j)
           ON CONFLICT (account_id, entry_id) DO UPDATE
           SET stoplist_id = EXCLUDED.stoplist_id, entry = EXCLUDED.entry,
               expires_at = EXCLUDED.expires_at, added_at = EXCLUDED.added_at""",
        accounts,
        entry_ids,
        stoplists,
        entries,
    )


async def forget_entries(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Drop removed or expired entries (account, entry id) from the local projection."""
    if not keys:
        return
    accounts, entry_ids = (list(col) for col in zip(*keys, strict=True))
    await conn.execute(
        """DELETE FROM known_entries k USING unnest($1::text[], $2::text[]) AS u(a, e)
           WHERE k.account_id = u.a AND k.entry_id = u.e""",
        accounts,
        entry_ids,
    )


async def queue_deliveries(
    conn: asyncpg.Connection,
    rows: Sequence[tuple[str, str, str, str, dict[str, Any], datetime]],
    *,
    skew_s: float,
) -> dict[uuid.UUID, int]:
    """One pending delivery per (added entry, target of its stoplist created before the event), set-based;
    how many were queued per target."""
    if not rows:
        return {}
    accounts, stoplists, entry_ids, keys, entries, occurred = (list(col) for col in zip(*rows, strict=True))
    queued = await conn.fetch(
        """WITH queued AS (
               INSERT INTO deliveries (id, account_id, target_id, entry_id, identifier_key, entry)
               SELECT gen_random_uuid(), t.account_id, t.id, u.e, u.k, u.j
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[])
                    WITH ORDINALITY AS u(a, s, e, k, j, at, n)
               JOIN targets t ON t.account_id = u.a AND t.stoplist_id = u.s
               WHERE u.at >= t.created_at - make_interval(secs => $7)
               ORDER BY u.n, t.id
               ON CONFLICT (target_id, entry_id) DO NOTHING
               RETURNING target_id
           )
           SELECT target_id, count(*) AS n FROM queued GROUP BY target_id""",
        accounts,
        stoplists,
        entry_ids,
        keys,
        entries,
        occurred,
        skew_s,
    )
    return {row["target_id"]: int(row["n"]) for row in queued}


async def due_targets(conn: asyncpg.Connection, *, exclude: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    """Active targets with deliveries due now (worker-wide, not account-facing)."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT t.id, t.account_id, t.type, t.system, t.project, t.expires_in_days, t.url, t.method,
                  t.headers, t.body_template
           FROM targets t
           WHERE t.active AND NOT (t.id = ANY($1::uuid[]))
             AND EXISTS (SELECT 1 FROM deliveries d
                         WHERE d.target_id = t.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                           AND (d.lease_until IS NULL OR d.lease_until < now()))""",
        list(exclude),
    )
    return rows


async def target_config(conn: asyncpg.Connection, *, target_id: uuid.UUID) -> asyncpg.Record | None:
    """A lane re-reads its target at most a second old: a PATCH takes effect within a second."""
    return await conn.fetchrow(
        """SELECT id, account_id, type, system, project, expires_in_days, url, method, headers,
                  body_template, active
           FROM targets WHERE id = $1""",
        target_id,
    )


async def claim(
    conn: asyncpg.Connection, *, target_id: uuid.UUID, limit: int, lease_s: float, owner: str
) -> list[asyncpg.Record]:
    """Lease due rows of an active target, the oldest pending one per identifier only; SKIP LOCKED keeps
    instances apart. A paused target gets nothing from its next claim on."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """WITH due AS (
               SELECT d.id FROM deliveries d
               WHERE d.target_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
                 AND EXISTS (SELECT 1 FROM targets t WHERE t.id = $1 AND t.active)
                 AND (d.lease_until IS NULL OR d.lease_until < now())
                 -- a scalar subquery runs per candidate on deliveries_identifier whatever the statistics say
                 -- (an anti join planned on a fresh table's empty statistics scanned every pending row)
                 AND d.seq = (SELECT min(p.seq) FROM deliveries p
                              WHERE p.target_id = d.target_id AND p.identifier_key = d.identifier_key
                                AND p.status = 'pending')
               ORDER BY d.seq
               LIMIT $2
               FOR UPDATE SKIP LOCKED
           )
           UPDATE deliveries d
           SET lease_until = now() + make_interval(secs => $3), lease_owner = $4,
               attempts = d.attempts + 1, updated_at = now()
           WHERE d.id = ANY(ARRAY(SELECT id FROM due))  -- by primary key (a join here scanned the whole table)
           RETURNING d.id, d.entry_id, d.entry, d.attempts, d.seq""",
        target_id,
        limit,
        lease_s,
        owner,
    )
    return rows


async def record_results(
    conn: asyncpg.Connection, *, target_id: uuid.UUID, owner: str, results: Sequence[dict[str, Any]]
) -> None:
    """Write a batch of outcomes and the target's last success / last error in one round trip."""
    if not results:
        return
    delivered = any(r["status"] == "delivered" for r in results)
    errors = [r["error"] for r in results if r["status"] != "delivered" and r["error"]]
    await conn.execute(
        """WITH recorded AS (
               UPDATE deliveries d
               SET status = u.status, last_error = u.error, request = u.request, response = u.response,
                   next_attempt_at = now() + make_interval(secs => u.delay), lease_until = NULL,
                   lease_owner = NULL, updated_at = now(),
                   delivered_at = CASE WHEN u.status = 'delivered' THEN now() ELSE d.delivered_at END
               FROM unnest($2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::float8[])
                    AS u(id, status, error, request, response, delay)
               WHERE d.id = ANY($2::uuid[]) AND d.id = u.id AND d.lease_owner = $8  -- by primary key
               RETURNING 1
           )
           UPDATE targets
           SET last_success_at = CASE WHEN $9 THEN now() ELSE last_success_at END,
               last_error = coalesce($10, last_error),
               last_error_at = CASE WHEN $10::text IS NULL THEN last_error_at ELSE now() END
           WHERE id = $1""",
        target_id,
        [r["id"] for r in results],
        [r["status"] for r in results],
        [r["error"] for r in results],
        [r["request"] for r in results],
        [r["response"] for r in results],
        [float(r.get("delay", 0.0)) for r in results],
        owner,
        delivered,
        errors[-1] if errors else None,
    )


async def release_rows(conn: asyncpg.Connection, *, ids: Sequence[uuid.UUID], owner: str) -> int:
    """Hand back rows this process leased but did not send (breaker opened, target paused): due again."""
    result = await conn.execute(
        """UPDATE deliveries SET lease_until = NULL, lease_owner = NULL, attempts = greatest(attempts - 1, 0)
           WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND status = 'pending'""",
        list(ids),
        owner,
    )
    return int(result.split()[-1])


async def release_leases(conn: asyncpg.Connection, *, owner: str) -> int:
    """On shutdown, hand back rows this process leased but never finished (they go out again)."""
    result = await conn.execute(
        """UPDATE deliveries SET lease_until = NULL, lease_owner = NULL, attempts = greatest(attempts - 1, 0)
           WHERE lease_owner = $1 AND status = 'pending'""",
        owner,
    )
    return int(result.split()[-1])


async def release_dead_leases(conn: asyncpg.Connection, *, me: str, lock_space: int) -> list[uuid.UUID]:
    """Hand back pending rows leased by an owner whose liveness lock (liveness.py) nobody holds: that
    process is gone. Returns the targets of the rows released."""
    rows = await conn.fetch(
        """WITH live AS MATERIALIZED (
               SELECT l.objid FROM pg_locks l
               WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $2::int4::oid AND l.objsubid = 2
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
           UPDATE deliveries d
           SET lease_until = NULL, lease_owner = NULL, attempts = greatest(d.attempts - 1, 0), updated_at = now()
           WHERE d.status = 'pending' AND d.lease_until > now() AND d.lease_owner <> $1
             AND hashtext(d.lease_owner)::oid NOT IN (SELECT objid FROM live)
           RETURNING d.target_id""",
        me,
        lock_space,
    )
    return list({r["target_id"] for r in rows})


async def backlog_by_target(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Pending rows per target, for the backlog gauge."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT target_id, count(*) AS backlog FROM deliveries WHERE status = 'pending' GROUP BY target_id"
    )
    return rows


async def list_deliveries(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    target_id: uuid.UUID,
    statuses: Sequence[str],
    limit: int,
    before_seq: int | None,
) -> list[asyncpg.Record]:
    """A page of a target's request log, newest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT * FROM deliveries
           WHERE account_id = $1 AND target_id = $2
             AND (cardinality($3::text[]) = 0 OR status = ANY($3::text[]))
             AND ($4::bigint IS NULL OR seq < $4)
           ORDER BY seq DESC LIMIT $5""",
        account_id,
        target_id,
        list(statuses),
        before_seq,
        limit,
    )
    return rows


async def get_delivery(
    conn: asyncpg.Connection, *, account_id: str, target_id: uuid.UUID, delivery_id: uuid.UUID
) -> asyncpg.Record | None:
    """One delivery of one of the account's targets."""
    return await conn.fetchrow(
        "SELECT * FROM deliveries WHERE account_id = $1 AND target_id = $2 AND id = $3",
        account_id,
        target_id,
        delivery_id,
    )


async def retry_delivery(
    conn: asyncpg.Connection, *, account_id: str, target_id: uuid.UUID, delivery_id: uuid.UUID
) -> asyncpg.Record | None:
    """Back to pending, due now, with a fresh retry budget (the request/response log of the last try stays)."""
    return await conn.fetchrow(
        """UPDATE deliveries
           SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
           WHERE account_id = $1 AND target_id = $2 AND id = $3
           RETURNING *""",
        account_id,
        target_id,
        delivery_id,
    )


def _json(raw: Any) -> Any:
    """The pool decodes jsonb already; tolerate a raw string from a plain connection."""
    if isinstance(raw, (bytes, str)):
        return orjson.loads(raw)
    return raw
