"""The plumbing probe every service carries: a ping goes out through the outbox and is recorded by all."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from dialguard.events import Envelope
from dialguard.events.topics import OPS_PINGS
from dialguard.messaging.consumer import Batch
from dialguard.messaging.outbox import OutgoingEvent
from dialguard.platform.auth import OPS, OUTBOUND_MANAGER, READERS, Principal, require_roles
from dialguard.platform.errors import not_found
from dialguard.platform.runtime import ServiceRuntime


class PingIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


class PingOut(BaseModel):
    id: uuid.UUID
    account_id: str
    origin: str
    note: str | None
    created_at: datetime | None
    receipts: int = Field(description="How many times this service consumed the ping (1 = exactly once)")


def ping_router() -> APIRouter:
    """POST /v1/pings sends one; GET /v1/pings/{id} shows what this service knows of it."""
    router = APIRouter(prefix="/v1/pings", tags=["ping"])

    @router.post("", status_code=201, response_model=PingOut)
    async def send_ping(
        body: PingIn,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(OUTBOUND_MANAGER, OPS))],
    ) -> PingOut:
        runtime: ServiceRuntime = request.app.state.runtime
        ping_id = uuid.uuid4()
        envelope = Envelope(
            event_type="Ping",
            account_id=principal.account_id,
            producer=runtime.service,
            correlation_id=request.headers.get("x-correlation-id"),
            payload={"ping_id": str(ping_id), "origin": runtime.service, "note": body.note},
        )
        async with runtime.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """INSERT INTO pings (id, account_id, origin, note) VALUES ($1, $2, $3, $4)
                   RETURNING created_at""",
                ping_id,
                principal.account_id,
                runtime.service,
                body.note,
            )
            await runtime.publish(
                conn, [OutgoingEvent(OPS_PINGS, f"{principal.account_id}:{ping_id}", envelope)]
            )
        return PingOut(
            id=ping_id,
            account_id=principal.account_id,
            origin=runtime.service,
            note=body.note,
            created_at=row["created_at"] if row else None,
            receipts=0,
        )

    @router.get("/{ping_id}", response_model=PingOut)
    async def get_ping(
        ping_id: uuid.UUID,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(*READERS))],
    ) -> PingOut:
        runtime: ServiceRuntime = request.app.state.runtime
        async with runtime.pool.acquire() as conn:
            sent = await conn.fetchrow(
                "SELECT * FROM pings WHERE id = $1 AND account_id = $2", ping_id, principal.account_id
            )
            got = await conn.fetchrow(
                """SELECT count(*) AS n, min(origin) AS origin, min(sent_at) AS sent_at FROM ping_receipts
                   WHERE ping_id = $1 AND account_id = $2""",
                ping_id,
                principal.account_id,
            )
        receipts = int(got["n"]) if got else 0
        if sent is None and receipts == 0:
            raise not_found("ping")
        return PingOut(
            id=ping_id,
            account_id=principal.account_id,
            origin=sent["origin"] if sent else got["origin"],  # type: ignore[index]
            note=sent["note"] if sent else None,
            created_at=sent["created_at"] if sent else got["sent_at"],  # type: ignore[index]
            receipts=receipts,
        )

    return router


async def record_pings(batch: Batch) -> None:
    """Consumer effect: one receipt row per ping event (set-based)."""
    rows: list[tuple[Any, ...]] = []
    for event in batch.events:
        payload = event.envelope.payload
        rows.append(
            (
                uuid.UUID(str(payload["ping_id"])),
                event.envelope.event_id,
                event.envelope.account_id,
                str(payload.get("origin", "unknown")),
                event.envelope.occurred_at,
            )
        )
    await batch.conn.execute(
        """INSERT INTO ping_receipts (ping_id, event_id, account_id, origin, sent_at)
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])""",
        *[list(col) for col in zip(*rows, strict=True)],
    )


def enable_pings(runtime: ServiceRuntime) -> APIRouter:
    """Wire the ping consumer into the runtime (unless disabled) and return its router."""
    if runtime.settings.PING_CONSUMER_ENABLED:
        runtime.consume("pings", [OPS_PINGS], record_pings, event_types=["Ping"])
    return ping_router()
