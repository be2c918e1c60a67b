"""Writes events into the service's outbox inside the caller's transaction (no dual write)."""

from __future__ import annotations

import uuid
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


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event already serialised (events.envelope_bytes), for producers that emit thousands per transaction."""

    topic: str
    key: str | None
    value: bytes
    event_id: uuid.UUID
    event_type: str
    correlation_id: str | None = None


def _encoded(event: OutgoingEvent | EncodedEvent) -> EncodedEvent:
    if isinstance(event, EncodedEvent):
        return event
    env = event.envelope
    return EncodedEvent(
        event.topic, event.key, env.to_bytes(), env.event_id, env.event_type, env.correlation_id
    )


async def enqueue(
    conn: asyncpg.Connection, events: Sequence[OutgoingEvent | EncodedEvent], *, schema: str
) -> None:
    """Insert events set-based; they leave only if the surrounding transaction commits."""
    if not events:
        return
    rows = [_encoded(e) for e in events]
    # Delivered at commit only, and folded into one notification per transaction; one round trip.
    await conn.execute(
        """WITH queued AS (
             INSERT INTO outbox (topic, key, value, event_id, event_type, correlation_id)
             SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::uuid[], $5::text[], $6::text[]))
           SELECT pg_notify($7, '')""",
        [e.topic for e in rows],
        [e.key.encode() if e.key is not None else None for e in rows],
        [e.value for e in rows],
        [e.event_id for e in rows],
        [e.event_type for e in rows],
        [e.correlation_id for e in rows],
        notify_channel(schema),
    )
