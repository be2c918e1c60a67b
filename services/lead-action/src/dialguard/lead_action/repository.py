"""SQL of the lead-action service, and only SQL; every statement is scoped by account_id."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from dialguard.lead_action.domain import DNC, Criteria

LEAD_COLUMNS = """id, list_id, campaign_id, external_id, contact_id, phone, first_name, last_name, fields,
    timezone, status, pass_count, manual_pass_count, next_dial_at, agent_disposition, system_disposition,
    suppressed, suppression_causes, physical_state, callback_at, reserved_agent_id, created_at, updated_at"""

# Whether a phone is on the local projection of voice-applicable suppression entries.
PROJECTED_DNC = """EXISTS (SELECT 1 FROM suppression_projection s
    WHERE s.account_id = {account} AND s.id_type = 'phone' AND s.value = {phone}
      AND (s.channel IS NULL OR s.channel = 'voice'))"""


# lead_blocks (migration 0005): a block is 2**BLOCK_SHIFT consecutive lead ids of one origin list and list.
BLOCK_SHIFT = 8


def or_blocks(source: str) -> str:
    """An INSERT OR-ing the state bits of `source`'s rows (account_id, origin_list_id, list_id, id, status)
    into lead_blocks: how a writer that adds leads or changes a status or list keeps the summary a superset.
    It runs after the leads changed, in their transaction (refresh_blocks relies on that order)."""
    return f"""INSERT INTO lead_blocks AS b (account_id, origin_list_id, list_id, block, states)
        SELECT account_id, origin_list_id, list_id, id >> {BLOCK_SHIFT}, bit_or(lead_state_bit(status))
        FROM {source} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (account_id, origin_list_id, list_id, block)
        DO UPDATE SET states = b.states | excluded.states WHERE (b.states | excluded.states) <> b.states"""


async def _fetch(conn: asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return rows


# --- hierarchy --------------------------------------------------------------------------------------


async def create_dial_group(conn: asyncpg.Connection, *, account_id: str, name: str) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO dial_groups (account_id, name) VALUES ($1, $2) RETURNING id, name, created_at",
        account_id,
        name,
    )


async def list_dial_groups(
    conn: asyncpg.Connection, *, account_id: str, after: int, limit: int
) -> list[asyncpg.Record]:
    return await _fetch(
        conn,
        """SELECT id, name, created_at FROM dial_groups WHERE account_id = $1 AND id > $2
           ORDER BY id LIMIT $3""",
        account_id,
        after,
        limit,
    )


async def get_dial_group(
    conn: asyncpg.Connection, *, account_id: str, dial_group_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, name, created_at FROM dial_groups WHERE account_id = $1 AND id = $2",
        account_id,
        dial_group_id,
    )


async def create_campaign(
    conn: asyncpg.Connection, *, account_id: str, dial_group_id: int, name: str
) -> asyncpg.Record:
    return await conn.fetchrow(
        """INSERT INTO campaigns (account_id, dial_group_id, name) VALUES ($1, $2, $3)
           RETURNING id, name, dial_group_id, created_at""",
        account_id,
        dial_group_id,
        name,
    )


async def list_campaigns(
    conn: asyncpg.Connection, *, account_id: str, dial_group_id: int, after: int, limit: int
) -> list[asyncpg.Record]:
    return await _fetch(
        conn,
        """SELECT id, name, dial_group_id, created_at FROM campaigns
           WHERE account_id = $1 AND dial_group_id = $2 AND id > $3 ORDER BY id LIMIT $4""",
        account_id,
        dial_group_id,
        after,
        limit,
    )


async def get_campaign(
    conn: asyncpg.Connection, *, account_id: str, campaign_id: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, name, dial_group_id, created_at FROM campaigns WHERE account_id = $1 AND id = $2",
        account_id,
        campaign_id,
    )


async def create_list(
    conn: asyncpg.Connection, *, account_id: str, campaign_id: int, name: str
) -> asyncpg.Record:
    """A list, and the placement through which its own leads are found."""
    return await conn.fetchrow(
        """WITH l AS (INSERT INTO lead_lists (account_id, campaign_id, name) VALUES ($1, $2, $3)
                      RETURNING id, name, campaign_id, created_at),
                p AS (INSERT INTO lead_placements (account_id, origin_list_id, list_id, campaign_id)
                      SELECT $1, id, id, campaign_id FROM l)
           SELECT id, name, campaign_id, created_at FROM l""",
        account_id,
        campaign_id,
        name,
    )


async def list_lists(
    conn: asyncpg.Connection, *, account_id: str, campaign_id: int, after: int, limit: int
) -> list[asyncpg.Record]:
    return await _fetch(
        conn,
        f"""SELECT l.id, l.name, l.campaign_id, l.created_at,
                  (SELECT count(*) FROM leads
                   WHERE account_id = $1 AND list_id = l.id
                     AND origin_list_id = ANY({origins_of_list("$1", "l.id")})) AS lead_count
           FROM lead_lists l WHERE l.account_id = $1 AND l.campaign_id = $2 AND l.id > $3
           ORDER BY l.id LIMIT $4""",
        account_id,
        campaign_id,
        after,
        limit,
    )


async def get_list(conn: asyncpg.Connection, *, account_id: str, list_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, name, campaign_id, created_at FROM lead_lists WHERE account_id = $1 AND id = $2",
        account_id,
        list_id,
    )


async def existing_lists(
    conn: asyncpg.Connection, *, account_id: str, pairs: Sequence[tuple[int, int]]
) -> set[tuple[int, int]]:
    """Which (campaign_id, list_id) pairs exist in the account."""
    rows = await conn.fetch(
        """SELECT l.campaign_id, l.id FROM lead_lists l
           JOIN unnest($2::bigint[], $3::bigint[]) AS p(campaign_id, list_id)
             ON p.list_id = l.id AND p.campaign_id = l.campaign_id
           WHERE l.account_id = $1""",
        account_id,
        [p[0] for p in pairs],
        [p[1] for p in pairs],
    )
    return {(r["campaign_id"], r["id"]) for r in rows}


# --- leads ------------------------------------------------------------------------------------------


async def lock_account_leads(
    conn: asyncpg.Connection, *, account_ids: Sequence[str], exclusive: bool
) -> None:
    """Lead arrivals (shared) and suppression changes (exclusive) of one account serialize, so a lead and
    a suppression entry committed at the same time can never miss each other."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    for account_id in sorted(set(account_ids)):
        await conn.execute(f"SELECT {fn}(hashtextextended('lead-action:suppression:' || $1, 0))", account_id)


