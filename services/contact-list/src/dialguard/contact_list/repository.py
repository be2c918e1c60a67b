"""SQL of the contact-list service, and only SQL; every statement is scoped by account_id or a list id
the caller has already resolved for the account."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

# Counts come from list_counts, kept by statement-level triggers on contacts (migration 0002).
COUNTS = """
    coalesce(sum(k.n), 0) AS total,
    coalesce(sum(k.n) FILTER (WHERE k.status = 'callable'), 0) AS callable,
    coalesce(sum(k.n) FILTER (WHERE k.status = 'planning'), 0) AS planning,
    coalesce(sum(k.n) FILTER (WHERE k.status = 'open'), 0) AS open,
    coalesce(sum(k.n) FILTER (WHERE k.status = 'attempted'), 0) AS attempted,
    coalesce(sum(k.n) FILTER (WHERE k.status = 'flagged'), 0) AS flagged,
    coalesce(sum(k.n) FILTER (WHERE k.status = 'closed'), 0) AS closed
"""
LIST_SELECT = f"""
    SELECT l.*, cnt.* FROM contact_lists l
    CROSS JOIN LATERAL (SELECT {COUNTS} FROM list_counts k WHERE k.list_id = l.id) cnt
"""


async def insert_list(conn: asyncpg.Connection, *, account_id: str, values: dict[str, Any]) -> uuid.UUID:
    list_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO contact_lists (id, account_id, name, kind, channel, unique_id_column, name_column,
               close_when_all_reached, max_attempts, campaign_id, campaign_list_id, campaign_status, source,
               filter, auto_add, auto_add_cron, next_auto_add_at, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)""",
        list_id,
        account_id,
        values["name"],
        values["kind"],
        values["channel"],
        values["unique_id_column"],
        values["name_column"],
        values["close_when_all_reached"],
        values["max_attempts"],
        values["campaign_id"],
        values["campaign_list_id"],
        "active" if values["campaign_id"] else None,
        values["source"],
        values["filter"],
        values["auto_add"],
        values["auto_add_cron"],
        values["next_auto_add_at"],
        values["created_by"],
    )
    return list_id


