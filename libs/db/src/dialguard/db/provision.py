"""Gives each service its own login role and schema, so a service can touch only its own tables."""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import asyncpg

SERVICE_SCHEMAS: Final[dict[str, str]] = {
    "suppression": "suppression",
    "contact-list": "contact_list",
    "lead-action": "lead_action",
    "outbound-sync": "outbound_sync",
}

# Role DDL is cluster-wide, so concurrent provisioners (one per test database) can collide on it.
_RETRYABLE = (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError, asyncpg.InternalServerError)
_ATTEMPTS = 5


def role_name(schema: str) -> str:
    """The login role that owns a service schema."""
    return f"dg_{schema}"


def quote_ident(name: str) -> str:
    """An SQL identifier, double-quoted: DDL cannot take bind parameters."""
    if not name or "\0" in name:
        raise ValueError(f"invalid SQL identifier {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """An SQL string literal that means the same under any standard_conforming_strings setting."""
    if "\0" in value:
        raise ValueError("SQL literals cannot contain NUL")
    escaped = value.replace("'", "''")
    if "\\" in value:
        return "E'" + escaped.replace("\\", "\\\\") + "'"
    return "'" + escaped + "'"


async def provision_service_db(admin_dsn: str, *, schema: str, role: str, password: str) -> str:
    """Create or update the role and its schema in the admin DSN's database; returns the role's DSN."""
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        database = await conn.fetchval("SELECT current_database()")
        for attempt in range(_ATTEMPTS):
            try:
                await _provision(conn, database=database, schema=schema, role=role, password=password)
                break
            except _RETRYABLE:
                if attempt == _ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
    finally:
        await conn.close()
    return role_dsn(admin_dsn, database=database, role=role, password=password)


async def _provision(
    conn: asyncpg.Connection, *, database: str, schema: str, role: str, password: str
) -> None:
    r, s, db, pw = quote_ident(role), quote_ident(schema), quote_ident(database), quote_literal(password)
    async with conn.transaction():
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(f"ALTER ROLE {r} WITH LOGIN PASSWORD {pw}")
        else:
            await conn.execute(f"CREATE ROLE {r} WITH LOGIN PASSWORD {pw}")
        await conn.execute(f"ALTER ROLE {r} SET search_path TO {s}")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {r}")
        await conn.execute(f"ALTER SCHEMA {s} OWNER TO {r}")
        await conn.execute(f"REVOKE ALL ON SCHEMA {s} FROM PUBLIC")
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        await conn.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
        await conn.execute(f"GRANT CONNECT, TEMP ON DATABASE {db} TO {r}")


def role_dsn(admin_dsn: str, *, database: str, role: str, password: str) -> str:
    """The admin DSN with the role's credentials and an explicit database (host, port, options kept)."""
    parts = urlsplit(admin_dsn)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    options = [
        (k, v) for k, v in parse_qsl(parts.query) if k not in ("user", "password", "dbname", "database")
    ]
    path = "/" + quote(database, safe="")
    return urlunsplit((parts.scheme, netloc, path, urlencode(options), parts.fragment))