async def insert_leads(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    campaign_id: int,
    list_id: int,
    rows: Sequence[dict[str, Any]],
) -> list[int]:
    """Insert set-based; a phone on the suppression projection arrives suppressed (cause dnc). Ids in order."""
    if not rows:
        return []
    await lock_account_leads(conn, account_ids=[account_id], exclusive=False)
    dnc = PROJECTED_DNC.format(account="$1", phone="x.phone")
    records = await conn.fetch(
        f"""WITH ins AS (
                INSERT INTO leads (account_id, campaign_id, list_id, origin_list_id, external_id, contact_id,
                                   phone, first_name, last_name, fields, timezone, suppression_causes)
                SELECT $1, $2, $3, $3, x.external_id, x.contact_id, x.phone, x.first_name, x.last_name,
                       x.fields::jsonb, x.timezone, CASE WHEN {dnc} THEN ARRAY['{DNC}'] ELSE '{{}}'::text[] END
                FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                            $10::text[], $11::int[])
                     AS x(external_id, contact_id, phone, first_name, last_name, fields, timezone, ord)
                ORDER BY x.ord
                ON CONFLICT (account_id, origin_list_id, contact_id) WHERE contact_id IS NOT NULL DO NOTHING
                RETURNING id, account_id, origin_list_id, list_id, status),
            blocks AS ({or_blocks("ins")})
            SELECT id FROM ins""",
        account_id,
        campaign_id,
        list_id,
        [r.get("external_id") for r in rows],
        [r.get("contact_id") for r in rows],
        [r["phone"] for r in rows],
        [r.get("first_name") for r in rows],
        [r.get("last_name") for r in rows],
        [orjson.dumps(r.get("fields") or {}).decode() for r in rows],
        [r.get("timezone") for r in rows],
        list(range(len(rows))),
    )
    return sorted(r["id"] for r in records)


async def get_lead(conn: asyncpg.Connection, *, account_id: str, lead_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {LEAD_COLUMNS} FROM leads WHERE account_id = $1 AND id = $2", account_id, lead_id
    )