async def get_list(conn: asyncpg.Connection, *, account_id: str, list_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(f"{LIST_SELECT} WHERE l.account_id = $1 AND l.id = $2", account_id, list_id)


async def lock_list(
    conn: asyncpg.Connection, *, account_id: str, list_id: uuid.UUID
) -> asyncpg.Record | None:
    """The list row, locked: imports into one list commit one after another."""
    return await conn.fetchrow(
        "SELECT * FROM contact_lists WHERE account_id = $1 AND id = $2 FOR UPDATE", account_id, list_id
    )


async def page_lists(
    conn: asyncpg.Connection, *, account_id: str, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        f"""{LIST_SELECT} WHERE l.account_id = $1
              AND ($2::timestamptz IS NULL OR (l.created_at, l.id) > ($2, $3::uuid))
            ORDER BY l.created_at, l.id LIMIT $4""",
        account_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


EDITABLE = frozenset(
    {
        "name",
        "close_when_all_reached",
        "max_attempts",
        "campaign_id",
        "campaign_list_id",
        "campaign_status",
        "auto_add",
        "auto_add_cron",
        "next_auto_add_at",
    }
)


async def update_list(
    conn: asyncpg.Connection, *, account_id: str, list_id: uuid.UUID, changes: dict[str, Any]
) -> bool:
    """Set the given columns (names from the fixed EDITABLE set, values as parameters)."""
    names = [n for n in changes if n in EDITABLE]
    assignments = ", ".join(f"{n} = ${i + 3}" for i, n in enumerate(names))
    result = await conn.execute(
        f"UPDATE contact_lists SET {assignments} WHERE account_id = $1 AND id = $2",
        account_id,
        list_id,
        *[changes[n] for n in names],
    )
    return bool(result.endswith(" 1"))


async def delete_list(conn: asyncpg.Connection, *, account_id: str, list_id: uuid.UUID) -> bool:
    result = await conn.execute(
        "DELETE FROM contact_lists WHERE account_id = $1 AND id = $2", account_id, list_id
    )
    return bool(result.endswith(" 1"))


async def page_contacts(
    conn: asyncpg.Connection, *, list_id: uuid.UUID, status: str | None, limit: int, after: int | None
) -> list[asyncpg.Record]:
    """Contacts in file order (seq), keyset-paged."""
    return await conn.fetch(  # type: ignore[no-any-return]
        """SELECT * FROM contacts WHERE list_id = $1 AND ($2::text IS NULL OR status = $2)
             AND ($3::bigint IS NULL OR seq > $3)
           ORDER BY seq LIMIT $4""",
        list_id,
        status,
        after,
        limit,
    )


async def units_of(conn: asyncpg.Connection, contact_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    rows = await conn.fetch(
        "SELECT * FROM units WHERE contact_id = ANY($1::uuid[]) ORDER BY contact_id, position",
        list(contact_ids),
    )
    out: dict[uuid.UUID, list[Any]] = {}
    for r in rows:
        out.setdefault(r["contact_id"], []).append(r)
    return out


# --- imports ---------------------------------------------------------------------------------------


async def insert_import(
    conn: asyncpg.Connection,
    *,
    import_id: uuid.UUID,
    account_id: str,
    list_id: uuid.UUID,
    filename: str,
    columns: list[str],
    actor: str,
    worker: str,
) -> None:
    await conn.execute(
        """INSERT INTO imports (id, account_id, list_id, status, filename, columns, created_by, worker)
           VALUES ($1, $2, $3, 'analyzing', $4, $5, $6, $7)""",
        import_id,
        account_id,
        list_id,
        filename,
        columns,
        actor,
        worker,
    )


async def get_import(
    conn: asyncpg.Connection, *, account_id: str, import_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM imports WHERE id = $1 AND account_id = $2", import_id, account_id
    )


async def start_commit(
    conn: asyncpg.Connection, *, account_id: str, import_id: uuid.UUID, worker: str
) -> asyncpg.Record | None:
    """validated → running (in this worker), atomically: a second commit call finds nothing to start."""
    return await conn.fetchrow(
        """UPDATE imports SET status = 'running', worker = $3
           WHERE id = $1 AND account_id = $2 AND status = 'validated' RETURNING *""",
        import_id,
        account_id,
        worker,
    )


async def pending_columns(conn: asyncpg.Connection, *, list_id: uuid.UUID) -> list[str] | None:
    """Before any commit, the first file is the earliest upload still on its way in."""
    columns = await conn.fetchval(
        """SELECT columns FROM imports WHERE list_id = $1 AND status IN ('analyzing', 'validated', 'running')
           ORDER BY created_at LIMIT 1""",
        list_id,
    )
    return list(columns) if columns is not None else None


async def field_names(conn: asyncpg.Connection, *, list_id: uuid.UUID) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT jsonb_object_keys(fields) AS k FROM contacts WHERE list_id = $1 ORDER BY 1", list_id
    )
    return [r["k"] for r in rows]


# --- import commit -----------------------------------------------------------------------------------


async def stage_commit(
    conn: asyncpg.Connection, *, import_id: uuid.UUID, list_id: uuid.UUID, next_seq: int
) -> None:
    """The import's contacts as they will be written, in two transaction-local tables: one row per external
    id (the file's last row for it wins; rows without one are numbered on from the list's sequence), its
    id (the existing contact's when the list has it) and its units with `callable` from the projection.
    commit_contacts.units are the staged units, each `callable: true`: ContactImported publishes them as
    they are for a contact none of whose units is suppressed."""
    await conn.execute(
        """CREATE TEMP TABLE commit_contacts ON COMMIT DROP AS
           WITH r AS (
               SELECT coalesce(external_id, ($2::bigint + row_number() OVER (
                          PARTITION BY external_id IS NULL ORDER BY row_number))::text) AS external_id,
                      row_number, name, fields, timezone,
                      -- staged with callable: true; rows staged before it was (an older version) get it
                      CASE WHEN units -> 0 ? 'callable' THEN units
                           ELSE (SELECT coalesce(jsonb_agg(u || '{"callable": true}' ORDER BY n), '[]')
                                 FROM jsonb_array_elements(units) WITH ORDINALITY AS e(u, n)) END AS units
               FROM import_rows WHERE import_id = $1),
           w AS (SELECT DISTINCT ON (external_id) * FROM r ORDER BY external_id, row_number DESC)
           SELECT coalesce(c.id, gen_random_uuid()) AS id, c.id IS NOT NULL AS existed, w.*
           FROM w LEFT JOIN contacts c ON c.list_id = $3 AND c.external_id = w.external_id""",
        import_id,
        next_seq,
        list_id,
    )
    await conn.execute(
        f"""CREATE TEMP TABLE commit_units ON COMMIT DROP AS
            SELECT x.contact_id, x.position, x.account_id, x.type, x.value, x.channel, x.priority,
                   {UNIT_CALLABLE.format(u="x")} AS callable
            FROM (SELECT w.id AS contact_id, e.ord::int AS position, l.account_id, e.type, e.value, e.channel,
                         e.priority
                  FROM commit_contacts w JOIN contact_lists l ON l.id = $1
                  CROSS JOIN LATERAL ROWS FROM (jsonb_to_recordset(w.units)
                       AS (type text, value text, channel text, priority int)) WITH ORDINALITY
                       AS e(type, value, channel, priority, ord)) x""",
        list_id,
    )
    await conn.execute("ANALYZE commit_contacts")
    await conn.execute("ANALYZE commit_units")


async def apply_staged_contacts(
    conn: asyncpg.Connection, *, import_id: uuid.UUID, list_id: uuid.UUID, account_id: str
) -> None:
    """Contacts (in file order, has_callable from their units) and units from the staged tables, set-based:
    a contact found again by its unique id is updated and its units replaced."""
    await conn.execute(
        """DELETE FROM units u USING commit_contacts w WHERE w.existed AND u.contact_id = w.id"""
    )
    await conn.execute(
        """INSERT INTO contacts (id, account_id, list_id, external_id, name, fields, timezone, import_id,
                                 has_callable)
           SELECT w.id, $3, $2, w.external_id, w.name, w.fields, w.timezone, $1, coalesce(k.any_callable, false)
           FROM commit_contacts w
           LEFT JOIN (SELECT contact_id, bool_or(callable) AS any_callable FROM commit_units GROUP BY 1) k
             ON k.contact_id = w.id
           ORDER BY w.row_number
           ON CONFLICT (list_id, external_id) DO UPDATE
             SET name = coalesce(EXCLUDED.name, contacts.name), fields = contacts.fields || EXCLUDED.fields,
                 timezone = coalesce(EXCLUDED.timezone, contacts.timezone), import_id = EXCLUDED.import_id,
                 has_callable = EXCLUDED.has_callable, updated_at = now()""",
        import_id,
        list_id,
        account_id,
    )
    await conn.execute(
        """INSERT INTO units (contact_id, position, account_id, type, value, channel, priority, callable)
           SELECT contact_id, position, account_id, type, value, channel, priority, callable FROM commit_units"""
    )


# --- suppression projection -------------------------------------------------------------------------


async def upsert_suppressions(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str, str, str | None]]
) -> None:
    """(account, entry_id, type, value, channel) entries now live."""
    if not rows:
        return
    await conn.execute(
        """INSERT INTO suppressions (account_id, entry_id, id_type, value, channel)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
           ON CONFLICT (account_id, entry_id) DO UPDATE
             SET id_type = EXCLUDED.id_type, value = EXCLUDED.value, channel = EXCLUDED.channel""",
        *_columns(rows, 5),
    )


