"""Whether a lease's owner is still alive, so a killed instance's rows go out in seconds, not a lease later.

Each delivery worker holds a session advisory lock named after its owner id, on a connection of
its own. Postgres drops it the moment that process or its connection dies, however it dies. A
leased row whose owner holds no such lock belongs to nobody and can be handed back at once.
(Session locks need a direct connection: behind a transaction-pooling proxy they would not hold.)
"""

from __future__ import annotations

import contextlib

import asyncpg

OWNER_LOCK_SPACE = 20307
"""First key of every owner lock (the two-key form; the second is hashtext(owner))."""


class OwnerLock:
    """The advisory lock that says this worker's owner id is alive."""

    def __init__(self, dsn: str, owner: str) -> None:
        self._dsn = dsn
        self._owner = owner
        self._conn: asyncpg.Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def hold(self) -> None:
        """Take the lock again if its connection is gone (a Postgres restart); a no-op while it is held."""
        if self.held:
            return
        await self.close()
        conn = await asyncpg.connect(self._dsn, timeout=5)
        try:
            await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", OWNER_LOCK_SPACE, self._owner)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
