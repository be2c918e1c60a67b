"""Claims event ids in the effect's transaction: a duplicate key means 'already done'."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg


async def claim(conn: asyncpg.Connection, consumer: str, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Return the ids this consumer has not processed before, marking them processed."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        """INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])
           ON CONFLICT DO NOTHING RETURNING event_id""",
        consumer,
        list(dict.fromkeys(event_ids)),
    )
    return {r["event_id"] for r in rows}


async def purge(conn: asyncpg.Connection, *, older_than_days: int = 14) -> int:
    """Forget ids older than any plausible redelivery window."""
    result = await conn.execute(
        "DELETE FROM inbox WHERE processed_at < now() - make_interval(days => $1)", older_than_days
    )
    return int(result.split()[-1])