async def delete_suppressions(conn: asyncpg.Connection, rows: Sequence[tuple[str, str]]) -> None:
    """(account, entry_id) entries removed or expired."""
    if not rows:
        return
    await conn.execute(
        """DELETE FROM suppressions s USING unnest($1::text[], $2::text[]) AS k(account_id, entry_id)
           WHERE s.account_id = k.account_id AND s.entry_id = k.entry_id""",
        *_columns(rows, 2),
    )


async def clear_suppressions(
    conn: asyncpg.Connection, rows: Sequence[tuple[str, str, str, str | None]]
) -> None:
    """The producer says (account, type, value) is no longer suppressed on a channel: drop what we hold for it."""
    if not rows:
        return
    await conn.execute(
        """DELETE FROM suppressions s
           USING unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(account_id, id_type, value, channel)
           WHERE s.account_id = k.account_id AND s.id_type = k.id_type AND s.value = k.value
             AND (k.channel IS NULL OR s.channel IS NULL OR s.channel = k.channel)""",
        *_columns(rows, 4),
    )


UNIT_CALLABLE = """NOT EXISTS (
    SELECT 1 FROM suppressions s
    WHERE s.account_id = {u}.account_id AND s.id_type = {u}.type AND s.value = {u}.value
      AND (s.channel IS NULL OR {u}.channel IS NULL OR s.channel = {u}.channel))"""