def origins_of_list(account: str, list_id: str) -> str:
    """SQL array of the origin lists whose leads may now be in list `list_id` (both are SQL terms)."""
    return f"""ARRAY(SELECT p.origin_list_id FROM lead_placements p
                     WHERE p.account_id = {account} AND p.list_id = {list_id})"""


def criteria_parts(
    account_id: str, criteria: Criteria, *, start: int = 1
) -> tuple[str, list[Any], str | None]:
    """(WHERE over `leads` with only the criteria present, its args, and, when the criteria name campaigns
    or lists, the condition on `lead_placements p` of the placements that can hold their leads).
    """
    parts = [f"account_id = ${start}"]
    args: list[Any] = [account_id]
    placement: list[str] = []

    def add(template: str, value: Any) -> str:
        args.append(value)
        param = f"${start + len(args) - 1}"
        parts.append(template.format(param))
        return param

    if criteria.campaign_ids is not None:
        param = add("campaign_id = ANY({}::bigint[])", list(criteria.campaign_ids))
        placement.append(f"p.campaign_id = ANY({param}::bigint[])")
    if criteria.list_ids is not None:
        param = add("list_id = ANY({}::bigint[])", list(criteria.list_ids))
        placement.append(f"p.list_id = ANY({param}::bigint[])")
    if criteria.lead_ids is not None:
        add("id = ANY({}::bigint[])", list(criteria.lead_ids))
    if criteria.phones is not None:
        add("phone = ANY({}::text[])", list(criteria.phones))
    if criteria.agent_dispositions is not None:
        add("agent_disposition = ANY({}::text[])", list(criteria.agent_dispositions))
    if criteria.system_dispositions is not None:
        add("system_disposition = ANY({}::text[])", list(criteria.system_dispositions))
    if criteria.lead_states is not None:
        add("status = ANY({}::text[])", list(criteria.lead_states))
    if criteria.physical_states is not None:
        add("physical_state = ANY({}::text[])", list(criteria.physical_states))
    if criteria.timezones is not None:
        add("timezone = ANY({}::text[])", list(criteria.timezones))
    placements = f"p.account_id = ${start} AND " + " AND ".join(placement) if placement else None
    return " AND ".join(parts), args, placements


def criteria_where(account_id: str, criteria: Criteria, *, start: int = 1) -> tuple[str, list[Any]]:
    """A parameterised WHERE over `leads` with only the criteria present (so each query plans on its indexes);
    with campaigns or lists, leads are found through `leads_origin` (the origin lists of their placements)."""
    where, args, placements = criteria_parts(account_id, criteria, start=start)
    if placements is not None:
        where += f""" AND origin_list_id = ANY(ARRAY(
            SELECT DISTINCT p.origin_list_id FROM lead_placements p WHERE {placements}))"""
    return where, args


async def search_leads(
    conn: asyncpg.Connection, *, account_id: str, criteria: Criteria, after: int, limit: int
) -> list[asyncpg.Record]:
    """One page in id order.

    With campaigns or lists: per (origin list, list) placement, its lead_blocks in block order (blocks
    are id ranges, so block order is id order), skipping blocks none of whose leads has a wanted state;
    each block left is an id range of `leads_origin` read with every criterion as a filter, and the walk
    stops at a page of matches. The placements' pages are merged by id. Without campaigns or lists: the
    primary key in id order (or whichever index the other criteria make cheaper)."""
    where, args, placements = criteria_parts(account_id, criteria)
    n = len(args)
    if placements is None:
        sql = f"SELECT {LEAD_COLUMNS} FROM leads WHERE {where} AND id > ${n + 1} ORDER BY id LIMIT ${n + 2}"
        return await _fetch(conn, sql, *args, after, limit)
    sql = f"""SELECT x.* FROM (SELECT DISTINCT p.origin_list_id, p.list_id FROM lead_placements p
                               WHERE {placements}) o
              CROSS JOIN LATERAL (
                  SELECT l.* FROM lead_blocks b CROSS JOIN LATERAL (
                      SELECT {LEAD_COLUMNS} FROM leads
                      WHERE {where} AND origin_list_id = b.origin_list_id AND list_id = b.list_id
                        AND id >= (b.block << {BLOCK_SHIFT}) AND id < ((b.block + 1) << {BLOCK_SHIFT})
                        AND id > ${n + 1}
                      ORDER BY id) l
                  WHERE b.account_id = $1 AND b.origin_list_id = o.origin_list_id AND b.list_id = o.list_id
                    AND b.block >= (${n + 1} >> {BLOCK_SHIFT}) AND (b.states & ${n + 3}) <> 0
                  ORDER BY b.block, l.id LIMIT ${n + 2}) x
              ORDER BY x.id LIMIT ${n + 2}"""
    return await _fetch(conn, sql, *args, after, limit, criteria.state_mask)


