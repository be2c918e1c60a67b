"""Lists built from a filter over the account's existing contacts (NovaTalks 'select from conversations',
Tovie 'add existing clients'): preview sample, copy of matching contacts, and scheduled auto-add."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import structlog
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from dialguard.contact_list.domain import next_run
from dialguard.contact_list.outgoing import publish_contacts_imported
from dialguard.contact_list.text import Text
from dialguard.platform.runtime import ServiceRuntime

log = structlog.get_logger(__name__)
Status = Literal["callable", "planning", "open", "attempted", "flagged", "closed"]
ChannelName = Literal["voice", "sms", "whatsapp", "viber", "email", "messenger"]
UnitType = Literal["phone", "email", "person_id", "client_id"]


class ContactFilter(BaseModel):
    """Criteria over existing contacts; every given criterion must hold (AND). An unknown criterion is refused
    rather than ignored: ignoring it would select more people than the operator meant to contact."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel: ChannelName | None = Field(
        default=None,
        validation_alias=AliasChoices("channel", "channel_type"),
        description="has a unit on this channel",
    )
    unit_type: UnitType | None = Field(
        default=None,
        validation_alias=AliasChoices("unit_type", "type"),
        description="has a unit of this type",
    )
    callable_channel_only: bool = Field(default=False, description="the channel's unit must be callable")
    statuses: list[Status] | None = Field(
        default=None, max_length=6, validation_alias=AliasChoices("statuses", "status")
    )
    fields: dict[Text, Text] | None = Field(default=None, description="field values that must match exactly")
    list_ids: list[uuid.UUID] | None = Field(
        default=None, max_length=1000, validation_alias=AliasChoices("list_ids", "contact_list_ids")
    )
    name_contains: Text | None = Field(default=None, max_length=200)

    @field_validator("statuses", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


# Originals only (source_contact_id IS NULL): a contact copied into a filter list is not found again.
_MATCH = """
    FROM contacts c
    WHERE c.account_id = $1 AND c.source_contact_id IS NULL AND c.list_id <> $2
      AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM units u WHERE u.contact_id = c.id AND u.channel = $3
                                       AND (NOT $9 OR u.callable)))
      AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM units u WHERE u.contact_id = c.id AND u.type = $4))
      AND ($5::text[] IS NULL OR c.status = ANY($5))
      AND ($6::jsonb IS NULL OR c.fields @> $6)
      AND ($7::uuid[] IS NULL OR c.list_id = ANY($7))
      AND ($8::text IS NULL OR c.name ILIKE '%' || $8 || '%')
"""


def _args(account_id: str, target: uuid.UUID | None, flt: ContactFilter) -> list[Any]:
    return [
        account_id,
        target or uuid.UUID(int=0),
        flt.channel,
        flt.unit_type,
        list(flt.statuses) if flt.statuses else None,
        flt.fields or None,
        flt.list_ids,
        flt.name_contains,
        flt.callable_channel_only,
    ]


async def preview(
    conn: asyncpg.Connection, *, account_id: str, flt: ContactFilter, limit: int
) -> tuple[int, list[Any]]:
    """How many contacts match, and the first `limit` of them (the sample)."""
    args = _args(account_id, None, flt)
    total = await conn.fetchval(f"SELECT count(*) {_MATCH}", *args)
    rows = await conn.fetch(f"SELECT c.* {_MATCH} ORDER BY c.seq LIMIT $10", *args, limit)
    return int(total), list(rows)


async def add_matching(
    rt: ServiceRuntime, conn: asyncpg.Connection, *, list_row: Any, flt: ContactFilter
) -> int:
    """Copy matching contacts (with units) not yet in the list, in the caller's transaction; a ContactImported
    per added contact (import_id names this run)."""
    args = _args(list_row["account_id"], list_row["id"], flt)
    added = await conn.fetch(
        f"""INSERT INTO contacts (id, account_id, list_id, external_id, name, fields, timezone, has_callable,
                                  source_contact_id)
            SELECT gen_random_uuid(), m.account_id, $2, m.external_id, m.name, m.fields, m.timezone, m.has_callable, m.id
            FROM (SELECT DISTINCT ON (ext) *
                  FROM (SELECT c.*, CASE WHEN l.unique_id_column IS NOT NULL THEN c.external_id ELSE c.id::text END AS ext
                        {_MATCH.replace("FROM contacts c", "FROM contacts c JOIN contact_lists l ON l.id = c.list_id")}
                          AND NOT EXISTS (SELECT 1 FROM contacts t WHERE t.list_id = $2 AND t.source_contact_id = c.id)
                       ) s ORDER BY ext, seq) m
            ORDER BY m.seq
            ON CONFLICT (list_id, external_id) DO NOTHING
            RETURNING id, source_contact_id""",
        *args,
    )
    if not added:
        return 0
    await conn.execute(
        """INSERT INTO units (contact_id, position, account_id, type, value, channel, priority, callable)
           SELECT n.id, u.position, u.account_id, u.type, u.value, u.channel, u.priority, u.callable
           FROM unnest($1::uuid[], $2::uuid[]) AS n(id, source_id) JOIN units u ON u.contact_id = n.source_id""",
        [r["id"] for r in added],
        [r["source_contact_id"] for r in added],
    )
    await publish_contacts_imported(
        rt,
        conn,
        account_id=list_row["account_id"],
        list_row=list_row,
        import_id=uuid.uuid4(),
        contact_ids=[r["id"] for r in added],
    )
    return len(added)


async def run_due_auto_adds(rt: ServiceRuntime, *, now: datetime | None = None, batch: int = 20) -> int:
    """Each filter list whose schedule is due gets its new matching contacts; returns how many were added.
    SKIP LOCKED lets several workers share the job."""
    now = now or datetime.now(UTC)
    total = 0
    async with rt.pool.acquire() as conn, conn.transaction():
        due = await conn.fetch(
            """SELECT * FROM contact_lists WHERE auto_add AND source = 'filter' AND next_auto_add_at <= $1
               ORDER BY next_auto_add_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            batch,
        )
        for list_row in due:
            flt = ContactFilter.model_validate(list_row["filter"] or {})
            total += await add_matching(rt, conn, list_row=list_row, flt=flt)
            await conn.execute(
                "UPDATE contact_lists SET next_auto_add_at = $2 WHERE id = $1",
                list_row["id"],
                next_run(list_row["auto_add_cron"], now),
            )
    return total


def auto_add_loop(rt: ServiceRuntime, poll_seconds: float) -> Any:
    """The background task the runtime runs: poll for due schedules."""

    async def loop() -> None:
        while True:
            try:
                added = await run_due_auto_adds(rt)
                if added:
                    log.info("auto-added contacts", count=added)
            except Exception as exc:
                log.warning("auto-add failed", error=repr(exc))
            await asyncio.sleep(poll_seconds)

    return loop