async def refresh_units(conn: asyncpg.Connection, keys: Sequence[tuple[str, str, str]]) -> list[uuid.UUID]:
    """Recompute `callable` of every unit with these identifiers; returns the contacts whose units changed."""
    if not keys:
        return []
    rows = await conn.fetch(
        f"""WITH k AS (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[]) AS k(account_id, id_type, value)),
                 target AS (
                   SELECT u.contact_id, u.position, {UNIT_CALLABLE.format(u="u")} AS callable
                   FROM units u JOIN k ON u.account_id = k.account_id AND u.type = k.id_type AND u.value = k.value)
            UPDATE units u SET callable = target.callable FROM target
            WHERE u.contact_id = target.contact_id AND u.position = target.position
              AND u.callable IS DISTINCT FROM target.callable
            RETURNING u.contact_id""",
        *_columns(keys, 3),
    )
    return list({r["contact_id"] for r in rows})


async def refresh_contacts(conn: asyncpg.Connection, contact_ids: Sequence[uuid.UUID]) -> None:
    """has_callable follows the units: a contact with no callable unit is flagged."""
    if not contact_ids:
        return
    await conn.execute(
        """UPDATE contacts c SET has_callable = x.any_callable, updated_at = now()
           FROM (SELECT contact_id, bool_or(callable) AS any_callable FROM units
                 WHERE contact_id = ANY($1::uuid[]) GROUP BY contact_id) x
           WHERE c.id = x.contact_id AND c.has_callable IS DISTINCT FROM x.any_callable""",
        list(contact_ids),
    )


# --- lifecycle from lead-action and dialer events ------------------------------------------------


async def activate_campaign(
    conn: asyncpg.Connection, *, account_id: str, campaign_id: str
) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """UPDATE contact_lists SET campaign_status = 'active' WHERE account_id = $1 AND campaign_id = $2
           RETURNING id""",
        account_id,
        campaign_id,
    )
    return [r["id"] for r in rows]


async def plan_contacts(
    conn: asyncpg.Connection,
    *,
    list_ids: Sequence[uuid.UUID],
    lead_ids: Sequence[str] | None,
    from_statuses: Sequence[str],
    reset_attempts: bool = False,
) -> int:
    """Move contacts of these lists (all, or those a lead id names) into planning."""
    if not list_ids:
        return 0
    ids = list(lead_ids) if lead_ids is not None else None
    result = await conn.execute(
        """UPDATE contacts c SET base_status = 'planning', updated_at = now(),
               attempts = CASE WHEN $5 THEN 0 ELSE attempts END
           WHERE c.list_id = ANY($1::uuid[]) AND c.base_status = ANY($2::text[])
             AND ($3::text[] IS NULL OR c.external_id = ANY($3) OR c.id = ANY($4::uuid[]))""",
        list(list_ids),
        list(from_statuses),
        ids,
        [_uuid_or_none(i) for i in ids or ()],
        reset_attempts,
    )
    return int(result.split()[-1])


