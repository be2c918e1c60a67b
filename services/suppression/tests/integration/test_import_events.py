"""Imports build their SuppressionChanged events in Postgres: the bytes must be those the Python path writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from dialguard.events import envelope_bytes
from dialguard.events.topics import SUPPRESSION_CHANGES
from dialguard.suppression import repository as repo
from dialguard.suppression.domain import NewEntry, event_key
from dialguard.suppression.handlers import entry_payload, import_entries

AWKWARD = [
    NewEntry("phone", "12672345601"),
    NewEntry("email", "optout@example.com", "email", None, "manual", None, None),
    NewEntry(
        "client_id",
        'ü-ключ "quoted" back\\slash',
        "sms",
        'sender "x"\t/',
        "import",
        'reason with "quotes", \\ and\nnewline \x01\x1f\x7f 😀',
        datetime(2027, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    ),
    NewEntry("person_id", "p-1", None, "ACME", "agent_disposition", "", None),
]


async def test_import_events_are_byte_for_byte_those_of_the_python_path(harness: Any) -> None:
    svc, _ = harness
    account = f"imp-{uuid.uuid4().hex[:10]}"
    async with svc.runtime.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            stoplist_id = await repo.default_stoplist_id(conn, account_id=account)
            added = await import_entries(
                svc, conn, account_id=account, stoplist_id=stoplist_id, entries=AWKWARD, actor="tester"
            )
            again = await import_entries(
                svc, conn, account_id=account, stoplist_id=stoplist_id, entries=AWKWARD, actor="tester"
            )
            rows = {
                str(r["id"]): r
                for r in await conn.fetch(
                    f"SELECT {repo.ENTRY_COLUMNS} FROM entries WHERE account_id = $1", account
                )
            }
            queued = await conn.fetch(
                "SELECT topic, key, value, event_id, event_type, correlation_id FROM outbox WHERE key LIKE $1",
                f"{account}:%".encode(),
            )
        finally:
            await tx.rollback()

    assert added == len(AWKWARD)
    assert again == 0, "a second import of the same entries adds nothing and announces nothing"
    assert len(rows) == len(queued) == len(AWKWARD)
    assert {r["added_by"] for r in rows.values()} == {"tester"}
    for event in queued:
        body = orjson.loads(event["value"])
        row = rows[body["payload"]["entry"]["entry_id"]]
        expected = envelope_bytes(
            event_id=event["event_id"],
            event_type="SuppressionChanged",
            occurred_at=body["occurred_at"],
            account_id=account,
            producer=svc.runtime.service,
            correlation_id=None,
            payload={"op": "added", "entry": entry_payload(row), "suppressed": True},
        )
        assert event["value"] == expected
        assert event["key"] == event_key(account, row["id_type"], row["value"]).encode()
        assert (event["topic"], event["event_type"], event["correlation_id"]) == (
            SUPPRESSION_CHANGES,
            "SuppressionChanged",
            None,
        )
        assert body["event_id"] == str(event["event_id"])
