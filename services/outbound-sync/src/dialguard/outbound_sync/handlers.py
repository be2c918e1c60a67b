"""Use cases of outbound-sync: target lifecycle, manual retries, and applying SuppressionChanged batches."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import structlog

from dialguard.events.payloads import SuppressionChanged
from dialguard.messaging.consumer import Batch
from dialguard.outbound_sync import repository as repo
from dialguard.outbound_sync.config import Settings
from dialguard.outbound_sync.delivery import DeliveryWorker
from dialguard.outbound_sync.domain import identifier_key
from dialguard.platform.runtime import ServiceRuntime

log = structlog.get_logger(__name__)


@dataclass
class OutboundSync:
    """The service's dependencies as handlers see them."""

    runtime: ServiceRuntime
    settings: Settings
    worker: DeliveryWorker | None = None

    def wake(self, targets: Iterable[uuid.UUID] | None = None) -> None:
        """Tell this process's delivery worker there is new work (for these targets; None: any)."""
        if self.worker is not None:
            self.worker.wake(targets)


async def create_target(
    svc: OutboundSync, *, account_id: str, fields: dict[str, Any], backfill: bool
) -> tuple[asyncpg.Record, int]:
    """Store a target (active at once); with backfill, queue the stoplist's known live entries too."""
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        target_id = await repo.insert_target(conn, account_id=account_id, fields=fields)
        queued = 0
        if backfill:
            queued = await repo.backfill(
                conn, account_id=account_id, target_id=target_id, stoplist_id=fields["stoplist_id"]
            )
        row = await repo.get_target(conn, account_id=account_id, target_id=target_id)
    assert row is not None
    if queued:
        svc.wake([target_id])
    return row, queued


async def update_target(
    svc: OutboundSync, *, account_id: str, target_id: uuid.UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Change settings or pause/resume; a resumed target's backlog goes out at once."""
    async with svc.runtime.pool.acquire() as conn, conn.transaction():
        if not await repo.update_target(conn, account_id=account_id, target_id=target_id, changes=changes):
            return None
        row = await repo.get_target(conn, account_id=account_id, target_id=target_id)
    if changes.get("active"):
        svc.wake([target_id])
    return row


async def retry_delivery(
    svc: OutboundSync, *, account_id: str, target_id: uuid.UUID, delivery_id: uuid.UUID
) -> asyncpg.Record | None:
    """An operator's retry: the row goes back to pending with a fresh budget and the same Idempotency-Key."""
    async with svc.runtime.pool.acquire() as conn:
        row = await repo.retry_delivery(
            conn, account_id=account_id, target_id=target_id, delivery_id=delivery_id
        )
    if row is not None:
        svc.wake([target_id])
    return row


async def apply_suppression_changes(svc: OutboundSync, batch: Batch) -> None:
    """Set-based: update the live-entry projection and queue one delivery per added entry and target."""
    live: dict[tuple[str, str], tuple[str, dict[str, Any]] | None] = {}
    queued: list[tuple[str, str, str, str, dict[str, Any], datetime]] = []
    for event in batch.events:
        env = event.envelope
        change = SuppressionChanged.model_validate(env.payload)
        entry: dict[str, Any] = dict(env.payload["entry"])  # as the producer wrote it, extra fields kept
        key = (env.account_id, change.entry.entry_id)
        if change.op == "added":
            stoplist_id = change.entry.stoplist_id
            live[key] = (stoplist_id, entry)
            queued.append(
                (
                    env.account_id,
                    stoplist_id,
                    change.entry.entry_id,
                    identifier_key(entry),
                    entry,
                    env.occurred_at,
                )
            )
        else:
            live[key] = None
    await repo.remember_entries(
        batch.conn,
        [(a, e, value[0], value[1]) for (a, e), value in live.items() if value is not None],
    )
    await repo.forget_entries(batch.conn, [key for key, value in live.items() if value is None])
    per_target = await repo.queue_deliveries(batch.conn, queued, skew_s=svc.settings.EVENT_CLOCK_SKEW_S)
    if per_target:
        batch.after_commit(_wake(svc, list(per_target)))


def _wake(svc: OutboundSync, targets: list[uuid.UUID]) -> Any:
    async def hook() -> None:
        svc.wake(targets)

    return hook