async def refresh_blocks(
    conn: asyncpg.Connection, *, account_id: str, origins: Sequence[int], blocks: Sequence[int]
) -> None:
    """Recompute the lead_blocks of these (origin list, block) pairs exactly, clearing the bits of states
    (and the rows of lists) no lead there has any more. Called by bulk actions after their change, in
    their transaction.

    The summary rows there are locked first, then the leads are read in a new statement (a snapshot
    taken after the locks), and only the locked rows are overwritten or removed. A concurrent writer ORs
    its bits after changing its leads, in its transaction: if it got a row's lock first, its leads are
    committed before this snapshot (so counted); if not, it ORs onto what this wrote. A row this did not
    lock (inserted meanwhile) is only ORed into, never overwritten."""
    if not origins:
        return
    locked = await conn.fetch(
        """SELECT b.origin_list_id, b.list_id, b.block FROM lead_blocks b
           JOIN unnest($2::bigint[], $3::bigint[]) AS t(origin_list_id, block) USING (origin_list_id, block)
           WHERE b.account_id = $1
           ORDER BY b.origin_list_id, b.list_id, b.block FOR UPDATE OF b""",
        account_id,
        origins,
        blocks,
    )
    # Runs of consecutive blocks of one origin are read as one id range of leads_origin (a campaign-wide
    # action: one range per origin list), each range its own index scan (OFFSET 0 keeps it one).
    ranges: list[tuple[int, int, int]] = []
    for origin, block in sorted(zip(origins, blocks, strict=True)):
        if ranges and ranges[-1][0] == origin and ranges[-1][2] >= block - 1:
            ranges[-1] = (origin, ranges[-1][1], max(ranges[-1][2], block))
        else:
            ranges.append((origin, block, block))
    await conn.execute("SET LOCAL jit = off")
    await conn.execute(
        f"""WITH fresh AS MATERIALIZED (
                SELECT l.origin_list_id, l.list_id, l.id >> {BLOCK_SHIFT} AS block,
                       bit_or(lead_state_bit(l.status)) AS states
                FROM unnest($5::bigint[], $6::bigint[], $7::bigint[]) AS r(origin_list_id, first, last)
                CROSS JOIN LATERAL (
                    SELECT origin_list_id, list_id, id, status FROM leads
                    WHERE account_id = $1 AND origin_list_id = r.origin_list_id
                      AND id >= (r.first << {BLOCK_SHIFT}) AND id < ((r.last + 1) << {BLOCK_SHIFT})
                    OFFSET 0) l
                GROUP BY 1, 2, 3),
            locked AS (
                SELECT k.*, f.states FROM unnest($2::bigint[], $3::bigint[], $4::bigint[])
                    AS k(origin_list_id, list_id, block)
                LEFT JOIN fresh f USING (origin_list_id, list_id, block)),
            gone AS (
                DELETE FROM lead_blocks b USING locked k
                WHERE k.states IS NULL AND b.account_id = $1 AND b.origin_list_id = k.origin_list_id
                  AND b.list_id = k.list_id AND b.block = k.block),
            changed AS (
                UPDATE lead_blocks b SET states = k.states FROM locked k
                WHERE b.account_id = $1 AND b.origin_list_id = k.origin_list_id AND b.list_id = k.list_id
                  AND b.block = k.block AND b.states <> k.states)
            INSERT INTO lead_blocks AS b (account_id, origin_list_id, list_id, block, states)
            SELECT $1, f.origin_list_id, f.list_id, f.block, f.states FROM fresh f
            WHERE NOT EXISTS (SELECT 1 FROM locked k WHERE k.origin_list_id = f.origin_list_id
                                AND k.list_id = f.list_id AND k.block = f.block)
            ORDER BY 2, 3, 4
            ON CONFLICT (account_id, origin_list_id, list_id, block)
            DO UPDATE SET states = b.states | excluded.states""",
        account_id,
        [r["origin_list_id"] for r in locked],
        [r["list_id"] for r in locked],
        [r["block"] for r in locked],
        [r[0] for r in ranges],
        [r[1] for r in ranges],
        [r[2] for r in ranges],
    )


