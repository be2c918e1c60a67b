"""Consumer of suppression.changes.v1: thin, binds log context and calls the handler."""

from __future__ import annotations

import structlog

from dialguard.messaging.consumer import Batch, BatchHandler
from dialguard.outbound_sync.handlers import OutboundSync, apply_suppression_changes


def suppression_changes_handler(svc: OutboundSync) -> BatchHandler:
    """Build the batch handler; invalid payloads raise so the consumer retries and then dead-letters them."""

    async def handle(batch: Batch) -> None:
        first = batch.events[0].envelope
        structlog.contextvars.bind_contextvars(
            event_id=str(first.event_id), correlation_id=first.correlation_id, batch_size=len(batch.events)
        )
        await apply_suppression_changes(svc, batch)

    return handle
