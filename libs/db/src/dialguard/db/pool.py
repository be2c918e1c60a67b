"""asyncpg pool with JSON codecs, so repositories pass dicts and never hand-format JSON."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's default reset query, one Postgres round trip per acquire saved.

    Before this runs asyncpg has already rolled back an open transaction and dropped listeners.
    What the skipped query would undo is never left on a pooled connection here: session SETs
    (search_path comes from the startup settings), session advisory locks, LISTEN and cursors
    (only inside transactions) are not used on pooled connections.
    """


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 10, schema: str | None = None, **kwargs: Any
) -> asyncpg.Pool:
    """A pool whose connections speak JSON natively and fail fast when Postgres is gone."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=60,
        timeout=5,
        server_settings={"search_path": schema} if schema else None,
        **kwargs,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection with the same codecs (for LISTEN and admin work)."""
    conn = await asyncpg.connect(dsn, timeout=5)
    await _init_connection(conn)
    return conn
