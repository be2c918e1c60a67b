"""Use cases behind the list routes; each runs in one transaction (events, if any, through the outbox)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from dialguard.contact_list import repository as repo
from dialguard.contact_list.filters import ContactFilter, add_matching
from dialguard.platform.runtime import ServiceRuntime


async def create_list(
    rt: ServiceRuntime, *, account_id: str, values: dict[str, Any], flt: ContactFilter | None
) -> asyncpg.Record:
    """Insert the list; a filter list is filled at once from the account's matching contacts."""
    async with rt.pool.acquire() as conn, conn.transaction():
        list_id = await repo.insert_list(conn, account_id=account_id, values=values)
        if flt is not None:
            list_row = await repo.lock_list(conn, account_id=account_id, list_id=list_id)
            await add_matching(rt, conn, list_row=list_row, flt=flt)
        row = await repo.get_list(conn, account_id=account_id, list_id=list_id)
    assert row is not None
    return row


async def update_list(
    rt: ServiceRuntime, *, account_id: str, list_id: uuid.UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Apply validated setting changes; the row as GET shows it afterwards."""
    async with rt.pool.acquire() as conn, conn.transaction():
        if changes and not await repo.update_list(
            conn, account_id=account_id, list_id=list_id, changes=changes
        ):
            return None
        return await repo.get_list(conn, account_id=account_id, list_id=list_id)


async def delete_list(rt: ServiceRuntime, *, account_id: str, list_id: uuid.UUID) -> bool:
    """Contacts, units, fingerprints and imports go with the list (ON DELETE CASCADE)."""
    async with rt.pool.acquire() as conn:
        return await repo.delete_list(conn, account_id=account_id, list_id=list_id)
