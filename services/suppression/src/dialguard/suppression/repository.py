"""SQL of the suppression service, and only SQL. Every statement is scoped by account_id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from dialguard.suppression.domain import NewEntry

ENTRY_COLUMNS = "id, account_id, stoplist_id, id_type, value, channel, sender, source, reason, added_at, expires_at, added_by"
DEFAULT_STOPLIST = "default"


async def create_stoplist(
    conn: asyncpg.Connection, *, account_id: str, name: str, actor: str | None
) -> asyncpg.Record | None:
    """Insert; None when the account already has a stoplist of that name."""
    return await conn.fetchrow(
        """INSERT INTO stoplists (id, account_id, name, created_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (account_id, name) DO NOTHING
           RETURNING id, account_id, name, record_count, created_at""",
        uuid.uuid4(),
        account_id,
        name,
        actor,
    )


async def default_stoplist_id(conn: asyncpg.Connection, *, account_id: str) -> uuid.UUID:
    """The account's `default` stoplist, created on first use (one round trip either way)."""
    value = await conn.fetchval(
        """WITH created AS (
             INSERT INTO stoplists (id, account_id, name, created_by) VALUES ($1, $2, $3, 'system')
             ON CONFLICT (account_id, name) DO NOTHING RETURNING id)
           SELECT id FROM created UNION ALL
           SELECT id FROM stoplists WHERE account_id = $2 AND name = $3 LIMIT 1""",
        uuid.uuid4(),
        account_id,
        DEFAULT_STOPLIST,
    )
    assert value is not None
    return value  # type: ignore[no-any-return]


async def get_stoplist(
    conn: asyncpg.Connection, *, account_id: str, stoplist_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, account_id, name, record_count, created_at, truncate_password_hash IS NOT NULL AS has_password
           FROM stoplists WHERE id = $1 AND account_id = $2""",
        stoplist_id,
        account_id,
    )


async def lock_stoplist(
    conn: asyncpg.Connection, *, account_id: str, stoplist_id: uuid.UUID
) -> asyncpg.Record | None:
    """Row lock so deletes/truncates of one stoplist serialise with each other."""
    return await conn.fetchrow(
        "SELECT id, truncate_password_hash FROM stoplists WHERE id = $1 AND account_id = $2 FOR UPDATE",
        stoplist_id,
        account_id,
    )


async def existing_stoplists(
    conn: asyncpg.Connection, *, account_id: str, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id FROM stoplists WHERE account_id = $1 AND id = ANY($2::uuid[])", account_id, list(ids)
    )
    return {r["id"] for r in rows}


async def list_stoplists(
    conn: asyncpg.Connection, *, account_id: str, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, account_id, name, record_count, created_at FROM stoplists
           WHERE account_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
           ORDER BY created_at, id LIMIT $4""",
        account_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return rows


async def rename_stoplist(
    conn: asyncpg.Connection, *, account_id: str, stoplist_id: uuid.UUID, name: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """UPDATE stoplists SET name = $3 WHERE id = $1 AND account_id = $2
           RETURNING id, account_id, name, record_count, created_at""",
        stoplist_id,
        account_id,
        name,
    )


async def set_truncate_password(
    conn: asyncpg.Connection, *, account_id: str, stoplist_id: uuid.UUID, password_hash: str
) -> bool:
    result = await conn.execute(
        "UPDATE stoplists SET truncate_password_hash = $3 WHERE id = $1 AND account_id = $2",
        stoplist_id,
        account_id,
        password_hash,
    )
    return bool(result.endswith(" 1"))


async def delete_stoplist_row(conn: asyncpg.Connection, *, account_id: str, stoplist_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM stoplists WHERE id = $1 AND account_id = $2", stoplist_id, account_id)


async def lock_identifiers(
    conn: asyncpg.Connection, *, account_id: str, keys: Sequence[tuple[str, str]]
) -> None:
    """Transaction locks per identifier, in a fixed order: concurrent changes of one identifier serialise,
    so each SuppressionChanged carries a `suppressed` flag that is true at its commit."""
    if not keys:
        return
    await conn.execute(
        """SELECT pg_advisory_xact_lock(h) FROM (
             SELECT DISTINCT hashtextextended($1 || ':' || t || ':' || v, 0) AS h
             FROM unnest($2::text[], $3::text[]) AS u(t, v) ORDER BY 1) s""",
        account_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )


async def insert_entries(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    stoplist_id: uuid.UUID,
    entries: Sequence[NewEntry],
    actor: str | None,
) -> list[asyncpg.Record]:
    """Set-based insert; entries already present (same identifier, channel, sender) are skipped."""
    if not entries:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""INSERT INTO entries (id, account_id, stoplist_id, id_type, value, channel, sender, source, reason,
                                 expires_at, added_by)
            SELECT u.id, $1, $2, u.t, u.v, u.c, u.s, u.src, u.r, u.e, $3
            FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                        $11::timestamptz[]) AS u(id, t, v, c, s, src, r, e)
            ON CONFLICT DO NOTHING
            RETURNING {ENTRY_COLUMNS}""",
        account_id,
        stoplist_id,
        actor,
        [uuid.uuid4() for _ in entries],
        [e.id_type for e in entries],
        [e.value for e in entries],
        [e.channel for e in entries],
        [e.sender for e in entries],
        [e.source for e in entries],
        [e.reason for e in entries],
        [e.expires_at for e in entries],
    )
    return rows


# An entry's SuppressionChanged as handlers.changed_events writes it, byte for byte
# (tests/test_import_events.py compares the two), built next to the insert. $4 is the envelope up to
# the entry id (from event_prefix); plain concatenation with to_json for every text value costs a third
# of json_build_object, and the payload's layout is fixed.
_ADDED_EVENT_JSON = """'{"event_id":"' || ev.event_id || $4::text || ev.id
    || '","stoplist_id":"' || ev.stoplist_id || '","identifier":{"type":"' || ev.id_type
    || '","value":' || to_json(ev.value) || '},"channel":' || coalesce(to_json(ev.channel)::text, 'null')
    || ',"sender":' || coalesce(to_json(ev.sender)::text, 'null') || ',"source":' || to_json(ev.source)
    || ',"reason":' || coalesce(to_json(ev.reason)::text, 'null') || ',"added_at":"' || at.added_at
    || '","expires_at":'
    || coalesce('"' || to_char(ev.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS') || 'Z"', 'null')
    || '},"suppressed":true}}'"""


def _column(values: list[Any]) -> tuple[list[Any] | None, Any]:
    """(array, None), or (None, the value) when every row has the same one: unnest pads a NULL array
    with NULLs, and asyncpg's per-element checks of a column of None cost more than its insert."""
    first = values[0]
    if all(v == first for v in values):
        return None, first
    return values, None


def event_prefix(*, occurred_at: str, account_id: str, producer: str) -> str:
    """The constant middle of an added event, from after its event id to the entry id's opening quote."""
    tail = orjson.dumps(
        {
            "event_type": "SuppressionChanged",
            "schema_version": 1,
            "occurred_at": occurred_at,
            "account_id": account_id,
            "correlation_id": None,
            "producer": producer,
        }
    ).decode()
    return '",' + tail[1:-1] + ',"payload":{"op":"added","entry":{"entry_id":"'


async def insert_entries_announced(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    stoplist_id: uuid.UUID,
    entries: Sequence[NewEntry],
    actor: str | None,
    producer: str,
    occurred_at: str,
    topic: str,
    notify: str,
) -> list[str]:
    """Insert entries and queue one SuppressionChanged each in one statement; returns the new entries'
    cache keys ('type:value'). For imports: building a million envelopes in Python cost more than the
    inserts, and the rows never need to come back to Python."""
    if not entries:
        return []
    columns, scalars = zip(
        *(
            _column([e.channel for e in entries]),
            _column([e.sender for e in entries]),
            _column([e.source for e in entries]),
            _column([e.reason for e in entries]),
            _column([e.expires_at for e in entries]),
        ),
        strict=True,
    )
    keys: list[str] | None = await conn.fetchval(
        f"""WITH added AS (
              INSERT INTO entries (id, account_id, stoplist_id, id_type, value, channel, sender, source, reason,
                                   expires_at, added_by)
              SELECT gen_random_uuid(), $1, $2, u.t, u.v, coalesce(u.c, $14), coalesce(u.s, $15),
                     coalesce(u.src, $16), coalesce(u.r, $17), coalesce(u.e, $18), $3
              FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                          $13::timestamptz[]) AS u(t, v, c, s, src, r, e)
              ON CONFLICT DO NOTHING
              RETURNING id, stoplist_id, id_type, value, channel, sender, source, reason, added_at, expires_at),
            ev AS (SELECT gen_random_uuid() AS event_id, a.* FROM added a),
            at AS (SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS') || 'Z' AS added_at),
            queued AS (
              INSERT INTO outbox (topic, key, value, event_id, event_type)
              SELECT $5, convert_to($1 || ':' || ev.id_type || ':' || ev.value, 'UTF8'),
                     convert_to({_ADDED_EVENT_JSON}, 'UTF8'), ev.event_id, 'SuppressionChanged'
              FROM ev, at)
            SELECT array_agg(id_type || ':' || value) FROM added, pg_notify($6, '') AS n""",
        account_id,
        stoplist_id,
        actor,
        event_prefix(occurred_at=occurred_at, account_id=account_id, producer=producer),
        topic,
        notify,
        [e.id_type for e in entries],
        [e.value for e in entries],
        *columns,
        *scalars,
    )
    return keys or []


async def find_existing(
    conn: asyncpg.Connection, *, account_id: str, stoplist_id: uuid.UUID, entry: NewEntry
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {ENTRY_COLUMNS} FROM entries WHERE account_id = $1 AND stoplist_id = $2 AND id_type = $3
            AND value = $4 AND channel IS NOT DISTINCT FROM $5 AND sender IS NOT DISTINCT FROM $6""",
        account_id,
        stoplist_id,
        entry.id_type,
        entry.value,
        entry.channel,
        entry.sender,
    )


async def delete_entries_where(
    conn: asyncpg.Connection, *, account_id: str, where: str, args: Sequence[Any]
) -> list[asyncpg.Record]:
    """Delete by a fixed, parameterised predicate (callers pass constants from this module) and return the rows."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"DELETE FROM entries WHERE account_id = $1 AND ({where}) RETURNING {ENTRY_COLUMNS}",
        account_id,
        *args,
    )
    return rows


async def count_entries(conn: asyncpg.Connection, *, rows: Sequence[asyncpg.Record], sign: int) -> None:
    """Move the stoplists' record counts by the rows added (sign 1) or removed (-1).

    Callers run it as their transaction's last statement: it row-locks each stoplist until commit,
    and every writer of that stoplist (both consumers, the API, imports) queues on that lock.
    """
    counts: dict[uuid.UUID, int] = {}
    for r in rows:
        counts[r["stoplist_id"]] = counts.get(r["stoplist_id"], 0) + sign
    await move_counts(conn, counts)


async def move_counts(conn: asyncpg.Connection, counts: dict[uuid.UUID, int]) -> None:
    """Add each stoplist's delta to its record count (the last statement of a transaction, see count_entries).

    The rows are locked in id order first: two transactions that each count several stoplists (an
    import into two lists, a removal by identifier across lists) would otherwise lock them in
    whatever order each UPDATE meets them, and could deadlock."""
    if counts:
        await conn.execute(
            """WITH locked AS (SELECT id FROM stoplists WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE)
               UPDATE stoplists s SET record_count = greatest(0, s.record_count + d.n)
               FROM unnest($1::uuid[], $2::bigint[]) AS d(id, n), locked l WHERE s.id = d.id AND l.id = d.id""",
            list(counts),
            list(counts.values()),
        )


BY_ENTRY_IDS = "stoplist_id = $2 AND id = ANY($3::uuid[])"
BY_STOPLIST = "stoplist_id = $2"
BY_IDENTIFIER = (
    "id_type = $2 AND value = ANY($3::text[]) AND ($4::text IS NULL OR channel = $4)"
    " AND ($5::uuid IS NULL OR stoplist_id = $5)"
)
EXPIRED = "id IN (SELECT id FROM entries WHERE expires_at <= now() AND account_id = $1 LIMIT $2)"


async def live_coverage(
    conn: asyncpg.Connection, *, account_id: str, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[str | None]]:
    """Channels of the live entries left per identifier (None = all channels)."""
    if not keys:
        return {}
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT e.id_type, e.value, e.channel FROM entries e
           JOIN unnest($2::text[], $3::text[]) AS k(t, v) ON e.id_type = k.t AND e.value = k.v
           WHERE e.account_id = $1 AND (e.expires_at IS NULL OR e.expires_at > now())""",
        account_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    out: dict[tuple[str, str], list[str | None]] = {}
    for r in rows:
        out.setdefault((r["id_type"], r["value"]), []).append(r["channel"])
    return out


async def record_removals(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    rows: Sequence[asyncpg.Record],
    op: str,
    actor: str | None,
    reason: str | None,
) -> None:
    if not rows:
        return
    await conn.execute(
        """INSERT INTO entry_removals (account_id, entry_id, stoplist_id, id_type, value, channel, op, removed_by,
                                          reason, sender, source, added_by, added_at)
           SELECT $1, u.id, u.sl, u.t, u.v, u.c, $2, $3, $4, u.s, u.src, u.by, u.at
           FROM unnest($5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                       $12::text[], $13::timestamptz[]) AS u(id, sl, t, v, c, s, src, by, at)""",
        account_id,
        op,
        actor,
        reason,
        [r["id"] for r in rows],
        [r["stoplist_id"] for r in rows],
        [r["id_type"] for r in rows],
        [r["value"] for r in rows],
        [r["channel"] for r in rows],
        [r["sender"] for r in rows],
        [r["source"] for r in rows],
        [r["added_by"] for r in rows],
        [r["added_at"] for r in rows],
    )


# A live entry applies to a check when its channel/sender is null or equal (an omitted check field = any).
_APPLIES_TO_CHECK = """
    WHERE account_id = $1 AND id_type = $2 AND {value}
      AND ($4::text IS NULL OR channel IS NULL OR channel = $4)
      AND ($5::text IS NULL OR sender IS NULL OR sender = $5)
      AND (expires_at IS NULL OR expires_at > now())
      AND ($6::uuid[] IS NULL OR stoplist_id = ANY($6::uuid[]))"""
_ONE_VALUE = _APPLIES_TO_CHECK.format(value="value = $3::text")
_MANY_VALUES = _APPLIES_TO_CHECK.format(value="value = ANY($3::text[])")
"""One value is compared with `=`, not `= ANY`: Postgres then settles on the prepared statement's generic
plan, where for `ANY` of an array of unknown length it re-plans every execution (measured with 1M
entries: a single check's confirmation round trip 265 -> 154 us)."""


def _applies_to_check(values: Sequence[str]) -> tuple[str, str | list[str]]:
    """The WHERE clause for these values, and the value parameter ($3) it takes."""
    return (_ONE_VALUE, values[0]) if len(values) == 1 else (_MANY_VALUES, list(values))


async def matching_entries(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    id_type: str,
    values: Sequence[str],
    channel: str | None,
    sender: str | None,
    stoplist_ids: Sequence[uuid.UUID] | None,
) -> list[asyncpg.Record]:
    """Live entries that apply to a check (channel/sender null or equal; omitted check field = any)."""
    where, value = _applies_to_check(values)
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT value, id, stoplist_id, channel, sender FROM entries" + where,
        account_id,
        id_type,
        value,
        channel,
        sender,
        list(stoplist_ids) if stoplist_ids else None,
    )
    return rows


async def matching_values(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    id_type: str,
    values: Sequence[str],
    channel: str | None,
    sender: str | None,
    stoplist_ids: Sequence[uuid.UUID] | None,
) -> list[str]:
    """Cache keys ('type:value') of the values with a live entry that applies (batch checks need no details)."""
    where, value = _applies_to_check(values)
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT DISTINCT id_type || ':' || value FROM entries" + where,
        account_id,
        id_type,
        value,
        channel,
        sender,
        list(stoplist_ids) if stoplist_ids else None,
    )
    return [r[0] for r in rows]


async def expired_accounts(conn: asyncpg.Connection, *, limit: int = 100) -> list[str]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT DISTINCT account_id FROM (SELECT account_id FROM entries WHERE expires_at <= now() LIMIT 10000) t LIMIT $1",
        limit,
    )
    return [r["account_id"] for r in rows]


async def identifiers_of(
    conn: asyncpg.Connection, *, account_id: str, where: str, args: Sequence[Any]
) -> list[tuple[str, str]]:
    """Identifiers a delete is about to touch, so they can be locked first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT DISTINCT id_type, value FROM entries WHERE account_id = $1 AND ({where})", account_id, *args
    )
    return [(r["id_type"], r["value"]) for r in rows]