async def _refresh_touched(conn: asyncpg.Connection, account_id: str, rows: Sequence[asyncpg.Record]) -> None:
    """refresh_blocks for the distinct (origin_list_id, block) of `rows`."""
    pairs = sorted({(r["origin_list_id"], r["block"]) for r in rows})
    await refresh_blocks(
        conn, account_id=account_id, origins=[p[0] for p in pairs], blocks=[p[1] for p in pairs]
    )


async def update_matching(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    criteria: Criteria,
    assignments: str,
    params: Sequence[Any] = (),
    changes_status: bool = False,
) -> dict[int, int]:
    """One UPDATE over the match; returns affected leads per campaign. `assignments` uses $1..$k for params.

    `changes_status`: the assignments may change a status, so the touched lead_blocks are recomputed."""
    k = len(params)
    where, args = criteria_where(account_id, criteria, start=k + 1)
    await conn.execute("SET LOCAL work_mem = '64MB'")  # a million RETURNING rows stay off temp files
    if not changes_status:
        rows = await conn.fetch(
            f"""WITH changed AS (UPDATE leads SET {assignments}, updated_at = now() WHERE {where}
                                 RETURNING campaign_id)
                SELECT campaign_id, count(*) AS n FROM changed GROUP BY campaign_id""",
            *params,
            *args,
        )
        return {r["campaign_id"]: int(r["n"]) for r in rows}
    rows = await conn.fetch(
        f"""WITH changed AS (UPDATE leads SET {assignments}, updated_at = now() WHERE {where}
                             RETURNING campaign_id, origin_list_id, id >> {BLOCK_SHIFT} AS block)
            SELECT campaign_id, origin_list_id, block, count(*) AS n FROM changed GROUP BY 1, 2, 3""",
        *params,
        *args,
    )
    await _refresh_touched(conn, account_id, rows)
    return _per_campaign(rows)


