"""GET /v1/audit/entries: who added or removed each stoplist entry and when, for compliance evidence.

TCPA asks a sender to honour an opt-out within 10 business days and to be able to show it. Live
entries carry who added them; a removal row keeps who removed the entry, why, and (since the entry
row is gone) who added it and when, so an opt-out's whole history stays answerable.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from dialguard.events.envelope import format_time
from dialguard.identifiers import IdentifierType, InvalidIdentifier, normalize_identifier
from dialguard.platform.auth import OPS, OUTBOUND_MANAGER, Principal, require_roles
from dialguard.platform.errors import ApiError
from dialguard.platform.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor_key, encode_cursor
from dialguard.suppression.handlers import Suppression

Auditor = Annotated[Principal, Depends(require_roles(OPS, OUTBOUND_MANAGER))]
router = APIRouter(prefix="/v1/audit", tags=["audit"])

# One row per fact, newest first: every entry's addition (live or since removed) and every removal.
_AUDIT = """
WITH facts AS (
    SELECT added_at AS at, 'added' AS action, added_by AS actor, NULL::text AS reason,
           id AS entry_id, stoplist_id, id_type, value, channel, sender, source
      FROM entries
     WHERE account_id = $1
    UNION ALL
    SELECT added_at, 'added', added_by, NULL, entry_id, stoplist_id, id_type, value, channel, sender, source
      FROM entry_removals
     WHERE account_id = $1 AND added_at IS NOT NULL
    UNION ALL
    SELECT removed_at, op, removed_by, reason, entry_id, stoplist_id, id_type, value, channel, sender, source
      FROM entry_removals
     WHERE account_id = $1
)
SELECT * FROM facts
 WHERE ($2::text IS NULL OR (id_type = $2 AND value = $3))
   AND ($4::uuid IS NULL OR stoplist_id = $4)
   AND ($5::text IS NULL OR actor = $5)
   AND ($6::text IS NULL OR (action = 'added') = ($6 = 'added'))
   AND ($7::timestamptz IS NULL OR at >= $7) AND ($8::timestamptz IS NULL OR at < $8)
   AND ($9::timestamptz IS NULL OR (at, entry_id, action) < ($9, $10::uuid, $11::text))
 ORDER BY at DESC, entry_id DESC, action DESC
 LIMIT $12"""


def _fact(row: Any) -> dict[str, Any]:
    return {
        "at": format_time(row["at"]),
        "action": row["action"],
        "actor": row["actor"],
        "reason": row["reason"],
        "entry_id": str(row["entry_id"]),
        "stoplist_id": str(row["stoplist_id"]),
        "identifier": {"type": row["id_type"], "value": row["value"]},
        "channel": row["channel"],
        "sender": row["sender"],
        "source": row["source"],
    }


@router.get("/entries")
async def entry_audit(
    request: Request,
    principal: Auditor,
    type: Annotated[IdentifierType | None, Query()] = None,
    value: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    stoplist_id: uuid.UUID | None = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    kind: Annotated[Literal["added", "removed"] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Additions and removals (removed, expired, truncated, …) of the account's entries, newest first:
    when, what, who, why; filter by identifier (as typed or normalized), stoplist, actor, kind, time."""
    if (type is None) != (value is None):
        field = "value" if value is None else "type"
        raise ApiError(
            422, "validation_error", "type and value go together", [{"field": field, "reason": "required"}]
        )
    normalized = None
    if type is not None and value is not None:
        region = request.app.state.runtime.settings.DEFAULT_PHONE_REGION
        try:
            normalized = normalize_identifier(type, value, region=region).value
        except InvalidIdentifier:
            normalized = value.strip()  # an identifier stored before a stricter rule is still findable
    key = decode_cursor_key(cursor, datetime.fromisoformat, uuid.UUID, str)
    svc: Suppression = request.app.state.suppression
    async with svc.runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            _AUDIT,
            principal.account_id,
            type,
            normalized,
            stoplist_id,
            actor,
            kind,
            since,
            until,
            key[0] if key else None,
            key[1] if key else None,
            key[2] if key else None,
            limit + 1,
        )
    page = rows[:limit]
    nxt = (
        encode_cursor([page[-1]["at"].isoformat(), str(page[-1]["entry_id"]), page[-1]["action"]])
        if len(rows) > limit
        else None
    )
    return {"items": [_fact(r) for r in page], "next_cursor": nxt}