async def any_contact_named(
    conn: asyncpg.Connection, *, list_ids: Sequence[uuid.UUID], lead_ids: Sequence[str]
) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM contacts c WHERE c.list_id = ANY($1::uuid[])
                 AND (c.external_id = ANY($2::text[]) OR c.id = ANY($3::uuid[])))""",
            list(list_ids),
            list(lead_ids),
            [_uuid_or_none(i) for i in lead_ids],
        )
    )


async def lists_of_campaigns(
    conn: asyncpg.Connection, *, account_id: str, campaign_ids: Sequence[str]
) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT id FROM contact_lists WHERE account_id = $1 AND campaign_id = ANY($2::text[])",
        account_id,
        list(campaign_ids),
    )
    return [r["id"] for r in rows]


async def call_matches(
    conn: asyncpg.Connection, calls: Sequence[tuple[int, str, str, str, str, str]]
) -> list[asyncpg.Record]:
    """(idx, account, campaign, lead_id, id_type, value) → contacts of lists linked to the campaign, by lead
    id (contact id or external id, how=1) or by identifier (how=2)."""
    if not calls:
        return []
    idx, accounts, campaigns, leads, types, values = _columns(calls, 6)
    return await conn.fetch(  # type: ignore[no-any-return]
        """WITH ev AS (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[])
                        AS e(idx, account_id, campaign_id, lead_id, lead_uuid, id_type, value)),
                l AS (SELECT ev.*, cl.id AS list_id FROM ev JOIN contact_lists cl
                        ON cl.account_id = ev.account_id AND cl.campaign_id = ev.campaign_id)
           SELECT l.idx, c.id AS contact_id, 1 AS how FROM l JOIN contacts c ON c.list_id = l.list_id AND c.id = l.lead_uuid
           UNION
           SELECT l.idx, c.id, 1 FROM l JOIN contacts c ON c.list_id = l.list_id AND c.external_id = l.lead_id
           UNION
           SELECT l.idx, c.id, 2 FROM l
             JOIN units u ON u.account_id = l.account_id AND u.type = l.id_type AND u.value = l.value
             JOIN contacts c ON c.id = u.contact_id AND c.list_id = l.list_id""",
        idx,
        accounts,
        campaigns,
        leads,
        [_uuid_or_none(x) for x in leads],
        types,
        values,
    )


async def lock_call_state(conn: asyncpg.Connection, contact_ids: Sequence[uuid.UUID]) -> list[asyncpg.Record]:
    return await conn.fetch(  # type: ignore[no-any-return]
        """SELECT c.id, c.base_status, c.attempts, c.reached_channels, l.close_when_all_reached, l.max_attempts,
                  ARRAY(SELECT DISTINCT coalesce(u.channel, u.type) FROM units u WHERE u.contact_id = c.id) AS unit_channels
           FROM contacts c JOIN contact_lists l ON l.id = c.list_id
           WHERE c.id = ANY($1::uuid[]) ORDER BY c.id FOR UPDATE OF c""",
        list(contact_ids),
    )


async def save_call_state(
    conn: asyncpg.Connection, rows: Sequence[tuple[uuid.UUID, str, int, list[str]]]
) -> None:
    if not rows:
        return
    ids, statuses, attempts, reached = _columns(rows, 4)
    await conn.execute(
        """UPDATE contacts c SET base_status = x.status, attempts = x.attempts, updated_at = now(),
               reached_channels = string_to_array(x.reached, ',')
           FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[]) AS x(id, status, attempts, reached)
           WHERE c.id = x.id""",
        ids,
        statuses,
        attempts,
        [",".join(r) for r in reached],
    )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Row tuples → one list per column, for unnest."""
    return [[row[i] for row in rows] for i in range(width)]