def _per_campaign(rows: Sequence[asyncpg.Record]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in rows:
        out[r["campaign_id"]] = out.get(r["campaign_id"], 0) + int(r["n"])
    return out


async def count_matching(conn: asyncpg.Connection, *, account_id: str, criteria: Criteria) -> dict[int, int]:
    where, args = criteria_where(account_id, criteria)
    rows = await conn.fetch(
        f"SELECT campaign_id, count(*) AS n FROM leads WHERE {where} GROUP BY campaign_id", *args
    )
    return {r["campaign_id"]: int(r["n"]) for r in rows}


async def delete_matching(conn: asyncpg.Connection, *, account_id: str, criteria: Criteria) -> dict[int, int]:
    where, args = criteria_where(account_id, criteria)
    rows = await conn.fetch(
        f"""WITH gone AS (DELETE FROM leads WHERE {where}
                          RETURNING campaign_id, origin_list_id, id >> {BLOCK_SHIFT} AS block)
            SELECT campaign_id, origin_list_id, block, count(*) AS n FROM gone GROUP BY 1, 2, 3""",
        *args,
    )
    await _refresh_touched(conn, account_id, rows)
    return _per_campaign(rows)


async def manual_pass(
    conn: asyncpg.Connection, *, account_id: str, criteria: Criteria, disposition: str, dnc: bool
) -> list[asyncpg.Record]:
    """+1 manual pass and the agent disposition; a DNC disposition also adds the dnc cause. Returns id, campaign, phone."""
    where, args = criteria_where(account_id, criteria, start=3)
    return await _fetch(
        conn,
        f"""UPDATE leads SET manual_pass_count = manual_pass_count + 1, pass_count = pass_count + 1,
                   agent_disposition = $1,
                   suppression_causes = CASE WHEN $2 AND NOT ('{DNC}' = ANY(suppression_causes))
                                             THEN suppression_causes || '{DNC}'::text
                                             ELSE suppression_causes END,
                   updated_at = now()
            WHERE {where} RETURNING id, campaign_id, phone""",
        disposition,
        dnc,
        *args,
    )


# --- move / copy -------------------------------------------------------------------------------------


async def source_campaigns(conn: asyncpg.Connection, *, account_id: str, criteria: Criteria) -> list[int]:
    """The campaigns the match lies in (known without a scan when the criteria name exactly one)."""
    if criteria.single_campaign is not None:
        return [criteria.single_campaign]
    where, args = criteria_where(account_id, criteria)
    rows = await conn.fetch(f"SELECT DISTINCT campaign_id FROM leads WHERE {where} ORDER BY 1", *args)
    return [r["campaign_id"] for r in rows]


async def move_leads(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    criteria: Criteria,
    to_campaign: int,
    to_list: int,
    ignore_duplicates: bool,
) -> dict[int, list[int]]:
    """Re-home the match (ids kept); IGNORE leaves leads whose phone is already in the target list.

    One UPDATE per source campaign (no row locks taken first, no self-join to learn where a lead came
    from), then the target placements of the moved leads' origins. Returns the moved ids per source
    campaign, sorted (they come back in table order, which is nearly id order: the sort is cheap here
    and a sort plus window in SQL cost seconds on a million leads).
    """
    where, args = criteria_where(account_id, criteria, start=5)
    in_target = origins_of_list("$5", "$2")
    moved: dict[int, list[int]] = {}
    origins: set[int] = set()
    touched: set[tuple[int, int]] = set()
    for from_campaign in await source_campaigns(conn, account_id=account_id, criteria=criteria):
        if from_campaign == to_campaign:
            continue
        row = await conn.fetchrow(
            f"""WITH m AS (
                    UPDATE leads SET campaign_id = $1, list_id = $2, updated_at = now()
                    WHERE {where} AND campaign_id = $4
                      AND NOT ($3 AND phone IN (SELECT t.phone FROM leads t
                                                WHERE t.account_id = $5 AND t.list_id = $2
                                                  AND t.origin_list_id = ANY({in_target})))
                    RETURNING id, origin_list_id)
                SELECT (SELECT array_agg(id) FROM m) AS ids, d.origins, d.blocks
                FROM (SELECT array_agg(o) AS origins, array_agg(b) AS blocks
                      FROM (SELECT DISTINCT origin_list_id AS o, id >> {BLOCK_SHIFT} AS b FROM m) x) d""",
            to_campaign,
            to_list,
            ignore_duplicates,
            from_campaign,
            *args,
        )
        if row["ids"]:
            moved[from_campaign] = sorted(row["ids"])
            origins.update(row["origins"])
            touched.update(zip(row["origins"], row["blocks"], strict=True))
    if origins:
        await conn.execute(
            """INSERT INTO lead_placements (account_id, origin_list_id, list_id, campaign_id)
               SELECT $1, o, $2, $3 FROM unnest($4::bigint[]) AS o
               ON CONFLICT DO NOTHING""",
            account_id,
            to_list,
            to_campaign,
            sorted(origins),
        )
    pairs = sorted(touched)
    await refresh_blocks(
        conn, account_id=account_id, origins=[p[0] for p in pairs], blocks=[p[1] for p in pairs]
    )
    return moved


async def copy_leads(
    conn: asyncpg.Connection,
    *,
    account_id: str,
    criteria: Criteria,
    to_campaign: int,
    to_list: int,
    ignore_duplicates: bool,
    transition_source: bool,
) -> list[asyncpg.Record]:
    """Copy the match into the target as fresh READY leads; TRANSITION marks the sources. Returns new id + source."""
    await lock_account_leads(conn, account_ids=[account_id], exclusive=False)
    where, args = criteria_where(account_id, criteria, start=5)
    dnc = PROJECTED_DNC.format(account="$5", phone="m.phone")
    in_target = origins_of_list("$5", "$2")
    return await _fetch(
        conn,
        f"""WITH m AS (
                SELECT id, campaign_id, external_id, phone, first_name, last_name, fields, timezone,
                       suppression_causes FROM leads
                WHERE {where} AND campaign_id <> $1
                  AND NOT ($3 AND phone IN (SELECT t.phone FROM leads t
                                            WHERE t.account_id = $5 AND t.list_id = $2
                                              AND t.origin_list_id = ANY({in_target})))
                ORDER BY id),
            marked AS (
                UPDATE leads s SET status = 'TRANSITION', updated_at = now()
                FROM m WHERE $4 AND s.id = m.id
                RETURNING s.id, s.account_id, s.origin_list_id, s.list_id, s.status),
            copied AS (
                INSERT INTO leads (account_id, campaign_id, list_id, origin_list_id, external_id, phone,
                                   first_name, last_name, fields, timezone, suppression_causes)
                SELECT $5, $1, $2, $2, m.external_id, m.phone, m.first_name, m.last_name, m.fields, m.timezone,
                       CASE WHEN {dnc} AND NOT ('{DNC}' = ANY(array_remove(m.suppression_causes, '{DNC}')))
                            THEN array_append(array_remove(m.suppression_causes, '{DNC}'), '{DNC}')
                            ELSE array_remove(m.suppression_causes, '{DNC}') END
                FROM m ORDER BY m.id
                RETURNING id, account_id, origin_list_id, list_id, status),
            blocks AS ({or_blocks("(SELECT * FROM copied UNION ALL SELECT * FROM marked) AS written")})
            SELECT c.id, m.campaign_id AS from_campaign, m.id AS source_id
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM copied) c
            JOIN (SELECT id, campaign_id, row_number() OVER (ORDER BY id) AS n FROM m) m USING (n)
            ORDER BY c.id""",
        to_campaign,
        to_list,
        ignore_duplicates,
        transition_source,
        *args,
    )


# --- suppression projection --------------------------------------------------------------------------


async def project_entries(
    conn: asyncpg.Connection,
    *,
    added: Sequence[tuple[str, str, str, str, str | None]],
    removed: Sequence[tuple[str, str]],
) -> None:
    """Apply entry adds (account, entry_id, type, value, channel) and removals (account, entry_id) set-based."""
    if removed:
        await conn.execute(
            """DELETE FROM suppression_projection p USING unnest($1::text[], $2::text[]) AS r(account_id, entry_id)
               WHERE p.account_id = r.account_id AND p.entry_id = r.entry_id""",
            [r[0] for r in removed],
            [r[1] for r in removed],
        )
    if added:
        await conn.execute(
            """INSERT INTO suppression_projection (account_id, entry_id, id_type, value, channel)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
               ON CONFLICT (account_id, entry_id) DO NOTHING""",
            [a[0] for a in added],
            [a[1] for a in added],
            [a[2] for a in added],
            [a[3] for a in added],
            [a[4] for a in added],
        )


async def apply_dnc(conn: asyncpg.Connection, *, keys: Sequence[tuple[str, str, bool]]) -> int:
    """For each (account, phone, last `suppressed` flag): add cause dnc when the projection (or the event,
    fail-safe) says suppressed; remove it only when neither does. Status is never touched."""
    if not keys:
        return 0
    dnc = PROJECTED_DNC.format(account="k.account_id", phone="k.phone")
    result = await conn.execute(
        f"""WITH k AS (
                SELECT account_id, phone, bool_or(flag) AS flag
                FROM unnest($1::text[], $2::text[], $3::bool[]) AS x(account_id, phone, flag)
                GROUP BY account_id, phone),
            want AS (SELECT k.account_id, k.phone, (k.flag OR {dnc}) AS on_list FROM k)
            UPDATE leads l SET
                suppression_causes = CASE
                    WHEN w.on_list THEN array_append(array_remove(l.suppression_causes, '{DNC}'), '{DNC}')
                    ELSE array_remove(l.suppression_causes, '{DNC}') END,
                updated_at = now()
            FROM want w
            WHERE l.account_id = w.account_id AND l.phone = w.phone
              AND (w.on_list <> ('{DNC}' = ANY(l.suppression_causes)))""",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return int(result.split()[-1])


# --- call results --------------------------------------------------------------------------------------


async def record_call_results(conn: asyncpg.Connection, *, rows: Sequence[dict[str, Any]]) -> None:
    """History first (kept after DELETE_LEADS), then one UPDATE applying each lead's results of the batch."""
    await conn.execute(
        """INSERT INTO call_results (account_id, event_id, lead_id, campaign_id, phone, attempted_at,
                                     system_disposition, agent_disposition, reached, do_not_call)
           SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bigint[], $5::text[],
                                $6::timestamptz[], $7::text[], $8::text[], $9::bool[], $10::bool[])
           ON CONFLICT (event_id) DO NOTHING""",
        [r["account_id"] for r in rows],
        [r["event_id"] for r in rows],
        [r["lead_id"] for r in rows],
        [r["campaign_id"] for r in rows],
        [r["phone"] for r in rows],
        [r["attempted_at"] for r in rows],
        [r["system_disposition"] for r in rows],
        [r["agent_disposition"] for r in rows],
        [r["reached"] for r in rows],
        [r["do_not_call"] for r in rows],
    )


async def apply_call_outcomes(
    conn: asyncpg.Connection, *, outcomes: Sequence[dict[str, Any]], retry_delay_seconds: float
) -> list[asyncpg.Record]:
    """Per lead: passes added, last dispositions, COMPLETE when reached else READY with a later next dial."""
    if not outcomes:
        return []
    return await _fetch(
        conn,
        f"""WITH u AS (UPDATE leads l SET
                pass_count = l.pass_count + o.passes,
                system_disposition = o.system_disposition,
                agent_disposition = COALESCE(o.agent_disposition, l.agent_disposition),
                status = CASE WHEN o.reached THEN 'COMPLETE' ELSE 'READY' END,
                next_dial_at = CASE WHEN o.reached THEN l.next_dial_at
                                    ELSE o.attempted_at + make_interval(secs => $9) END,
                callback_at = CASE WHEN l.status = 'CALLBACK' THEN NULL ELSE l.callback_at END,
                suppression_causes = CASE WHEN o.dnc AND NOT ('{DNC}' = ANY(l.suppression_causes))
                                          THEN l.suppression_causes || '{DNC}'::text
                                          ELSE l.suppression_causes END,
                updated_at = now()
            FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::bool[],
                        $7::timestamptz[], $8::bool[])
                 AS o(account_id, lead_id, passes, system_disposition, agent_disposition, reached,
                      attempted_at, dnc)
            WHERE l.account_id = o.account_id AND l.id = o.lead_id
            RETURNING l.id, l.account_id, l.phone, l.origin_list_id, l.list_id, l.status),
            blocks AS ({or_blocks("u")})
            SELECT id, account_id, phone FROM u""",
        [o["account_id"] for o in outcomes],
        [o["lead_id"] for o in outcomes],
        [o["passes"] for o in outcomes],
        [o["system_disposition"] for o in outcomes],
        [o["agent_disposition"] for o in outcomes],
        [o["reached"] for o in outcomes],
        [o["attempted_at"] for o in outcomes],
        [o["dnc"] for o in outcomes],
        retry_delay_seconds,
    )


# --- audit and exports -----------------------------------------------------------------------------------


async def record_action(
    conn: asyncpg.Connection,
    *,
    action_id: uuid.UUID,
    account_id: str,
    actor: str,
    action: str,
    criteria: dict[str, Any],
    params: dict[str, Any],
    affected: int,
) -> None:
    await conn.execute(
        """INSERT INTO lead_actions (id, account_id, actor, action, criteria, params, affected)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        action_id,
        account_id,
        actor,
        action,
        criteria,
        params,
        affected,
    )


async def list_actions(
    conn: asyncpg.Connection, *, account_id: str, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[asyncpg.Record]:
    return await _fetch(
        conn,
        """SELECT id, actor, applied_at, action, criteria, params, affected FROM lead_actions
           WHERE account_id = $1 AND ($2::timestamptz IS NULL OR (applied_at, id) < ($2, $3::uuid))
           ORDER BY applied_at DESC, id DESC LIMIT $4""",
        account_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def store_export(
    conn: asyncpg.Connection,
    *,
    export_id: uuid.UUID,
    account_id: str,
    action_id: uuid.UUID,
    filename: str,
    data: bytes,
    expires_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO lead_exports (id, account_id, action_id, filename, data, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        export_id,
        account_id,
        action_id,
        filename,
        data,
        expires_at,
    )


async def get_export(
    conn: asyncpg.Connection, *, account_id: str, export_id: uuid.UUID
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT filename, data, expires_at FROM lead_exports
           WHERE account_id = $1 AND id = $2 AND expires_at > now()""",
        account_id,
        export_id,
    )


async def purge_exports(conn: asyncpg.Connection) -> int:
    result = await conn.execute("DELETE FROM lead_exports WHERE expires_at <= now() - interval '1 hour'")
    return int(result.split()[-1])
