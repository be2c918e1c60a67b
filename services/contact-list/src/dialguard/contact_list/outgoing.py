"""Events the service emits (ContactImported, ImportCompleted), built from committed rows, queued in the
caller's transaction through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from dialguard.events import Envelope
from dialguard.events.envelope import format_time, utcnow
from dialguard.events.topics import CONTACTS_IMPORTED, IMPORTS_COMPLETED
from dialguard.messaging.outbox import OutgoingEvent, notify_channel
from dialguard.platform.runtime import ServiceRuntime

EVENT_CHUNK = 5000


def campaign_link(list_row: Any) -> dict[str, str] | None:
    """The campaign a list feeds, as ContactImported and the ContactList resource show it."""
    if not list_row["campaign_id"]:
        return None
    return {"campaign_id": list_row["campaign_id"], "list_id": list_row["campaign_list_id"] or ""}


async def publish_contacts_imported(
    rt: ServiceRuntime,
    conn: asyncpg.Connection,
    *,
    account_id: str,
    list_row: Any,
    import_id: uuid.UUID,
    contact_ids: Sequence[uuid.UUID],
    correlation_id: str | None = None,
) -> int:
    """One ContactImported per contact (key account:contact_id), read back from the rows just written."""
    campaign = campaign_link(list_row)
    sent = 0
    for start in range(0, len(contact_ids), EVENT_CHUNK):
        rows = await conn.fetch(
            """SELECT c.id, c.external_id, c.name, c.fields, c.timezone,
                      coalesce((SELECT jsonb_agg(jsonb_build_object('type', u.type, 'value', u.value,
                                 'channel', u.channel, 'priority', u.priority, 'callable', u.callable)
                                 ORDER BY u.position) FROM units u WHERE u.contact_id = c.id), '[]') AS units
               FROM contacts c WHERE c.id = ANY($1::uuid[])""",
            list(contact_ids[start : start + EVENT_CHUNK]),
        )
        events = []
        for r in rows:
            payload = {
                "contact_list_id": str(list_row["id"]),
                "import_id": str(import_id),
                "contact": {
                    "contact_id": str(r["id"]),
                    "external_id": r["external_id"],
                    "name": r["name"],
                    "units": _json(r["units"]),
                    "fields": _json(r["fields"]),
                    "timezone": r["timezone"],
                },
                "campaign": campaign,
            }
            envelope = Envelope(
                event_type="ContactImported",
                account_id=account_id,
                producer=rt.service,
                correlation_id=correlation_id,
                payload=payload,
            )
            events.append(OutgoingEvent(CONTACTS_IMPORTED, f"{account_id}:{r['id']}", envelope))
        await rt.publish(conn, events)
        sent += len(events)
    return sent


async def enqueue_staged_contacts_imported(
    rt: ServiceRuntime,
    conn: asyncpg.Connection,
    *,
    account_id: str,
    list_row: Any,
    import_id: uuid.UUID,
    correlation_id: str | None = None,
) -> None:
    """One ContactImported per contact of the import being committed (repository.stage_commit's tables), in
    file order, written to the outbox by one INSERT ... SELECT: the envelope is built by Postgres (json, not
    jsonb: text is what goes out), so a million contacts cost no Python object each. The same envelope and key as publish_contacts_imported.
    A contact's units are its staged units (staged with callable true) unless one of them is suppressed;
    only those contacts' units are aggregated again."""
    # The envelope up to the contact id is the same for every contact: built once here, and Postgres
    # appends each contact with plain concatenation (to_json quotes every text value), a third of the
    # cost of nesting json_build_object per row.
    head = orjson.dumps(
        {
            "event_type": "ContactImported",
            "schema_version": 1,
            "occurred_at": format_time(utcnow()),
            "account_id": account_id,
            "correlation_id": correlation_id,
            "producer": rt.service,
            "payload": {
                "contact_list_id": str(list_row["id"]),
                "import_id": str(import_id),
                "campaign": campaign_link(list_row),
            },
        }
    ).decode()
    prefix = '",' + head[1:-2] + ',"contact":{"contact_id":"'
    await conn.execute(
        """INSERT INTO outbox (topic, key, value, event_id, event_type, correlation_id)
           SELECT $1, convert_to($2 || ':' || e.id, 'UTF8'),
                  convert_to('{"event_id":"' || e.event_id || $3::text || e.id
                      || '","external_id":' || coalesce(to_json(e.external_id)::text, 'null')
                      || ',"name":' || coalesce(to_json(e.name)::text, 'null')
                      || ',"fields":' || coalesce(e.fields, 'null')
                      || ',"timezone":' || coalesce(to_json(e.timezone)::text, 'null')
                      || ',"units":' || coalesce(e.units, 'null') || '}}}', 'UTF8'),
                  e.event_id, 'ContactImported', $4
           FROM (SELECT w.row_number, w.id, gen_random_uuid() AS event_id, w.external_id,
                        coalesce(c.name, w.name) AS name, coalesce(c.fields, w.fields)::text AS fields,
                        coalesce(c.timezone, w.timezone) AS timezone,
                        coalesce(k.units::text, w.units::text) AS units
                 FROM commit_contacts w
                 LEFT JOIN LATERAL (SELECT c.name, c.fields, c.timezone FROM contacts c
                                    WHERE w.existed AND c.id = w.id) c ON true
                 LEFT JOIN (SELECT contact_id, json_agg(json_build_object(
                                'type', type, 'value', value, 'channel', channel, 'priority', priority,
                                'callable', callable) ORDER BY position) AS units
                            FROM commit_units
                            WHERE contact_id IN (SELECT contact_id FROM commit_units WHERE NOT callable)
                            GROUP BY 1) k ON k.contact_id = w.id) e
           ORDER BY e.row_number""",
        CONTACTS_IMPORTED,
        account_id,
        prefix,
        correlation_id,
    )
    await conn.execute("SELECT pg_notify($1, '')", notify_channel(rt.schema))


async def publish_import_completed(
    rt: ServiceRuntime,
    conn: asyncpg.Connection,
    *,
    account_id: str,
    import_row: Any,
    status: str,
    error: str | None = None,
) -> None:
    """ImportCompleted (target kind contact_list) with the final counts."""
    envelope = Envelope(
        event_type="ImportCompleted",
        account_id=account_id,
        producer=rt.service,
        payload={
            "import_id": str(import_row["id"]),
            "target": {"kind": "contact_list", "id": str(import_row["list_id"])},
            "status": status,
            "counts": import_counts(import_row),
            "error": error,
        },
    )
    await rt.publish(conn, [OutgoingEvent(IMPORTS_COMPLETED, f"{account_id}:{import_row['id']}", envelope)])


def import_counts(row: Any) -> dict[str, int]:
    return {
        "total": int(row["total"]),
        "imported": int(row["imported"]),
        "duplicates": int(row["duplicates"]),
        "invalid": int(row["invalid"]),
        "skipped": int(row["skipped"]),
    }


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value
