"""Writes events into the service's outbox inside the caller's transaction (no dual write)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from dialguard.events import Envelope

SQL_DIR = Path(__file__).parent / "sql"


def notify_channel(schema: str) -> str:
    """LISTEN/NOTIFY channel the relay of this schema waits on."""
    return f"outbox_{schema}"


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event bound for a topic with its partition key."""

    topic: str
    key: str | None
    envelope: Envelope


async def enqueue(conn: asyncpg.Connection, events: Sequence[OutgoingEvent], *, schema: str) -> None:
    """Insert events set-based; they leave only if the surrounding transaction commits."""
    if not events:
        return
    await conn.execute(
        """INSERT INTO outbox (topic, key, value, event_id, event_type, correlation_id)
           SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::uuid[], $5::text[], $6::text[])""",
        [e.topic for e in events],
        [e.key.encode() if e.key is not None else None for e in events],
        [e.envelope.to_bytes() for e in events],
        [e.envelope.event_id for e in events],
        [e.envelope.event_type for e in events],
        [e.envelope.correlation_id for e in events],
    )
    # Delivered at commit only, and folded into one notification per transaction.
    await conn.execute("SELECT pg_notify($1, '')", notify_channel(schema))
